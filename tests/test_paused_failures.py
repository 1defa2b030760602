"""Paused runs when things go wrong: a continuation that fails or is cancelled before it has produced
anything puts its run back to `paused`; a session whose paused run is claimed counts as changed; a
paused run never continued does not hold summaries back. On SQLite and PostgreSQL."""

from typing import Any

import anyio
import pytest
from mcp import Client

from mcp_server_sessions.store import NewMessage, NewRun, Requirement, SessionChanged, SessionStore
from tests.anthropic_double import MessagesDouble, error, text, tool_use
from tests.helpers import call_error, call_ok
from tests.test_paused_runs import paused_run

pytestmark = pytest.mark.anyio

ANSWER = [{"tool_call_id": "toolu_w1", "result": "sun"}]


async def test_a_model_failure_before_any_answer_leaves_the_run_paused_to_retry(
    agent_client: Client, double: MessagesDouble
) -> None:
    paused = await paused_run(agent_client, double)
    run_id = paused["run_id"]
    double.script(error(529), error(529))  # the SDK tries twice (max_retries=1)
    assert await call_error(agent_client, "continue_run", run_id=run_id, tool_results=ANSWER) == (
        f"The model API failed (HTTP 529, overloaded_error), so run {run_id!r} is still paused with the same "
        "requirements; send the same continue_run again in a moment."
    )
    session = await call_ok(agent_client, "get_session", session_id="s1")
    assert session["paused_run_ids"] == [run_id]
    double.script(text("Sunny."))
    done = await call_ok(agent_client, "continue_run", run_id=run_id, tool_results=ANSWER)
    assert (done["status"], done["content"], done["error"]) == ("completed", "Sunny.", None)
    assert [c["tool_call_id"] for c in done["tool_calls"]] == ["toolu_w1"]  # the failed attempt added nothing
    history = await call_ok(agent_client, "get_chat_history", session_id="s1")
    assert [(m["role"], m["content"]) for m in history["messages"]] == [
        ("user", "Weather in Oslo?"),
        ("assistant", "Sunny."),
    ]


async def test_a_failure_after_new_output_ends_the_run_without_promising_a_retry(
    agent_client: Client, double: MessagesDouble
) -> None:
    paused = await paused_run(agent_client, double)
    run_id = paused["run_id"]
    double.script(tool_use("get_tool_call_history", {}, id="toolu_s1"), error(529), error(529))
    message = await call_error(agent_client, "continue_run", run_id=run_id, tool_results=ANSWER)
    assert message == (
        f"The model API failed (HTTP 529, overloaded_error) after the continuation of run {run_id!r} had produced "
        "new output, so the run was stored with status error and cannot be continued again; start a new run."
    )
    assert (await call_ok(agent_client, "get_session", session_id="s1"))["paused_run_ids"] == []
    assert await call_error(agent_client, "continue_run", run_id=run_id, tool_results=ANSWER) == (
        f"Run {run_id!r} is not paused (it is error); only a paused run can be continued or cancelled."
    )


async def test_a_cancelled_continuation_leaves_the_run_paused(agent_client: Client, double: MessagesDouble) -> None:
    paused = await paused_run(agent_client, double)
    run_id = paused["run_id"]
    double.script(text("Never heard.", hold=True))
    arguments: dict[str, Any] = {"run_id": run_id, "tool_results": ANSWER}
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(lambda: agent_client.call_tool("continue_run", arguments))
            await double.await_requests(2)  # claimed: the continuation's model call waits at the double
            tasks.cancel_scope.cancel()
        while (await call_ok(agent_client, "get_session", session_id="s1"))["paused_run_ids"] != [run_id]:
            await anyio.lowlevel.checkpoint()  # the cancelled call puts the run back in a shielded scope
    double.release()
    double.script(text("Sunny."))
    done = await call_ok(agent_client, "continue_run", **arguments)
    assert (done["status"], done["content"]) == ("completed", "Sunny.")


async def test_claiming_a_paused_run_changes_its_session_for_a_conditional_delete(store: SessionStore) -> None:
    """prune deletes a session only if it is unchanged since listed: a claimed run must count as a change."""
    alice = store.for_user("alice")
    requirement = Requirement(tool_call_id="toolu_w1", tool_name="get_weather", arguments={"city": "Oslo"})
    await alice.append_run(
        "s1",
        NewRun(
            run_id="r1",
            input="Weather in Oslo?",
            content=None,
            status="paused",
            messages=[NewMessage(role="user", content="Weather in Oslo?")],
            requirements=[requirement],
            resume={"version": 1},
        ),
    )
    read = await alice.get_session("s1")
    claimed = await alice.claim_paused_run("r1", ["toolu_w1"])
    assert claimed.run.status == "running"
    with pytest.raises(SessionChanged):
        await alice.delete_session("s1", if_updated_at=read.updated_at)
    assert (await alice.get_session("s1")).updated_at > read.updated_at
