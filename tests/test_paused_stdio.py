"""A paused run outlives its server: paused over one stdio subprocess, continued over another on the same file."""

import sqlite3
from contextlib import closing
from pathlib import Path

import anyio
import pytest
from mcp import Client

from tests.anthropic_double import MessagesDouble, text, tool_use
from tests.test_agent_stdio import server
from tests.test_paused_runs import WEATHER, strip_cache

pytestmark = pytest.mark.anyio


async def test_a_run_paused_by_one_server_is_continued_by_the_next(tmp_path: Path, double: MessagesDouble) -> None:
    db = tmp_path / "sessions.db"
    double.script(text("Hi Alice."), tool_use("get_weather", {"city": "Oslo"}, id="toolu_w1"), text("Sunny in Oslo."))
    with anyio.fail_after(60):
        async with Client(server(db, double)) as first:
            await first.call_tool("run", {"message": "I am Alice", "session_id": "s1"})
            paused = await first.call_tool(
                "run", {"message": "Weather?", "session_id": "s1", "tools": [WEATHER], "system": "Be brief."}
            )
    assert not paused.is_error and paused.structured_content is not None
    run_id = paused.structured_content["run_id"]
    assert paused.structured_content["requirements"] == [
        {"tool_call_id": "toolu_w1", "tool_name": "get_weather", "arguments": {"city": "Oslo"}}
    ]
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT status FROM runs ORDER BY pk").fetchall() == [("completed",), ("paused",)]
    with anyio.fail_after(60):
        async with Client(server(db, double)) as second:
            listed = await second.call_tool("get_session", {"session_id": "s1"})
            assert listed.structured_content is not None
            assert listed.structured_content["paused_run_ids"] == [run_id]
            answer = [{"tool_call_id": "toolu_w1", "result": {"sky": "clear"}}]
            continued = await second.call_tool("continue_run", {"run_id": run_id, "tool_results": answer})
    assert not continued.is_error and continued.structured_content is not None
    assert (continued.structured_content["status"], continued.structured_content["content"]) == (
        "completed",
        "Sunny in Oslo.",
    )
    paused_request, continued_request = double.bodies[1], double.bodies[2]
    assert continued_request["system"] == paused_request["system"]
    assert continued_request["tools"] == paused_request["tools"]
    assert continued_request["model"] == "claude-stdio"
    assert strip_cache(continued_request["messages"]) == [
        {"role": "user", "content": [{"type": "text", "text": "I am Alice"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hi Alice."}]},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_w1", "name": "get_weather", "input": {"city": "Oslo"}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_w1", "content": '{"sky": "clear"}', "is_error": False}
            ],
        },
    ]
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT status, resume FROM runs ORDER BY pk").fetchall() == [
            ("completed", None),
            ("completed", None),
        ]
