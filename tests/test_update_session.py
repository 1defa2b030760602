"""update_session: agent settings merged field by field, a call that changes nothing leaves no trace."""

from typing import Any

import pytest
from mcp import Client

from tests.anthropic_double import MessagesDouble, text
from tests.helpers import call_error, call_ok

pytestmark = pytest.mark.anyio


async def test_agent_settings_are_merged_field_by_field(client: Client) -> None:
    agent = {"model": "claude-a", "system": "Be brief.", "num_history_runs": 5}
    await call_ok(client, "start_session", session_id="s1", agent=agent)
    updated = await call_ok(
        client, "update_session", session_id="s1", agent={"model": "claude-b", "auto_summary": True}
    )
    expected = {"model": "claude-b", "system": "Be brief.", "num_history_runs": 5, "auto_summary": True}
    assert {key: updated["agent"][key] for key in expected} == expected
    assert (await call_ok(client, "get_session", session_id="s1"))["agent"] == updated["agent"]


async def test_a_null_agent_field_clears_that_field_only(client: Client) -> None:
    await call_ok(client, "start_session", session_id="s1", agent={"model": "claude-a", "system": "Be brief."})
    updated = await call_ok(client, "update_session", session_id="s1", agent={"system": None})
    assert updated["agent"]["system"] is None
    assert updated["agent"]["model"] == "claude-a"


async def test_agent_settings_can_be_given_to_a_session_that_had_none(client: Client) -> None:
    await call_ok(client, "start_session", session_id="s1")
    updated = await call_ok(client, "update_session", session_id="s1", agent={"max_tokens": 512})
    assert updated["agent"]["max_tokens"] == 512
    assert updated["agent"]["num_history_runs"] == 3  # the defaults fill the rest


async def test_a_bad_agent_setting_is_refused_and_changes_nothing(client: Client) -> None:
    before = await call_ok(client, "start_session", session_id="s1", agent={"model": "claude-a"})
    message = await call_error(client, "update_session", session_id="s1", agent={"num_history_runs": 1_000})
    assert "num_history_runs" in message
    after = await call_ok(client, "get_session", session_id="s1")
    assert after["agent"] == before["agent"] and after["updated_at"] == before["updated_at"]


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"name": "trip"},
        {"state": {"city": "Oslo"}},
        {"state": {"city": "Oslo", "days": 3}, "merge_state": False},
        {"metadata": {"tag": "x"}},
        {"agent": {"model": "claude-a"}},
        {"name": "trip", "state": {}, "metadata": {"tag": "x"}, "agent": {}},
    ],
)
async def test_an_update_that_changes_nothing_leaves_updated_at_alone(client: Client, change: dict[str, Any]) -> None:
    await call_ok(
        client,
        "start_session",
        session_id="s1",
        name="trip",
        state={"city": "Oslo", "days": 3},
        metadata={"tag": "x"},
        agent={"model": "claude-a"},
    )
    before = await call_ok(client, "get_session", session_id="s1")
    after = await call_ok(client, "update_session", session_id="s1", **change)
    assert after == before


async def test_a_real_change_moves_updated_at(client: Client) -> None:
    before = await call_ok(client, "start_session", session_id="s1", state={"n": 1})
    after = await call_ok(client, "update_session", session_id="s1", state={"n": True})  # 1 and true differ in JSON
    assert after["state"] == {"n": True}
    assert after["updated_at"] > before["updated_at"]


async def test_the_next_run_uses_the_updated_agent_settings(agent_client: Client, double: MessagesDouble) -> None:
    await call_ok(agent_client, "start_session", session_id="s1", agent={"model": "claude-a", "system": "Old."})
    await call_ok(agent_client, "update_session", session_id="s1", agent={"model": "claude-b", "system": "New."})
    double.script(text("hi"))
    await call_ok(agent_client, "run", session_id="s1", message="hello")
    request = double.bodies[-1]
    assert request["model"] == "claude-b"
    assert request["system"][0]["text"] == "New."


async def test_record_run_says_it_is_idempotent_only_with_a_run_id(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    record_run = tools["record_run"]
    assert record_run.annotations is not None and record_run.annotations.idempotent_hint is not True
    assert "run_id" in (record_run.description or "") and "retr" in (record_run.description or "")
    first = await call_ok(client, "record_run", session_id="s1", input="hi", output="yo")
    second = await call_ok(client, "record_run", session_id="s1", input="hi", output="yo")
    assert first["run_id"] != second["run_id"]  # without a run_id, a retry is a second run
