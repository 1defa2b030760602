"""`run` and crash recovery over a real stdio subprocess of the installed console script."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.anthropic_double import MessagesDouble, text, tool_use

pytestmark = pytest.mark.anyio


def server(db: Path, double: MessagesDouble) -> StdioServerParameters:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(db.parent),
        "MCP_SESSIONS_DB": str(db),
        "MCP_SESSIONS_USER": "alice",
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": double.base_url,
    }
    command = shutil.which("mcp-server-sessions") or sys.executable
    args = [] if command != sys.executable else ["-m", "mcp_server_sessions.server"]
    return StdioServerParameters(command=command, args=[*args, "--model", "claude-stdio"], env=env)


async def test_a_run_over_stdio_uses_history_and_tools(tmp_path: Path, double: MessagesDouble) -> None:
    db = tmp_path / "sessions.db"
    double.script(text("Hi Alice."), tool_use("update_session_state", {"session_state_updates": {"n": 1}}), text("ok"))
    with anyio.fail_after(60):
        async with Client(server(db, double)) as client:
            first = await client.call_tool("run", {"message": "I am Alice", "session_id": "s1"})
            assert not first.is_error and first.structured_content["content"] == "Hi Alice."
            second = await client.call_tool("run", {"message": "remember n", "session_id": "s1"})
            assert not second.is_error
            assert [c["tool_name"] for c in second.structured_content["tool_calls"]] == ["update_session_state"]
    body = double.bodies[1]
    assert body["model"] == "claude-stdio"
    assert [m["content"][0]["text"] for m in body["messages"]] == ["I am Alice", "Hi Alice.", "remember n"]
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT status FROM runs ORDER BY pk").fetchall() == [("completed",), ("completed",)]
        assert conn.execute("SELECT state FROM sessions").fetchone()[0] == '{"n":1}'


async def test_a_server_killed_mid_run_leaves_a_run_the_next_start_marks_error(
    tmp_path: Path, double: MessagesDouble
) -> None:
    db = tmp_path / "sessions.db"
    params = server(db, double)
    double.script(text("never sent", hold=True))
    process = subprocess.Popen(
        [params.command, *params.args],
        env=params.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdin is not None and process.stdout is not None
        lines = [
            '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
            '"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}',
            '{"jsonrpc":"2.0","method":"notifications/initialized"}',
            '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"run",'
            '"arguments":{"message":"hello","session_id":"s1"}}}',
        ]
        process.stdin.write(("\n".join(lines) + "\n").encode())
        process.stdin.flush()
        await double.await_requests(1, timeout=30)  # the run is in flight, its row is `running`
        with closing(sqlite3.connect(db)) as conn:
            assert conn.execute("SELECT status FROM runs").fetchall() == [("running",)]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()
    double.release()
    with anyio.fail_after(60):
        async with Client(server(db, double)) as client:
            history = await client.call_tool("get_chat_history", {"session_id": "s1"})
            assert history.structured_content == {"session_id": "s1", "messages": [], "next_cursor": None}
    with closing(sqlite3.connect(db)) as conn:
        status, error = conn.execute("SELECT status, error FROM runs").fetchone()
    assert status == "error" and "stopped before this run finished" in error
