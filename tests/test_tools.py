"""The contract of every MCP tool, through a real in-process MCP client."""

import pytest
from mcp import Client

from tests.helpers import READ_TOOLS, STORE_TOOLS, call_error, call_ok

pytestmark = pytest.mark.anyio

TOOLS = {*STORE_TOOLS, "cancel_run", "run", "summarize_session", "continue_run"}
SESSION_FIELDS = {
    "session_id",
    "user_id",
    "name",
    "state",
    "metadata",
    "agent",
    "summary",
    "run_count",
    "created_at",
    "updated_at",
}
RUN_FIELDS = {"run_id", "session_id", "status", "input", "content", "tool_calls", "metrics", "created_at"}
TOOL_CALL_FIELDS = {
    "tool_call_id",
    "run_id",
    "tool_name",
    "arguments",
    "result",
    "is_error",
    "created_at",
    "duration_ms",
}


async def test_every_tool_is_declared_with_schemas_descriptions_and_annotations(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for name, tool in tools.items():
        assert tool.description and tool.output_schema, name
        for parameter, schema in tool.input_schema["properties"].items():
            assert schema.get("description"), f"{name}.{parameter} has no description"
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is (name in READ_TOOLS), name
    assert tools["delete_session"].annotations.destructive_hint is True
    assert tools["record_run"].input_schema["required"] == ["session_id", "input", "output"]
    assert tools["search_previous_sessions"].input_schema["required"] == ["query"]
    assert set(tools["get_session"].output_schema["required"]) >= SESSION_FIELDS


async def test_start_session_and_get_session(client: Client) -> None:
    started = await call_ok(
        client,
        "start_session",
        session_id="s1",
        name="Trip",
        state={"k": 1},
        metadata={"m": True},
        agent={"model": "claude-x", "num_history_runs": 2},
    )
    kind_fields = {"session_type", "agent_id", "team_id", "workflow_id", "paused_run_ids"}
    assert set(started) == SESSION_FIELDS | {"created", "metrics"} | kind_fields
    assert started["created"] is True and started["user_id"] == "alice"
    assert started["agent"]["num_history_runs"] == 2 and started["agent"]["auto_summary"] is False
    again = await call_ok(client, "start_session", session_id="s1")
    assert again["created"] is False and again["name"] == "Trip"
    fetched = await call_ok(client, "get_session", session_id="s1")
    assert fetched == {k: v for k, v in started.items() if k != "created"}
    fresh = await call_ok(client, "start_session")
    assert len(fresh["session_id"]) == 36


async def test_record_run_returns_the_run_and_is_idempotent(client: Client) -> None:
    args = {
        "session_id": "s1",
        "input": "What is the weather?",
        "output": "Sunny.",
        "run_id": "turn-1",
        "tool_calls": [{"tool_name": "weather", "arguments": {"city": "Oslo"}, "result": "sun", "duration_ms": 3}],
        "metrics": {"input_tokens": 10, "output_tokens": 2, "model": "host-model"},
    }
    run = await call_ok(client, "record_run", **args)
    assert set(run) >= RUN_FIELDS
    assert (run["run_id"], run["status"], run["input"], run["content"]) == (
        "turn-1",
        "completed",
        "What is the weather?",
        "Sunny.",
    )
    assert set(run["tool_calls"][0]) == TOOL_CALL_FIELDS and run["tool_calls"][0]["duration_ms"] == 3
    assert run["metrics"]["input_tokens"] == 10 and run["metrics"]["model"] == "host-model"
    assert await call_ok(client, "record_run", **args) == run
    assert (await call_ok(client, "get_session", session_id="s1"))["run_count"] == 1
    generated = await call_ok(client, "record_run", session_id="s1", input="again", output="ok")
    assert generated["run_id"] != "turn-1"


async def test_get_chat_history_and_tool_call_history(client: Client) -> None:
    for i in range(3):
        await call_ok(
            client,
            "record_run",
            session_id="s1",
            input=f"q{i}",
            output=f"a{i}",
            tool_calls=[{"tool_name": "lookup", "arguments": {"i": i}, "result": {"n": i}}],
        )
    history = await call_ok(client, "get_chat_history", session_id="s1", last_n_runs=2)
    assert [m["content"] for m in history["messages"]] == ["q1", "a1", "q2", "a2"]
    assert set(history["messages"][0]) == {"role", "content", "run_id", "created_at", "attachments"}
    assert history["next_cursor"] is None
    page = await call_ok(client, "get_chat_history", session_id="s1", limit=4, include_tool_messages=True)
    assert [m["role"] for m in page["messages"]] == ["user", "tool", "assistant", "user"]
    rest = await call_ok(
        client, "get_chat_history", session_id="s1", cursor=page["next_cursor"], include_tool_messages=True
    )
    assert [m["role"] for m in rest["messages"]] == ["tool", "assistant", "user", "tool", "assistant"]
    assert [m["content"] for m in rest["messages"] if m["role"] != "tool"] == ["a1", "q2", "a2"]
    calls = await call_ok(client, "get_tool_call_history", session_id="s1", limit=2)
    assert [c["arguments"]["i"] for c in calls["tool_calls"]] == [2, 1] and calls["next_cursor"]
    older = await call_ok(client, "get_tool_call_history", session_id="s1", cursor=calls["next_cursor"])
    assert [c["result"] for c in older["tool_calls"]] == [{"n": 0}]


async def test_search_previous_sessions(client: Client) -> None:
    await call_ok(client, "record_run", session_id="trip", input="Plan a kayak trip on the fjords", output="Sure.")
    await call_ok(client, "record_run", session_id="now", input="kayaking again?", output="Yes.")
    found = await call_ok(client, "search_previous_sessions", query="kayaking fjord")
    assert found["results"][0]["session_id"] == "trip"
    assert set(found["results"][0]) == {
        "session_id",
        "session_name",
        "run_id",
        "role",
        "snippet",
        "score",
        "created_at",
    }
    other = await call_ok(client, "search_previous_sessions", query="kayaking", exclude_session_id="now")
    assert {r["session_id"] for r in other["results"]} == {"trip"}


async def test_list_update_and_delete_sessions(client: Client) -> None:
    for i in range(3):
        await call_ok(client, "start_session", session_id=f"s{i}", name=f"n{i}")
    listed = await call_ok(client, "list_sessions", limit=2, sort_by="created_at", order="asc")
    assert listed["total"] == 3 and [s["session_id"] for s in listed["sessions"]] == ["s0", "s1"]
    last = await call_ok(
        client, "list_sessions", limit=2, sort_by="created_at", order="asc", cursor=listed["next_cursor"]
    )
    assert [s["session_id"] for s in last["sessions"]] == ["s2"] and last["next_cursor"] is None
    updated = await call_ok(client, "update_session", session_id="s1", state={"a": 1}, name="renamed")
    assert updated["state"] == {"a": 1} and updated["name"] == "renamed"
    replaced = await call_ok(client, "update_session", session_id="s1", state={"b": 2}, merge_state=False)
    assert replaced["state"] == {"b": 2}
    assert await call_ok(client, "delete_session", session_id="s1") == {"session_id": "s1", "deleted": True}
    message = await call_error(client, "get_session", session_id="s1")
    assert "No session 's1'" in message and "list_sessions" in message


async def test_text_rendering_carries_the_content(client: Client) -> None:
    await call_ok(client, "record_run", session_id="s1", input="the question", output="the answer")
    result = await client.call_tool("get_chat_history", {"session_id": "s1"})
    assert result.content[0].text == "user: the question\nassistant: the answer"


async def test_text_rendering_stays_short_while_structured_content_is_whole(client: Client) -> None:
    long = "word " * 2_000
    await call_ok(client, "record_run", session_id="s1", input=long, output="fine")
    result = await client.call_tool("get_chat_history", {"session_id": "s1"})
    assert result.structured_content is not None
    assert result.structured_content["messages"][0]["content"] == long
    text = result.content[0].text
    assert len(text) < 700 and text.startswith("user: word word") and "…" in text
