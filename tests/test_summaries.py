"""`summarize_session` and auto_summary, against the Messages API double."""

import anyio
import pytest
from mcp import Client

from tests.anthropic_double import MessagesDouble, forced_tool_input, text
from tests.helpers import call_error, call_ok

pytestmark = pytest.mark.anyio


def summary_reply(summary: str, topics: list[str], **options: object) -> object:
    return forced_tool_input({"summary": summary, "topics": topics}, **options)  # type: ignore[arg-type]


async def record(client: Client, session_id: str, *turns: tuple[str, str]) -> None:
    for question, answer in turns:
        await call_ok(client, "record_run", session_id=session_id, input=question, output=answer)


async def test_summary_is_structured_stored_and_forced(agent_client: Client, double: MessagesDouble) -> None:
    await record(agent_client, "s1", ("Plan a trip to Lofoten", "Go in June."), ("Budget?", "About 2000 EUR."))
    double.script(summary_reply("Lofoten trip in June, about 2000 EUR.", ["Lofoten", "budget"]))
    result = await call_ok(agent_client, "summarize_session", session_id="s1")
    assert result["summary"] == "Lofoten trip in June, about 2000 EUR." and result["topics"] == ["Lofoten", "budget"]
    assert result["run_count"] == 2 and result["session_id"] == "s1" and result["updated_at"].endswith("Z")
    [request] = double.bodies
    assert request["tool_choice"] == {"type": "tool", "name": "record_summary"}
    prompt = request["messages"][0]["content"]
    assert "Plan a trip to Lofoten" in prompt and "About 2000 EUR." in prompt
    session = await call_ok(agent_client, "get_session", session_id="s1")
    assert session["summary"] == {k: v for k, v in result.items() if k != "session_id"}


async def test_the_next_summary_reads_only_the_runs_after_the_previous_one(
    agent_client: Client, double: MessagesDouble
) -> None:
    await record(agent_client, "s1", ("first question", "first answer"))
    double.script(summary_reply("Summary one.", ["one"]))
    await call_ok(agent_client, "summarize_session", session_id="s1")
    await record(agent_client, "s1", ("second question", "second answer"))
    double.script(summary_reply("Summary two.", ["one", "two"]))
    result = await call_ok(agent_client, "summarize_session", session_id="s1")
    assert result["run_count"] == 2
    prompt = double.bodies[-1]["messages"][0]["content"]
    assert "Summary one." in prompt and "second question" in prompt
    assert "first question" not in prompt
    # nothing new: the stored summary comes back without a model call
    again = await call_ok(agent_client, "summarize_session", session_id="s1")
    assert again["summary"] == "Summary two." and len(double.requests) == 2


async def test_a_custom_prompt_replaces_the_instructions_but_keeps_the_conversation(
    agent_client: Client, double: MessagesDouble
) -> None:
    await record(agent_client, "s1", ("Which fjord?", "Geirangerfjord."))
    double.script(summary_reply("Geirangerfjord.", ["fjords"]))
    await call_ok(agent_client, "summarize_session", session_id="s1", prompt="One line, in French.")
    body = double.bodies[-1]
    assert body["system"] == "One line, in French."
    assert "Which fjord?" in body["messages"][0]["content"]


async def test_summaries_fail_clearly(agent_client: Client, double: MessagesDouble) -> None:
    assert "No session 'nope'" in await call_error(agent_client, "summarize_session", session_id="nope")
    await call_ok(agent_client, "start_session", session_id="empty")
    assert "no completed runs" in await call_error(agent_client, "summarize_session", session_id="empty")
    await record(agent_client, "s1", ("q", "a"))
    double.script(text("I refuse to use the tool"))
    assert "expected shape" in await call_error(agent_client, "summarize_session", session_id="s1")
    assert (await call_ok(agent_client, "get_session", session_id="s1"))["summary"] is None
    assert len(double.requests) == 1


async def test_auto_summary_does_not_delay_the_answer(agent_client: Client, double: MessagesDouble) -> None:
    await call_ok(agent_client, "start_session", session_id="s1", agent={"auto_summary": True})
    held = summary_reply("Auto summary.", ["auto"], hold=True)
    double.script(text("the answer"), held)
    with anyio.fail_after(10):
        run = await call_ok(agent_client, "run", message="question", session_id="s1")
        assert run["content"] == "the answer"
        await double.await_requests(2)  # the summary request is waiting at the double
        assert (await call_ok(agent_client, "get_session", session_id="s1"))["summary"] is None
        held.release()  # type: ignore[attr-defined]
        while (session := await call_ok(agent_client, "get_session", session_id="s1"))["summary"] is None:
            await anyio.sleep(0.01)
    assert session["summary"]["summary"] == "Auto summary." and session["summary"]["run_count"] == 1
    assert double.bodies[1]["tool_choice"]["name"] == "record_summary"


async def test_a_run_in_flight_during_a_summary_is_summarized_later(
    agent_client: Client, double: MessagesDouble
) -> None:
    await record(agent_client, "s1", ("first question", "first answer"))
    held = text("the held answer", hold=True)
    double.script(held, summary_reply("Summary one.", ["one"]), summary_reply("Summary two.", ["two"]))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(lambda: call_ok(agent_client, "run", message="question in flight", session_id="s1"))
        with anyio.fail_after(10):
            await double.await_requests(1)
        first = await call_ok(agent_client, "summarize_session", session_id="s1")
        assert first["run_count"] == 1  # the run in flight is not covered yet
        held.release()
    await record(agent_client, "s1", ("third question", "third answer"))
    second = await call_ok(agent_client, "summarize_session", session_id="s1")
    assert second["run_count"] == 3
    prompt = double.bodies[-1]["messages"][0]["content"]
    assert "question in flight" in prompt and "the held answer" in prompt and "third question" in prompt
    assert "first question" not in prompt
