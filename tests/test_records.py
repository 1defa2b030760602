"""Whole-session records (store/records.py) on SQLite: every session exported as it is stored, imported
into another store exactly (timestamps, tool call ids, content blocks, NUL characters, state key order),
importing again adding nothing, and imported text found by search."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_server_sessions.store import (
    AgentConfig,
    InvalidInput,
    NewMessage,
    NewRun,
    NewToolCall,
    RunMetrics,
    SessionSummary,
    SqliteStore,
)
from mcp_server_sessions.store.protocol import SessionStore
from mcp_server_sessions.store.records import ImportedSession, SessionRecord, StoreCounts

pytestmark = pytest.mark.anyio

NUL_TEXT = "before\x00after, Zürich ☕ 𝄞"
"""A NUL and text beyond ASCII and beyond the BMP, in every kind of text the sample stores."""


async def fill(store: SessionStore) -> None:
    """Sessions of several users as the store API writes them: recorded and begun runs, tool calls,
    content blocks, metrics, an error, a summary, state, metadata, agent settings, and a deleted session."""
    alice = store.for_user("alice")
    await alice.start_session(
        "trip",
        name=f"Trip {NUL_TEXT}",
        state={"zeta": 1, "alpha": {"nested": [1, 2.5, None]}, "mid": NUL_TEXT},
        metadata={"source": "test", "tags": ["a", "b"]},
        agent=AgentConfig(model="claude-test", system=f"Be brief. {NUL_TEXT}", num_history_runs=2),
    )
    weather = NewToolCall(
        tool_name="weather",
        arguments={"city": "Tromsø", "note": NUL_TEXT},
        result={"forecast": "snow", "text": NUL_TEXT},
        duration_ms=12.5,
        tool_call_id="toolu_01",
    )
    metrics = RunMetrics(input_tokens=120, output_tokens=30, cache_read_tokens=5, duration_ms=812.25, model="m-1")
    await alice.append_run(
        "trip",
        NewRun.recorded("Plan a kayak trip to the fjords", f"Go in June. {NUL_TEXT}", [weather], metrics, "run-1"),
    )
    failing = NewToolCall(tool_name="book", arguments={}, result="no seats", is_error=True)
    await alice.append_run("trip", NewRun.recorded("Book it", "Could not book.", [failing], run_id="run-2"))
    await alice.set_summary(
        "trip",
        SessionSummary(summary=f"Fjords in June. {NUL_TEXT}", topics=["fjords", "☕"], run_count=2, updated_at="x"),
    )
    # A run begun before its turn and finished later, as the server's own `run` does: content blocks,
    # tool messages, and tool calls stamped later than the run itself.
    await alice.start_session("agent")
    await alice.begin_run("agent", "run-a", "What is the weather in Bergen?")
    blocks_use = [{"type": "tool_use", "id": "toolu_02", "name": "weather", "input": {"city": "Bergen"}}]
    blocks_result = [{"type": "tool_result", "tool_use_id": "toolu_02", "content": NUL_TEXT}]
    finished = NewRun(
        run_id="run-a",
        input="What is the weather in Bergen?",
        content="Rain, as always.",
        messages=[
            NewMessage(role="user", content="What is the weather in Bergen?"),
            NewMessage(role="assistant", content="", blocks=blocks_use),
            NewMessage(role="tool", content="weather -> rain", blocks=blocks_result, is_tool=True),
            NewMessage(role="assistant", content="Rain, as always.", blocks=[{"type": "text", "text": "Rain."}]),
        ],
        tool_calls=[NewToolCall(tool_name="weather", arguments={"city": "Bergen"}, result=NUL_TEXT)],
        metrics=RunMetrics(input_tokens=10, output_tokens=4, total_tokens=14),
    )
    await alice.append_run("agent", finished, finishing=True)
    stopped = NewRun(
        run_id="run-b", input="Go on", content=None, status="error", messages=[], error=f"Model failed {NUL_TEXT}"
    )
    await alice.append_run("agent", stopped)
    bob = store.for_user("bob")  # the same session id as alice's, another session
    await bob.append_run("trip", NewRun.recorded("Pack list?", "Boots and a rain jacket.", run_id="run-1"))
    await bob.start_session("empty", name="Nothing yet")
    carol = store.for_user("carol")
    await carol.append_run("gone", NewRun.recorded("Forget this", "Forgotten."))
    await carol.delete_session("gone")


async def records(store: SessionStore) -> list[SessionRecord]:
    return [record async for record in store.export_sessions()]


def dumped(found: list[SessionRecord]) -> list[str]:
    """The records as JSON text in a stable order: equal text is equal records, key order included."""
    ordered = sorted(found, key=lambda record: (record.session.user_id, record.session.session_id))
    return [record.model_dump_json() for record in ordered]


async def copy_all(source: SessionStore, destination: SessionStore) -> int:
    return sum([(await destination.import_session(record)).runs_added async for record in source.export_sessions()])


@pytest.fixture
async def source(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(tmp_path / "a.db")
    try:
        await fill(store)
        yield store
    finally:
        await store.close()


@pytest.fixture
async def destination(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(tmp_path / "b.db")
    try:
        yield store
    finally:
        await store.close()


async def test_export_holds_every_stored_field(source: SqliteStore) -> None:
    found = {(record.session.user_id, record.session.session_id): record for record in await records(source)}
    assert set(found) == {("alice", "trip"), ("alice", "agent"), ("bob", "trip"), ("bob", "empty")}
    trip = found["alice", "trip"]
    assert list(trip.session.state) == ["zeta", "alpha", "mid"] and trip.session.state["mid"] == NUL_TEXT
    assert trip.session.summary is not None and trip.session.summary.topics == ["fjords", "☕"]
    assert trip.session == await source.for_user("alice").get_session("trip")
    assert [run.run_id for run in trip.runs] == ["run-1", "run-2"]
    first = trip.runs[0]
    assert first.tool_calls[0].tool_call_id == "toolu_01" and first.tool_calls[0].result["text"] == NUL_TEXT
    assert [(m.role, m.is_tool) for m in first.messages] == [("user", False), ("tool", True), ("assistant", False)]
    assert first.content == f"Go in June. {NUL_TEXT}" and first.metrics.duration_ms == 812.25
    agent = found["alice", "agent"]
    begun, stopped = agent.runs
    assert begun.messages[1].blocks == [
        {"type": "tool_use", "id": "toolu_02", "name": "weather", "input": {"city": "Bergen"}}
    ]
    assert begun.tool_calls[0].created_at > begun.created_at  # stamped when the run finished
    assert stopped.status == "error" and stopped.error == f"Model failed {NUL_TEXT}" and stopped.messages == []
    assert found["bob", "empty"].runs == []


async def test_counts_leave_out_deleted_sessions(source: SqliteStore, destination: SqliteStore) -> None:
    assert await source.counts() == StoreCounts(users=2, sessions=4, runs=5, messages=12, tool_calls=3)
    assert await destination.counts() == StoreCounts(users=0, sessions=0, runs=0, messages=0, tool_calls=0)


async def test_a_copy_exports_exactly_as_its_source(source: SqliteStore, destination: SqliteStore) -> None:
    assert await copy_all(source, destination) == 5
    assert dumped(await records(destination)) == dumped(await records(source))
    assert await destination.counts() == await source.counts()
    # What the handles read is the same too, ids and timestamps included.
    for user, session_id in (("alice", "trip"), ("alice", "agent")):
        a, b = source.for_user(user), destination.for_user(user)
        assert await b.get_tool_calls(session_id) == await a.get_tool_calls(session_id)
        assert await b.get_chat_history(session_id, include_tool_messages=True) == await a.get_chat_history(
            session_id, include_tool_messages=True
        )
        assert await b.context_messages(session_id, 10) == await a.context_messages(session_id, 10)


async def test_a_copy_survives_reopening(source: SqliteStore, tmp_path: Path) -> None:
    copied = await SqliteStore.open(tmp_path / "c.db")
    try:
        await copy_all(source, copied)
    finally:
        await copied.close()
    reopened = await SqliteStore.open(tmp_path / "c.db")
    try:
        assert dumped(await records(reopened)) == dumped(await records(source))
    finally:
        await reopened.close()


async def test_importing_again_adds_nothing(source: SqliteStore, destination: SqliteStore) -> None:
    await copy_all(source, destination)
    before = dumped(await records(destination))
    assert await copy_all(source, destination) == 0
    assert dumped(await records(destination)) == before
    assert await destination.counts() == await source.counts()


async def test_a_record_with_a_new_run_imports_that_run_only(source: SqliteStore, destination: SqliteStore) -> None:
    await copy_all(source, destination)
    alice = source.for_user("alice")
    await alice.append_run("trip", NewRun.recorded("And in July?", "Midnight sun.", run_id="run-3"))
    await alice.update_session("trip", name="Renamed", state={"added": True})
    [record] = [
        r async for r in source.export_sessions() if (r.session.user_id, r.session.session_id) == ("alice", "trip")
    ]
    assert await destination.import_session(record) == ImportedSession("merged", 1)
    assert dumped(await records(destination)) == dumped(await records(source))
    copied = await destination.for_user("alice").get_session("trip")
    assert copied.name == "Renamed" and copied.run_count == 3 and list(copied.state)[-1] == "added"


async def test_imported_text_is_found_by_search(source: SqliteStore, destination: SqliteStore) -> None:
    await copy_all(source, destination)
    alice = destination.for_user("alice")
    [hit] = await alice.search("kayaking fjord")
    assert (hit.session_id, hit.run_id, hit.role) == ("trip", "run-1", "user")
    assert {hit.run_id for hit in await alice.search("Tromsø")} == {"run-1"}  # a tool call's arguments
    assert await destination.for_user("bob").search("kayak") == []
    assert [hit.run_id for hit in await destination.for_user("bob").search("rain jacket")] == ["run-1"]


async def test_a_record_the_store_cannot_hold_is_refused_whole(source: SqliteStore, destination: SqliteStore) -> None:
    record = next(r for r in await records(source) if r.runs)
    twice = record.model_copy(update={"runs": [record.runs[0], record.runs[0]]})
    bad_id = record.model_copy(update={"session": record.session.model_copy(update={"session_id": "no spaces"})})
    bad_time = record.model_copy(update={"session": record.session.model_copy(update={"created_at": "yesterday"})})
    for refused in (twice, bad_id, bad_time):
        with pytest.raises(InvalidInput):
            await destination.import_session(refused)
    assert await destination.counts() == StoreCounts(users=0, sessions=0, runs=0, messages=0, tool_calls=0)
