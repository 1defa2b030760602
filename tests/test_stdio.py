"""The installed console script as a real stdio subprocess, driven by a real MCP client."""

import json
import os
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client, StdioServerParameters

from mcp_server_sessions.store.sqlite_purge import PURGING_USER
from tests.helpers import READ_TOOLS, STORE_TOOLS, call_ok

TOOLS = set(STORE_TOOLS)

START_TIMEOUT = 30  # generous: a server takes ~1 s to start, more on a loaded 2-core machine


def server_script() -> str:
    """The console script installed next to this interpreter (not a pyenv shim)."""
    beside = Path(sys.executable).parent / "mcp-server-sessions"
    found = str(beside) if beside.exists() else shutil.which("mcp-server-sessions")
    assert found, "the mcp-server-sessions console script is not installed"
    return found


def server_env(tmp_path: Path, db: Path | str, **extra: str) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "MCP_SESSIONS_DB": str(db), **extra}


def stdio_client(tmp_path: Path, db: Path | str, *args: str, **env: str) -> Client:
    params = StdioServerParameters(command=server_script(), args=list(args), env=server_env(tmp_path, db, **env))
    return Client(params)


# -- tools over stdio ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_list_tools_declares_nine_tools_with_schemas_and_annotations(tmp_path: Path) -> None:
    with anyio.fail_after(START_TIMEOUT):
        async with stdio_client(tmp_path, tmp_path / "s.db") as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) >= TOOLS  # the nine store tools (run and summarize_session may join them)
    for name, tool in tools.items():
        assert tool.description, name
        assert tool.input_schema.get("type") == "object", name
        assert tool.output_schema and tool.output_schema.get("type") == "object", name
        assert tool.annotations is not None, name
        assert tool.annotations.read_only_hint is (name in READ_TOOLS), name
        for parameter, schema in tool.input_schema.get("properties", {}).items():
            assert schema.get("description"), f"{name}.{parameter} has no description"
    assert tools["delete_session"].annotations is not None
    assert tools["delete_session"].annotations.destructive_hint is True
    for name in READ_TOOLS:
        assert tools[name].annotations.destructive_hint is not True, name  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_record_run_history_and_search_round_trip(tmp_path: Path) -> None:
    with anyio.fail_after(START_TIMEOUT):
        async with stdio_client(tmp_path, tmp_path / "s.db", "--user", "alice") as client:
            run = await call_ok(
                client,
                "record_run",
                session_id="trip",
                input="Plan a kayak trip on the fjords",
                output="Start in Bergen and paddle north.",
                run_id="r1",
                tool_calls=[{"tool_name": "weather", "arguments": {"city": "Bergen"}, "result": "rain"}],
                metrics={"input_tokens": 10, "output_tokens": 5, "model": "host-model"},
            )
            assert run["run_id"] == "r1" and run["status"] == "completed" and run["session_id"] == "trip"
            assert run["tool_calls"][0]["tool_name"] == "weather"
            await call_ok(client, "record_run", session_id="trip", input="And the gear?", output="A dry suit.")

            history = await call_ok(client, "get_chat_history", session_id="trip")
            assert [(m["role"], m["content"]) for m in history["messages"]] == [
                ("user", "Plan a kayak trip on the fjords"),
                ("assistant", "Start in Bergen and paddle north."),
                ("user", "And the gear?"),
                ("assistant", "A dry suit."),
            ]
            assert history["next_cursor"] is None

            found = await call_ok(client, "search_previous_sessions", query="KAYAKING fjord")
            assert found["results"], found
            assert found["results"][0]["session_id"] == "trip" and found["results"][0]["run_id"] == "r1"

            calls = await call_ok(client, "get_tool_call_history", session_id="trip")
            assert [c["tool_name"] for c in calls["tool_calls"]] == ["weather"]


@pytest.mark.anyio
async def test_errors_are_one_sentence_and_the_server_keeps_serving(tmp_path: Path) -> None:
    with anyio.fail_after(START_TIMEOUT):
        async with stdio_client(tmp_path, tmp_path / "s.db") as client:
            await call_ok(client, "start_session", session_id="s1", name="first")
            bad_calls: list[tuple[str, dict[str, Any]]] = [
                ("get_session", {"session_id": "missing"}),
                ("delete_session", {"session_id": "missing"}),
                ("get_chat_history", {"session_id": "bad id"}),
                ("record_run", {"session_id": "s1", "input": "no output"}),
                ("list_sessions", {"limit": "many"}),
                ("update_session", {"session_id": "s1", "state": ["not", "an", "object"]}),
                ("start_session", {"session_id": "x" * 129}),
            ]
            for tool, arguments in bad_calls:
                result = await client.call_tool(tool, arguments)
                assert result.is_error, (tool, result)
                assert len(result.content) == 1 and result.content[0].type == "text"
                text = result.content[0].text
                assert text.endswith(".") and "\n" not in text and "Traceback" not in text, text
                assert "sqlite" not in text.lower(), text
                # still serving after every error
                session = await call_ok(client, "get_session", session_id="s1")
                assert session["name"] == "first" and session["run_count"] == 0
            # any string is a valid search query
            for query in ['"unbalanced AND (', "NEAR(", "*", "a OR", "-x:y"]:
                await call_ok(client, "search_previous_sessions", query=query)


@pytest.mark.anyio
async def test_everything_persists_across_a_process_restart(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with anyio.fail_after(START_TIMEOUT):
        async with stdio_client(tmp_path, db, "--user", "alice") as client:
            started = await call_ok(
                client,
                "start_session",
                session_id="keep",
                name="Keeper",
                state={"step": 1},
                metadata={"source": "test"},
                agent={"model": "claude-x", "num_history_runs": 5},
            )
            assert started["created"] is True
            for index in range(3):
                await call_ok(
                    client,
                    "record_run",
                    session_id="keep",
                    input=f"question {index} about glaciers",
                    output=f"answer {index}",
                    run_id=f"run-{index}",
                    tool_calls=[{"tool_name": "lookup", "arguments": {"n": index}, "result": {"ok": index}}],
                )
            await call_ok(client, "update_session", session_id="keep", state={"step": 2, "extra": True})
            await call_ok(client, "record_run", session_id="other", input="bob's message", output="ok", user_id="bob")
            before = {
                "session": await call_ok(client, "get_session", session_id="keep"),
                "history": await call_ok(client, "get_chat_history", session_id="keep", include_tool_messages=True),
                "tools": await call_ok(client, "get_tool_call_history", session_id="keep"),
                "search": await call_ok(client, "search_previous_sessions", query="glacier"),
                "list": await call_ok(client, "list_sessions"),
                "bob": await call_ok(client, "list_sessions", user_id="bob"),
            }
    assert before["session"]["run_count"] == 3 and before["session"]["state"] == {"step": 2, "extra": True}
    assert len(before["search"]["results"]) == 3

    with anyio.fail_after(START_TIMEOUT):
        async with stdio_client(tmp_path, db, "--user", "alice") as client:
            after = {
                "session": await call_ok(client, "get_session", session_id="keep"),
                "history": await call_ok(client, "get_chat_history", session_id="keep", include_tool_messages=True),
                "tools": await call_ok(client, "get_tool_call_history", session_id="keep"),
                "search": await call_ok(client, "search_previous_sessions", query="glacier"),
                "list": await call_ok(client, "list_sessions"),
                "bob": await call_ok(client, "list_sessions", user_id="bob"),
            }
            again = await call_ok(client, "start_session", session_id="keep")
            assert again["created"] is False and again["run_count"] == 3
            # a retry of a stored run_id after the restart stores nothing twice
            await call_ok(client, "record_run", session_id="keep", input="dup", output="dup", run_id="run-1")
            assert (await call_ok(client, "get_session", session_id="keep"))["run_count"] == 3
    assert after == before
    assert after["session"]["agent"]["model"] == "claude-x"
    assert [s["session_id"] for s in after["list"]["sessions"]] == ["keep"]
    assert [s["session_id"] for s in after["bob"]["sessions"]] == ["other"]


# -- command line, environment, database file ----------------------------------------------


def test_help_exits_zero_and_documents_the_flags(tmp_path: Path) -> None:
    done = subprocess.run(
        [server_script(), "--help"],
        env=server_env(tmp_path, tmp_path / "unused.db"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    for flag in ("--db", "--user", "--log-level", "MCP_SESSIONS_DB", "MCP_SESSIONS_USER"):
        assert flag in done.stdout, flag
    assert not (tmp_path / "unused.db").exists()


def test_an_invalid_user_is_refused_at_start(tmp_path: Path) -> None:
    for args, env in ((["--user", "bad user"], {}), ([], {"MCP_SESSIONS_USER": "bad user"})):
        done = subprocess.run(
            [server_script(), *args],
            env=server_env(tmp_path, tmp_path / "s.db", **env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and "user" in done.stderr
        assert done.stdout == ""


@pytest.mark.anyio
async def test_user_comes_from_the_flag_then_the_environment(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with anyio.fail_after(2 * START_TIMEOUT):
        async with stdio_client(tmp_path, db, MCP_SESSIONS_USER="envuser") as client:
            session = await call_ok(client, "start_session", session_id="s")
            assert session["user_id"] == "envuser"
            await call_ok(client, "record_run", session_id="s", input="hello from env", output="ok")
        async with stdio_client(tmp_path, db, "--user", "flaguser", MCP_SESSIONS_USER="envuser") as client:
            session = await call_ok(client, "start_session", session_id="s")
            assert session["user_id"] == "flaguser" and session["created"] is True
            # the env user's session is invisible to the flag user by default, visible by name
            assert (await call_ok(client, "list_sessions"))["total"] == 1
            assert (await call_ok(client, "get_session", session_id="s", user_id="envuser"))["run_count"] == 1
            assert not (await call_ok(client, "search_previous_sessions", query="hello"))["results"]
    with closing(sqlite3.connect(db)) as conn:
        users = {row[0] for row in conn.execute("SELECT user_id FROM users")}
    assert users - {PURGING_USER} == {"envuser", "flaguser"}  # PURGING_USER: the owner of sessions being deleted


@pytest.mark.anyio
async def test_the_db_file_is_private_and_its_folders_are_created(tmp_path: Path) -> None:
    """--db wins over MCP_SESSIONS_DB, `~` is the user's home, missing folders are made, the file is 0600."""
    env_db = tmp_path / "from-env" / "unused.db"
    db = tmp_path / "home" / "deep" / "er" / "sessions.db"  # server_env's HOME is tmp_path / "home"
    with anyio.fail_after(START_TIMEOUT):
        async with stdio_client(tmp_path, env_db, "--db", "~/deep/er/sessions.db") as client:
            await call_ok(client, "record_run", session_id="s", input="hi", output="ho")
            assert stat.S_IMODE(db.stat().st_mode) == 0o600
            for companion in (Path(f"{db}-wal"), Path(f"{db}-shm")):
                if companion.exists():
                    assert stat.S_IMODE(companion.stat().st_mode) == 0o600, companion
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert not env_db.parent.exists()
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 1


# -- the stdio channel itself -------------------------------------------------------------


def _request(request_id: int, method: str, params: dict[str, Any]) -> bytes:
    return (json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}) + "\n").encode()


@pytest.mark.anyio
async def test_stdout_carries_only_json_rpc_and_logs_go_to_stderr(tmp_path: Path) -> None:
    stderr_log = tmp_path / "stderr.log"
    lines: list[bytes] = []
    with anyio.fail_after(START_TIMEOUT), stderr_log.open("wb") as errors:
        process = await anyio.open_process(
            [server_script(), "--log-level", "DEBUG"],
            env=server_env(tmp_path, tmp_path / "s.db"),
            stderr=errors,
        )
        async with process:
            assert process.stdin is not None and process.stdout is not None
            stdout = BufferedByteReceiveStream(process.stdout)
            await process.stdin.send(
                _request(
                    1,
                    "initialize",
                    {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
                )
            )
            lines.append(await stdout.receive_until(b"\n", 1_000_000))
            await process.stdin.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
            await process.stdin.send(_request(2, "tools/list", {}))
            lines.append(await stdout.receive_until(b"\n", 1_000_000))
            arguments = {"session_id": "s1", "input": "hello", "output": "world"}
            await process.stdin.send(_request(3, "tools/call", {"name": "record_run", "arguments": arguments}))
            lines.append(await stdout.receive_until(b"\n", 1_000_000))
            await process.stdin.send(
                _request(4, "tools/call", {"name": "get_session", "arguments": {"session_id": "x"}})
            )
            lines.append(await stdout.receive_until(b"\n", 1_000_000))
            await process.stdin.aclose()
            # whatever else the server prints before it exits must be JSON-RPC too
            try:
                while True:
                    lines.append(await stdout.receive_until(b"\n", 1_000_000))
            except (anyio.EndOfStream, anyio.IncompleteRead):
                pass
            assert await process.wait() == 0
    messages = [json.loads(line) for line in lines]  # every stdout line parses
    assert all(message.get("jsonrpc") == "2.0" for message in messages)
    by_id = {message.get("id"): message for message in messages}
    assert by_id[1]["result"]["serverInfo"]["name"] == "mcp-server-sessions"
    assert {tool["name"] for tool in by_id[2]["result"]["tools"]} >= TOOLS
    assert by_id[3]["result"]["isError"] is False
    assert by_id[3]["result"]["structuredContent"]["status"] == "completed"
    assert by_id[4]["result"]["isError"] is True
    log = stderr_log.read_text()
    assert " DEBUG " in log and "Traceback" not in log
    assert all(line.startswith("20") for line in log.splitlines())  # "%(asctime)s ..." log lines only


INITIALIZE = _request(
    1, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
)


def start_and_expect_refusal(tmp_path: Path, db: Path, *, greet: bool = True) -> str:
    """Start the server with stdin kept open (sending initialize if `greet`, as a client would);
    it must exit 1 on its own, write nothing to stdout and no traceback. Returns its stderr."""
    process = subprocess.Popen(
        [server_script()],
        env=server_env(tmp_path, db),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdin is not None
        if greet:
            process.stdin.write(INITIALIZE)
            process.stdin.flush()
        returncode = process.wait(timeout=START_TIMEOUT)  # stdin still open: no end-of-input to exit on
    finally:
        if process.poll() is None:
            process.kill()
        stdout, stderr = process.communicate(timeout=START_TIMEOUT)
    assert returncode == 1, stderr
    assert stdout == b""
    text = stderr.decode()
    assert "Traceback" not in text
    return text


def test_a_file_from_a_newer_schema_is_refused_with_one_clear_line(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    db.touch(mode=0o600)  # a file others could read would add a warning line
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', '2030-01-01T00:00:00Z')")
    lines = start_and_expect_refusal(tmp_path, db).strip().splitlines()
    assert len(lines) == 1, lines
    assert " ERROR " in lines[0]
    assert "schema version 999" in lines[0] and "upgrade mcp-server-sessions" in lines[0]
    with closing(sqlite3.connect(db)) as conn:  # the file is left as it was
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 999
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sessions'").fetchone()[0] == 0


def test_a_file_that_is_not_a_database_is_refused_and_the_server_exits(tmp_path: Path) -> None:
    db = tmp_path / "not-a-db.db"
    db.write_bytes(b"this is not a SQLite database\n" * 100)
    assert "--db" in start_and_expect_refusal(tmp_path, db)
    assert db.read_bytes() == b"this is not a SQLite database\n" * 100


def test_a_bad_database_fails_at_start_without_waiting_for_a_client(tmp_path: Path) -> None:
    db = tmp_path / "not-a-db.db"
    db.write_bytes(b"not a database\n")
    # no initialize: the server must refuse the file and exit without waiting for a client
    assert "--db" in start_and_expect_refusal(tmp_path, db, greet=False)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens there once the probe closes


@pytest.mark.parametrize(
    ("url", "status", "told"),
    [
        ("postgresql://user@127.0.0.1:{port}/sessions", 1, b"Cannot connect to PostgreSQL at 127.0.0.1:"),
        ("sqlite://sessions.db", 2, b"takes a SQLite file path, :memory:, or a postgresql:// URL"),
    ],
)
def test_a_database_url_is_never_taken_for_a_file_name(tmp_path: Path, url: str, status: int, told: bytes) -> None:
    result = subprocess.run(
        [server_script(), "--db", url.format(port=_closed_port())],
        env=server_env(tmp_path, tmp_path / "unused.db"),
        cwd=tmp_path,
        capture_output=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert result.returncode == status and told in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not any(path.name.startswith(("postgresql:", "sqlite:")) for path in tmp_path.rglob("*"))
