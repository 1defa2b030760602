"""`run`: a Claude turn inside a session, against the Messages API test double."""

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from mcp_server_sessions.server.agent.turn import MAX_MODEL_CALLS
from mcp_server_sessions.server.app import build_server
from mcp_server_sessions.server.settings import Settings
from tests.anthropic_double import MessagesDouble, error, forced_tool_input, text, tool_use, tool_uses
from tests.helpers import call_error, call_ok

pytestmark = pytest.mark.anyio


def user_texts(body: dict[str, Any]) -> list[str]:
    """Every text block of the request's messages, in order, prefixed by the role."""
    return [
        f"{m['role']}: {block['text']}"
        for m in body["messages"]
        for block in m["content"]
        if block.get("type") == "text"
    ]


async def test_a_run_stores_the_turn_with_metrics(agent_client: Client, double: MessagesDouble) -> None:
    double.script(
        text(
            "Hello Alice!", input_tokens=30, output_tokens=7, cache_read_input_tokens=11, cache_creation_input_tokens=5
        )
    )
    run = await call_ok(agent_client, "run", message="Hi, I am Alice", session_id="s1")
    assert (run["status"], run["input"], run["content"], run["session_id"]) == (
        "completed",
        "Hi, I am Alice",
        "Hello Alice!",
        "s1",
    )
    metrics = run["metrics"]
    assert (metrics["input_tokens"], metrics["output_tokens"], metrics["total_tokens"]) == (30, 7, 37)
    assert (metrics["cache_read_tokens"], metrics["cache_write_tokens"], metrics["model"]) == (11, 5, "claude-test")
    assert metrics["duration_ms"] > 0 and metrics["time_to_first_token_ms"] is not None
    [request] = double.bodies
    assert request["stream"] is True and request["model"] == "claude-test"
    history = await call_ok(agent_client, "get_chat_history", session_id="s1")
    assert [(m["role"], m["content"]) for m in history["messages"]] == [
        ("user", "Hi, I am Alice"),
        ("assistant", "Hello Alice!"),
    ]
    session = await call_ok(agent_client, "get_session", session_id="s1")
    assert session["run_count"] == 1
    assert session["metrics"] == {
        "input_tokens": 30,
        "output_tokens": 7,
        "total_tokens": 37,
        "cache_read_tokens": 11,
        "cache_write_tokens": 5,
    }


async def test_run_without_session_id_starts_a_new_session(agent_client: Client, double: MessagesDouble) -> None:
    run = await call_ok(agent_client, "run", message="hello")
    assert len(run["session_id"]) == 36
    assert (await call_ok(agent_client, "list_sessions"))["total"] == 1


async def test_history_is_in_context_and_absent_with_zero_runs(agent_client: Client, double: MessagesDouble) -> None:
    for i in range(4):
        double.script(text(f"answer {i}"))
        await call_ok(agent_client, "run", message=f"question {i}", session_id="s1")
    # default: the last 3 completed runs, then the new message
    double.script(text("five"))
    await call_ok(agent_client, "run", message="question 4", session_id="s1")
    assert user_texts(double.bodies[-1]) == [
        "user: question 1",
        "assistant: answer 1",
        "user: question 2",
        "assistant: answer 2",
        "user: question 3",
        "assistant: answer 3",
        "user: question 4",
    ]
    await call_ok(agent_client, "run", message="alone", session_id="s1", num_history_runs=0)
    assert user_texts(double.bodies[-1]) == ["user: alone"]
    await call_ok(agent_client, "run", message="one back", session_id="s1", num_history_runs=1)
    assert user_texts(double.bodies[-1])[0] == "user: alone"


async def test_session_agent_config_and_run_overrides(agent_client: Client, double: MessagesDouble) -> None:
    await call_ok(
        agent_client,
        "start_session",
        session_id="s1",
        agent={"model": "claude-session", "system": "Be terse.", "num_history_runs": 1, "max_tokens": 99},
    )
    await call_ok(agent_client, "run", message="a", session_id="s1")
    first = double.bodies[-1]
    assert (first["model"], first["max_tokens"], first["system"][0]["text"]) == ("claude-session", 99, "Be terse.")
    await call_ok(agent_client, "run", message="b", session_id="s1")
    await call_ok(
        agent_client, "run", message="c", session_id="s1", model="claude-run", system="Be loud.", max_tokens=5
    )
    last = double.bodies[-1]
    assert (last["model"], last["max_tokens"], last["system"][0]["text"]) == ("claude-run", 5, "Be loud.")
    assert user_texts(last) == ["user: b", "assistant: ok", "user: c"]  # num_history_runs=1 from the session


async def test_state_and_summary_are_in_the_system_prompt_with_cache_points(
    agent_client: Client, double: MessagesDouble
) -> None:
    await call_ok(agent_client, "start_session", session_id="s1", state={"city": "Bergen"})
    await call_ok(agent_client, "run", message="first", session_id="s1")
    body = double.bodies[-1]
    system = body["system"]
    assert system[0]["cache_control"] == {"type": "ephemeral"}
    assert any('"city": "Bergen"' in block["text"] for block in system[1:])
    marked = [b for m in body["messages"] for b in m["content"] if "cache_control" in b]
    assert marked == [body["messages"][-1]["content"][-1]]
    double.script(forced_tool_input({"summary": "They talked about Bergen.", "topics": ["Bergen"]}))
    await call_ok(agent_client, "summarize_session", session_id="s1")
    await call_ok(agent_client, "run", message="second", session_id="s1")
    system = double.bodies[-1]["system"]
    assert any("They talked about Bergen." in block["text"] for block in system)


async def test_update_session_state_tool_merges_state(agent_client: Client, double: MessagesDouble) -> None:
    await call_ok(agent_client, "start_session", session_id="s1", state={"a": 1})
    double.script(tool_use("update_session_state", {"session_state_updates": {"b": 2}}), text("done"))
    run = await call_ok(agent_client, "run", message="remember b", session_id="s1")
    [call] = run["tool_calls"]
    assert (call["tool_name"], call["arguments"], call["is_error"]) == (
        "update_session_state",
        {"session_state_updates": {"b": 2}},
        False,
    )
    assert call["result"] == {"state": {"a": 1, "b": 2}} and call["duration_ms"] >= 0
    assert (await call_ok(agent_client, "get_session", session_id="s1"))["state"] == {"a": 1, "b": 2}
    tool_result = double.bodies[1]["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result" and tool_result["tool_use_id"] == call["tool_call_id"]


async def test_reading_tools_and_pairs_kept_together(agent_client: Client, double: MessagesDouble) -> None:
    await call_ok(agent_client, "record_run", session_id="old", input="We kayaked in Norway", output="Nice")
    await call_ok(
        agent_client,
        "record_run",
        session_id="s1",
        input="earlier question",
        output="earlier answer",
        tool_calls=[{"tool_name": "lookup", "arguments": {"q": 1}, "result": "r"}],
    )
    double.script(
        tool_uses(
            [
                ("get_chat_history", {"last_n_runs": 1}),
                ("get_tool_call_history", {"tool_name": "lookup"}),
                ("search_previous_sessions", {"query": "kayaking norway"}),
            ],
            text="Let me look.",
        ),
        text("Found it."),
    )
    run = await call_ok(agent_client, "run", message="what did we do?", session_id="s1")
    history, calls, search = (json.loads(json.dumps(c["result"])) for c in run["tool_calls"])
    assert [m["content"] for m in history] == ["earlier question", "earlier answer"]
    assert [c["tool_name"] for c in calls] == ["lookup"]
    assert [h["session_id"] for h in search] == ["old"]
    # the next turn replays the whole previous run: every tool_use right before its tool_result
    await call_ok(agent_client, "run", message="next", session_id="s1", num_history_runs=1)
    messages = double.bodies[-1]["messages"]
    uses = [b["id"] for m in messages if m["role"] == "assistant" for b in m["content"] if b["type"] == "tool_use"]
    results = [b["tool_use_id"] for m in messages for b in m["content"] if b["type"] == "tool_result"]
    assert uses == results and len(uses) == 3
    for index, message in enumerate(messages):
        if any(b["type"] == "tool_use" for b in message["content"]):
            assert messages[index + 1]["content"][0]["type"] == "tool_result"
    assert messages[0]["role"] == "user"
    default_history = await call_ok(agent_client, "get_chat_history", session_id="s1", last_n_runs=2)
    assert [m["content"] for m in default_history["messages"]] == ["what did we do?", "Found it.", "next", "ok"]


async def test_a_bad_tool_call_is_an_error_result_not_a_failed_run(
    agent_client: Client, double: MessagesDouble
) -> None:
    double.script(tool_uses([("no_such_tool", {}), ("get_chat_history", {"limit": -5})]), text("sorry"))
    run = await call_ok(agent_client, "run", message="x", session_id="s1")
    assert run["status"] == "completed" and [c["is_error"] for c in run["tool_calls"]] == [True, True]
    assert "no_such_tool" in run["tool_calls"][0]["result"]
    assert "limit" in run["tool_calls"][1]["result"]


async def test_the_tools_a_model_calls_refuse_arguments_in_the_mcp_tools_wording(
    agent_client: Client, double: MessagesDouble
) -> None:
    """One formatter words a refused argument, for MCP clients and for the model alike."""
    double.script(
        tool_uses(
            [
                ("get_chat_history", {"limit": 999}),
                ("get_chat_history", {"foo": 1}),
                ("search_previous_sessions", {}),
            ]
        ),
        text("sorry"),
    )
    run = await call_ok(agent_client, "run", message="x", session_id="s1")
    assert [call["result"] for call in run["tool_calls"]] == [
        "Invalid argument 'limit' for get_chat_history: should be less than or equal to 200; fix it and call again.",
        "get_chat_history has no argument 'foo'; remove it and call again (it accepts last_n_runs, limit).",
        "search_previous_sessions needs the argument 'query'; add it and call again.",
    ]
    mcp_refusal = await call_error(agent_client, "get_chat_history", session_id="s1", limit=5000)
    assert mcp_refusal == (
        "Invalid argument 'limit' for get_chat_history: should be less than or equal to 1000; fix it and call again."
    )


async def test_the_tool_loop_is_bounded(agent_client: Client, double: MessagesDouble) -> None:
    double.script(*[tool_use("get_chat_history", {}) for _ in range(MAX_MODEL_CALLS + 2)])
    message = await call_error(agent_client, "run", message="loop", session_id="s1")
    assert f"{MAX_MODEL_CALLS} model calls" in message
    assert len(double.requests) == MAX_MODEL_CALLS
    calls = await call_ok(agent_client, "get_tool_call_history", session_id="s1", limit=50)
    assert len(calls["tool_calls"]) == MAX_MODEL_CALLS
    double.script(text("fine"))
    await call_ok(agent_client, "run", message="after", session_id="s1")
    assert user_texts(double.bodies[-1]) == ["user: after"]  # the error run stays out of context


@pytest.mark.parametrize(
    ("reply", "attempts", "phrase"),
    [
        (error(429), 2, "rate limiting"),  # retryable: the SDK tries twice (max_retries=1)
        (error(500), 2, "HTTP 500"),
        (error(529), 2, "overloaded_error"),
        (error(500, mid_stream=True), 1, "failed"),
        (error(400, message="max_tokens: too large"), 1, "refused the request"),
        (error(401), 1, "ANTHROPIC_API_KEY"),
    ],
)
async def test_model_failures_store_an_error_run(
    agent_client: Client, double: MessagesDouble, reply: Any, attempts: int, phrase: str
) -> None:
    double.script(*[reply] * attempts)
    message = await call_error(agent_client, "run", message="hi", session_id="s1")
    assert phrase in message and "stored with status error" in message
    assert "double:" not in message  # the API's own text stays in the log
    assert len(double.requests) == attempts
    session = await call_ok(agent_client, "get_session", session_id="s1")
    assert session["run_count"] == 1
    await call_ok(agent_client, "run", message="again", session_id="s1")
    assert user_texts(double.bodies[-1]) == ["user: again"]


async def test_a_retried_429_then_success_completes(agent_client: Client, double: MessagesDouble) -> None:
    double.script(error(429), text("made it"))
    run = await call_ok(agent_client, "run", message="hi", session_id="s1")
    assert run["content"] == "made it" and len(double.requests) == 2


async def test_a_slow_model_times_out_cleanly(agent_client: Client, double: MessagesDouble) -> None:
    double.script(text("late", hold=True), text("late", hold=True))
    with anyio.fail_after(20):
        message = await call_error(agent_client, "run", message="hi", session_id="s1")
    assert "did not answer in time" in message
    double.release()


async def test_no_api_key_is_a_clear_error_and_other_tools_work(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    async with Client(build_server(Settings(db=str(db_path), user="alice"))) as client:
        for tool, args in (("run", {"message": "hi"}), ("summarize_session", {"session_id": "s1"})):
            message = await call_error(client, tool, **args)
            assert "ANTHROPIC_API_KEY" in message
        await call_ok(client, "record_run", session_id="s1", input="q", output="a")
        assert (await call_ok(client, "list_sessions"))["total"] == 1


async def test_progress_is_reported_as_text_streams(agent_client: Client, double: MessagesDouble) -> None:
    double.script(text("streamed reply text"))
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    result = await agent_client.call_tool("run", {"message": "hi", "session_id": "s1"}, progress_callback=on_progress)
    assert not result.is_error
    assert "".join(m or "" for _, m in seen) == "streamed reply text"
    assert [p for p, _ in seen] == sorted(p for p, _ in seen) and len(seen) > 1


def stored_run(db_path: Path) -> tuple[str, str | None] | None:
    with closing(sqlite3.connect(db_path)) as conn:
        return conn.execute("SELECT status, content FROM runs").fetchone()


async def test_cancelling_a_run_stores_it_cancelled_with_partial_text(
    agent_client: Client, double: MessagesDouble, db_path: Path
) -> None:
    gate = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        gate.set()

    double.script(text("partial words then a long wait", chunk_delay=0.5))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(
            lambda: agent_client.call_tool("run", {"message": "hi", "session_id": "s1"}, progress_callback=on_progress)
        )
        with anyio.fail_after(10):
            await gate.wait()
        tasks.cancel_scope.cancel()
    with anyio.fail_after(10):  # the cancelled tool call commits its run in a shielded scope
        while (row := stored_run(db_path)) is None or row[0] == "running":
            await anyio.sleep(0.01)
    status, content = row
    assert status == "cancelled" and content and "partial words then a long wait".startswith(content)
    history = await call_ok(agent_client, "get_chat_history", session_id="s1")
    assert [m["content"] for m in history["messages"]] == ["hi", content]
    double.script(text("next"))
    await call_ok(agent_client, "run", message="after", session_id="s1")
    assert user_texts(double.bodies[-1]) == ["user: after"]  # a cancelled run never enters context


async def test_a_model_in_alices_session_cannot_reach_bobs_data(agent_client: Client, double: MessagesDouble) -> None:
    await call_ok(
        agent_client,
        "record_run",
        user_id="bob",
        session_id="s1",
        input="bob's volcano secret",
        output="kept",
        tool_calls=[{"tool_name": "vault", "arguments": {}, "result": "volcano code"}],
    )
    await call_ok(agent_client, "record_run", user_id="bob", session_id="other", input="volcano again", output="ok")
    double.script(
        tool_uses(
            [
                ("search_previous_sessions", {"query": "volcano secret"}),
                ("get_chat_history", {}),
                ("get_tool_call_history", {}),
                ("get_chat_history", {"session_id": "s1", "user_id": "bob"}),
            ]
        ),
        text("nothing found"),
    )
    run = await call_ok(agent_client, "run", message="find bob's secret", session_id="s1")
    search, history, calls, forged = run["tool_calls"]
    assert search["result"] == [] and calls["result"] == []
    assert [m["content"] for m in history["result"]] == []  # alice's s1 had no finished runs yet
    assert forged["is_error"] and "session_id" in forged["result"]
    for tool in double.bodies[0]["tools"]:
        assert not {"user_id", "session_id"} & set(tool["input_schema"]["properties"])
    bob = await call_ok(agent_client, "get_chat_history", user_id="bob", session_id="s1")
    assert [m["content"] for m in bob["messages"]] == ["bob's volcano secret", "kept"]


async def test_a_reply_cut_off_mid_tool_call_never_breaks_later_turns(
    agent_client: Client, double: MessagesDouble
) -> None:
    cut = tool_use("get_chat_history", {}, text="Let me look")
    cut.stop_reason = "max_tokens"  # the output ended inside a tool call: there is no tool_result
    double.script(cut, text("", stop_reason="end_turn"))
    first = await call_ok(agent_client, "run", message="one", session_id="s1")
    assert first["status"] == "completed" and first["content"] == "Let me look" and first["tool_calls"] == []
    await call_ok(agent_client, "run", message="two", session_id="s1")  # an empty reply
    await call_ok(agent_client, "run", message="three", session_id="s1")
    messages = double.bodies[-1]["messages"]
    assert not [b for m in messages for b in m["content"] if b["type"] == "tool_use"]
    assert all(m["content"] for m in messages) and all(
        b.get("text") for m in messages for b in m["content"] if b["type"] == "text"
    )
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]


async def test_an_oversize_message_is_refused_before_the_model_is_called(
    agent_client: Client, double: MessagesDouble, db_path: Path
) -> None:
    message = await call_error(agent_client, "run", message="é" * 600_000, session_id="s1")  # 1.2 MB of UTF-8
    assert "1,000,000" in message
    assert double.requests == [] and stored_run(db_path) is None


async def test_a_session_deleted_during_a_run_is_not_brought_back(
    agent_client: Client, double: MessagesDouble, db_path: Path
) -> None:
    held = text("late answer", hold=True)
    double.script(held)
    async with anyio.create_task_group() as tasks:

        async def run() -> None:
            message = await call_error(agent_client, "run", message="hi", session_id="s1")
            assert "No session 's1'" in message

        tasks.start_soon(run)
        with anyio.fail_after(10):
            await double.await_requests(1)
        await call_ok(agent_client, "delete_session", session_id="s1")
        held.release()
    assert "No session" in await call_error(agent_client, "get_session", session_id="s1")
    assert stored_run(db_path) is None
