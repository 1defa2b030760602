"""Paused runs: `run` with client tools pauses, `continue_run` resumes it in the same context, `cancel_run`
ends it; on SQLite and PostgreSQL, against the Messages API test double."""

import json
from typing import Any

import anyio
import pytest
from mcp import Client

from tests.anthropic_double import MessagesDouble, forced_tool_input, text, tool_use, tool_uses
from tests.helpers import call_error, call_ok

pytestmark = pytest.mark.anyio

WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city, from the client's own service.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


async def paused_run(client: Client, double: MessagesDouble, session_id: str = "s1") -> dict[str, Any]:
    """A run in `session_id` that paused on one get_weather call (tool_call_id "toolu_w1")."""
    double.script(tool_use("get_weather", {"city": "Oslo"}, id="toolu_w1", text="Let me look."))
    run = await call_ok(client, "run", message="Weather in Oslo?", session_id=session_id, tools=[WEATHER])
    assert run["status"] == "paused", run
    return run


async def test_a_client_tool_call_pauses_the_run_after_the_servers_own_tools(
    agent_client: Client, double: MessagesDouble
) -> None:
    double.script(
        tool_uses(
            [
                ("update_session_state", {"session_state_updates": {"city": "Oslo"}}, "toolu_s1"),
                ("get_weather", {"city": "Oslo"}, "toolu_w1"),
            ]
        )
    )
    run = await call_ok(agent_client, "run", message="Weather in Oslo?", session_id="s1", tools=[WEATHER])
    assert (run["status"], run["content"], run["error"]) == ("paused", None, None)
    assert run["requirements"] == [
        {"tool_call_id": "toolu_w1", "tool_name": "get_weather", "arguments": {"city": "Oslo"}}
    ]
    assert [(c["tool_call_id"], c["tool_name"], c["result"]) for c in run["tool_calls"]] == [
        ("toolu_s1", "update_session_state", {"state": {"city": "Oslo"}})
    ]
    [request] = double.bodies
    assert request["tools"][-1] == WEATHER
    assert [tool["name"] for tool in request["tools"][:-1]] == [
        "get_chat_history",
        "get_tool_call_history",
        "search_previous_sessions",
        "update_session_state",
    ]
    session = await call_ok(agent_client, "get_session", session_id="s1")
    assert (session["paused_run_ids"], session["state"]) == ([run["run_id"]], {"city": "Oslo"})
    listed = await call_ok(agent_client, "list_sessions")
    assert [s["paused_run_ids"] for s in listed["sessions"]] == [[run["run_id"]]]


async def test_continue_run_resumes_in_the_same_context_with_every_result(
    agent_client: Client, double: MessagesDouble
) -> None:
    double.script(text("Hi."))
    await call_ok(agent_client, "run", message="Hello", session_id="s1")
    double.script(
        tool_uses(
            [
                ("get_weather", {"city": "Oslo"}, "toolu_w1"),
                ("get_tool_call_history", {}, "toolu_s1"),
            ],
            input_tokens=100,
            output_tokens=10,
        ),
        text("It is sunny in Oslo.", input_tokens=200, output_tokens=20),
    )
    paused = await call_ok(
        agent_client, "run", message="Weather in Oslo?", session_id="s1", tools=[WEATHER], system="Be brief."
    )
    continued = await call_ok(
        agent_client,
        "continue_run",
        run_id=paused["run_id"],
        tool_results=[{"tool_call_id": "toolu_w1", "result": "sunny"}],
    )
    assert (continued["run_id"], continued["status"], continued["content"]) == (
        paused["run_id"],
        "completed",
        "It is sunny in Oslo.",
    )
    assert continued["requirements"] == []
    assert [(c["tool_call_id"], c["tool_name"], c["result"], c["is_error"]) for c in continued["tool_calls"]] == [
        ("toolu_s1", "get_tool_call_history", [], False),
        ("toolu_w1", "get_weather", "sunny", False),
    ]
    metrics = continued["metrics"]
    assert (metrics["input_tokens"], metrics["output_tokens"], metrics["total_tokens"]) == (300, 30, 330)
    paused_request, continued_request = double.bodies[1], double.bodies[2]
    for same in ("model", "max_tokens", "system", "tools"):
        assert continued_request[same] == paused_request[same], same
    assert continued_request["system"][0]["text"] == "Be brief."
    assert strip_cache(continued_request["messages"][:-2]) == strip_cache(paused_request["messages"])
    assert strip_cache(continued_request["messages"][-2:]) == [
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "toolu_w1", "name": "get_weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "toolu_s1", "name": "get_tool_call_history", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_w1", "content": "sunny", "is_error": False},
                {"type": "tool_result", "tool_use_id": "toolu_s1", "content": "[]", "is_error": False},
            ],
        },
    ]
    session = await call_ok(agent_client, "get_session", session_id="s1")
    assert session["paused_run_ids"] == []
    assert (session["metrics"]["input_tokens"], session["metrics"]["output_tokens"]) == (310, 35)
    history = await call_ok(agent_client, "get_chat_history", session_id="s1")
    assert [(m["role"], m["content"]) for m in history["messages"]] == [
        ("user", "Hello"),
        ("assistant", "Hi."),
        ("user", "Weather in Oslo?"),
        ("assistant", "It is sunny in Oslo."),
    ]


def strip_cache(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages without their cache breakpoints (the last block of a request carries one)."""
    return [
        {**m, "content": [{k: v for k, v in b.items() if k != "cache_control"} for b in m["content"]]} for m in messages
    ]


async def test_a_paused_run_is_left_out_of_later_context_until_it_completes(
    agent_client: Client, double: MessagesDouble
) -> None:
    paused = await paused_run(agent_client, double)
    double.script(text("Meanwhile."))
    await call_ok(agent_client, "run", message="Something else", session_id="s1")
    assert strip_cache(double.bodies[-1]["messages"]) == [
        {"role": "user", "content": [{"type": "text", "text": "Something else"}]}
    ]
    double.script(text("Sunny."))
    await call_ok(
        agent_client,
        "continue_run",
        run_id=paused["run_id"],
        tool_results=[{"tool_call_id": "toolu_w1", "result": "sun"}],
    )
    double.script(text("Bye."))
    await call_ok(agent_client, "run", message="Thanks", session_id="s1")
    texts = [b.get("text") for m in double.bodies[-1]["messages"] for b in m["content"] if b["type"] == "text"]
    assert texts == ["Weather in Oslo?", "Let me look.", "Sunny.", "Something else", "Meanwhile.", "Thanks"]


async def test_a_continued_run_may_pause_again_and_then_be_cancelled(
    agent_client: Client, double: MessagesDouble
) -> None:
    paused = await paused_run(agent_client, double)
    double.script(tool_use("get_weather", {"city": "Bergen"}, id="toolu_w2"))
    again = await call_ok(
        agent_client,
        "continue_run",
        run_id=paused["run_id"],
        tool_results=[{"tool_call_id": "toolu_w1", "result": {"error": "timeout"}, "is_error": True}],
    )
    assert (again["status"], again["requirements"]) == (
        "paused",
        [{"tool_call_id": "toolu_w2", "tool_name": "get_weather", "arguments": {"city": "Bergen"}}],
    )
    assert double.bodies[-1]["messages"][-1]["content"][0]["content"] == '{"error": "timeout"}'
    assert double.bodies[-1]["messages"][-1]["content"][0]["is_error"] is True
    cancelled = await call_ok(agent_client, "cancel_run", run_id=paused["run_id"])
    assert (cancelled["status"], cancelled["requirements"], cancelled["error"]) == (
        "cancelled",
        [],
        "Cancelled with cancel_run while it waited for client tool results.",
    )
    assert [c["tool_call_id"] for c in cancelled["tool_calls"]] == ["toolu_w1"]
    assert (await call_ok(agent_client, "get_session", session_id="s1"))["paused_run_ids"] == []
    requests = len(double.bodies)
    answer = [{"tool_call_id": "toolu_w2", "result": "rain"}]
    assert await call_error(agent_client, "continue_run", run_id=paused["run_id"], tool_results=answer) == (
        f"Run {paused['run_id']!r} is not paused (it is cancelled); only a paused run can be continued or cancelled."
    )
    assert await call_error(agent_client, "cancel_run", run_id=paused["run_id"]) == (
        f"Run {paused['run_id']!r} is not paused (it is cancelled); only a paused run can be continued or cancelled."
    )
    assert len(double.bodies) == requests


async def test_every_bad_continuation_is_refused_and_changes_nothing(
    agent_client: Client, double: MessagesDouble
) -> None:
    double.script(
        tool_uses([("get_weather", {"city": "Oslo"}, "toolu_w1"), ("get_weather", {"city": "Rome"}, "toolu_w2")])
    )
    paused = await call_ok(agent_client, "run", message="Two cities?", session_id="s1", tools=[WEATHER])
    run_id = paused["run_id"]
    double.script(text("Done."))
    done = await call_ok(agent_client, "run", message="Plain", session_id="s1")
    before = await call_ok(agent_client, "get_session", session_id="s1")
    w1, w2 = {"tool_call_id": "toolu_w1", "result": "a"}, {"tool_call_id": "toolu_w2", "result": "b"}
    not_found = (
        f"No run {run_id!r} for this user; a paused run's id is in its session's paused_run_ids "
        "(get_session or list_sessions)."
    )
    refusals = [
        (
            run_id,
            "alice",
            [w1],
            f"tool_results lacks a result for 'toolu_w2' of run {run_id!r}; answer every requirement at once.",
        ),
        (
            run_id,
            "alice",
            [w1, w2, {"tool_call_id": "toolu_x", "result": "c"}],
            f"Run {run_id!r} does not wait "
            "for tool_call_id 'toolu_x'; answer its requirements ('toolu_w1', 'toolu_w2').",
        ),
        (
            run_id,
            "alice",
            [w1, w1, w2],
            "tool_results answers tool_call_id 'toolu_w1' twice; send one result per tool_call_id.",
        ),
        (
            done["run_id"],
            "alice",
            [w1],
            f"Run {done['run_id']!r} is not paused (it is completed); only a paused run can be continued or cancelled.",
        ),
        (run_id, "bob", [w1, w2], not_found),
        ("no-such-run", "alice", [w1, w2], not_found.replace(repr(run_id), "'no-such-run'")),
        (
            run_id,
            "alice",
            [],
            "Invalid argument 'tool_results' for continue_run: list should have at least 1 item after validation, "
            "not 0; fix it and call again.",
        ),
    ]
    for target, user, results, message in refusals:
        got = await call_error(agent_client, "continue_run", run_id=target, tool_results=results, user_id=user)
        assert got == message
    assert await call_error(agent_client, "cancel_run", run_id=run_id, user_id="bob") == not_found
    assert await call_ok(agent_client, "get_session", session_id="s1") == before
    assert len(double.bodies) == 2
    double.script(text("Both fine."))
    finished = await call_ok(agent_client, "continue_run", run_id=run_id, tool_results=[w2, w1])
    assert finished["status"] == "completed"
    assert [b["tool_use_id"] for b in double.bodies[-1]["messages"][-1]["content"]] == ["toolu_w1", "toolu_w2"]


async def test_two_concurrent_continuations_of_one_run_one_wins(agent_client: Client, double: MessagesDouble) -> None:
    paused = await paused_run(agent_client, double)
    double.script(text("Sunny.", hold=True))
    answer = {"run_id": paused["run_id"], "tool_results": [{"tool_call_id": "toolu_w1", "result": "sun"}]}
    outcomes: list[Any] = []

    async def attempt() -> None:
        outcomes.append(await agent_client.call_tool("continue_run", answer))
        double.release()  # the loser lets the winner's model call answer

    with anyio.fail_after(30):
        async with anyio.create_task_group() as attempts:
            attempts.start_soon(attempt)
            attempts.start_soon(attempt)
    winners = [o for o in outcomes if not o.is_error]
    losers = [o for o in outcomes if o.is_error]
    assert len(winners) == 1 and len(losers) == 1
    assert winners[0].structured_content["status"] == "completed"
    assert losers[0].content[0].text == (
        f"Run {paused['run_id']!r} is not paused (it is being continued or is still running); "
        "read its outcome with get_session once it ends."
    )
    assert len(double.bodies) == 2


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        (
            {**WEATHER, "name": "update_session_state"},
            "tools[0] is named 'update_session_state', the name of one of the server's own tools; rename it.",
        ),
        (
            {**WEATHER, "input_schema": {"type": "string"}},
            'tools[0].input_schema must describe an object: set "type": "object" in it.',
        ),
        (
            {**WEATHER, "input_schema": {"type": "object", "properties": {"city": {"type": "town"}}}},
            "tools[0].input_schema is not a valid JSON Schema (at properties/city/type: 'town' is not valid "
            "under any of the given schemas); fix it.",
        ),
    ],
)
async def test_a_bad_client_tool_is_refused_before_any_model_call(
    agent_client: Client, double: MessagesDouble, tool: dict[str, Any], message: str
) -> None:
    assert await call_error(agent_client, "run", message="hi", session_id="s1", tools=[tool]) == message
    assert double.bodies == []
    assert (await call_ok(agent_client, "list_sessions"))["total"] == 0


async def test_a_summary_made_while_a_run_is_paused_covers_the_runs_after_it_and_the_next_takes_it_once_it_completes(
    agent_client: Client, double: MessagesDouble
) -> None:
    """A paused run counts as covered (it may never complete, and must not hold later summaries back);
    once it completes, the summary is lowered to just before it, so the next one takes it."""
    await call_ok(agent_client, "record_run", session_id="s1", input="Plan a trip", output="To Norway.")
    paused = await paused_run(agent_client, double)
    await call_ok(agent_client, "record_run", session_id="s1", input="Pack what?", output="Rain gear.")
    double.script(forced_tool_input({"summary": "A trip to Norway, with rain gear.", "topics": ["trip"]}))
    first = await call_ok(agent_client, "summarize_session", session_id="s1")
    assert first["run_count"] == 3
    transcript = json.dumps(double.bodies[-1]["messages"])
    assert "Plan a trip" in transcript and "Pack what?" in transcript and "Weather in Oslo?" not in transcript
    double.script(text("Sunny."))
    answers = [{"tool_call_id": "toolu_w1", "result": "sun"}]
    await call_ok(agent_client, "continue_run", run_id=paused["run_id"], tool_results=answers)
    assert (await call_ok(agent_client, "get_session", session_id="s1"))["summary"]["run_count"] == 1
    double.script(forced_tool_input({"summary": "A trip to a sunny Oslo.", "topics": ["trip", "weather"]}))
    second = await call_ok(agent_client, "summarize_session", session_id="s1")
    assert second["run_count"] == 3
    transcript = json.dumps(double.bodies[-1]["messages"])
    assert "Weather in Oslo?" in transcript and "Sunny." in transcript and "Pack what?" in transcript
    assert "Plan a trip" not in transcript


async def test_a_paused_run_never_continued_does_not_hold_later_summaries_back(
    agent_client: Client, double: MessagesDouble
) -> None:
    await paused_run(agent_client, double)
    await call_ok(agent_client, "record_run", session_id="s1", input="Plan a trip", output="To Norway.")
    double.script(forced_tool_input({"summary": "A trip to Norway.", "topics": ["trip"]}))
    first = await call_ok(agent_client, "summarize_session", session_id="s1")
    assert first["run_count"] == 2
    assert "Plan a trip" in json.dumps(double.bodies[-1]["messages"])
    await call_ok(agent_client, "record_run", session_id="s1", input="Pack what?", output="Rain gear.")
    double.script(forced_tool_input({"summary": "A trip to Norway, with rain gear.", "topics": ["trip"]}))
    second = await call_ok(agent_client, "summarize_session", session_id="s1")
    assert second["run_count"] == 3
    transcript = json.dumps(double.bodies[-1]["messages"])
    assert "Pack what?" in transcript and "Weather in Oslo?" not in transcript
