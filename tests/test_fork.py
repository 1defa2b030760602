"""fork_session (issue 12, "Forks"): a new session of the same user holding copies of the source's
completed runs up to a point, on SQLite and PostgreSQL, through the in-process client; the store is
opened beside it to read whole records and to make runs no tool records (in error, still running)."""

import base64
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_server_sessions.store import InvalidInput, NewRun, SessionStore, SessionSummary, SqliteStore
from mcp_server_sessions.store.records import SessionRecord
from mcp_server_sessions.store.run_inputs import SessionKind
from tests.helpers import call_error, call_ok

pytestmark = pytest.mark.anyio

NOT_FOUND = "No session {!r} for this user; call list_sessions to see your sessions or start_session to create it."
AGENT = {"model": "claude-test", "system": "Be brief.", "num_history_runs": 5, "max_tokens": 100, "auto_summary": False}


async def seed(client: Client, runs: int = 3, session_id: str = "trip") -> dict[str, Any]:
    """Alice's session `session_id` with `runs` recorded runs r1..rN, each with a tool call and tokens."""
    await call_ok(
        client,
        "start_session",
        session_id=session_id,
        name="Fjord trip",
        state={"budget": 900, "nested": {"a": [1, 2]}},
        metadata={"source": "test", "tags": ["x"]},
        agent=AGENT,
    )
    for n in range(1, runs + 1):
        await call_ok(
            client,
            "record_run",
            session_id=session_id,
            run_id=f"r{n}",
            input=f"question {n} about kayaking",
            output=f"answer {n} on the fjords",
            tool_calls=[{"tool_name": "weather", "arguments": {"day": n}, "result": {"rain": n}}],
            metrics={"input_tokens": 10 * n, "output_tokens": n, "cache_read_tokens": 2, "model": "m"},
        )
    return await call_ok(client, "get_session", session_id=session_id)


async def record(store: SessionStore, session_id: str, user_id: str = "alice") -> SessionRecord:
    return await store.for_user(user_id).session_record(session_id)


def as_in(fork_id: str, source: SessionRecord, run_ids: list[str]) -> list[dict[str, Any]]:
    """The source's runs `run_ids`, whole, as the fork `fork_id` must hold them."""
    return [run.model_copy(update={"session_id": fork_id}).model_dump() for run in source.runs if run.run_id in run_ids]


def runs_of(fork: SessionRecord) -> list[dict[str, Any]]:
    return [run.model_dump() for run in fork.runs]


async def test_a_fork_up_to_a_run_holds_those_runs_whole_and_the_source_s_fields(
    client: Client, store: SessionStore
) -> None:
    source = await seed(client)
    before = await record(store, "trip")
    fork = await call_ok(client, "fork_session", session_id="trip", new_session_id="trip-b", up_to_run_id="r2")
    assert fork["created_at"] == fork["updated_at"] and fork["created_at"] > source["updated_at"]
    assert fork == {
        **source,
        "session_id": "trip-b",
        "metadata": {"source": "test", "tags": ["x"], "forked_from": {"session_id": "trip", "run_id": "r2"}},
        "run_count": 2,
        "metrics": {
            "input_tokens": 30,
            "output_tokens": 3,
            "total_tokens": 33,
            "cache_read_tokens": 4,
            "cache_write_tokens": 0,
        },
        "created_at": fork["created_at"],
        "updated_at": fork["updated_at"],
    }
    assert await call_ok(client, "get_session", session_id="trip-b") == fork
    assert runs_of(await record(store, "trip-b")) == as_in("trip-b", before, ["r1", "r2"])
    assert await record(store, "trip") == before  # the source untouched

    # history and tool calls read the fork as any session
    source_history = await call_ok(client, "get_chat_history", session_id="trip", include_tool_messages=True)
    fork_history = await call_ok(client, "get_chat_history", session_id="trip-b", include_tool_messages=True)
    assert fork_history == {
        "session_id": "trip-b",
        "messages": [m for m in source_history["messages"] if m["run_id"] in ("r1", "r2")],
        "next_cursor": None,
    }
    source_calls = await call_ok(client, "get_tool_call_history", session_id="trip")
    fork_calls = await call_ok(client, "get_tool_call_history", session_id="trip-b", tool_name="weather")
    assert fork_calls == {
        "session_id": "trip-b",
        "tool_calls": [c for c in source_calls["tool_calls"] if c["run_id"] in ("r1", "r2")],
        "next_cursor": None,
    }


async def test_by_default_a_fork_holds_every_completed_run_and_no_other(client: Client, store: SessionStore) -> None:
    await seed(client, runs=1)
    alice = store.for_user("alice")
    failed = NewRun.recorded("it broke", "partial", run_id="r2").model_copy(update={"status": "error", "error": "x"})
    await alice.append_run("trip", failed)
    await call_ok(client, "record_run", session_id="trip", run_id="r3", input="third", output="three")
    await alice.begin_run("trip", "r4", "still going")
    before = await record(store, "trip")

    fork = await call_ok(client, "fork_session", session_id="trip", new_session_id="all")
    assert (fork["run_count"], fork["metadata"]["forked_from"]) == (2, {"session_id": "trip", "run_id": "r3"})
    assert runs_of(await record(store, "all")) == as_in("all", before, ["r1", "r3"])
    for run_id, status in (("r2", "error"), ("r4", "running")):
        message = await call_error(client, "fork_session", session_id="trip", up_to_run_id=run_id)
        assert message == f"Run {run_id!r} of session 'trip' is {status}, not completed; fork up to a completed run."
    assert await record(store, "trip") == before


async def test_a_fork_without_a_new_id_gets_a_uuid_and_a_fork_of_no_runs_names_no_run(client: Client) -> None:
    await call_ok(client, "start_session", session_id="empty", state={"k": 1})
    fork = await call_ok(client, "fork_session", session_id="empty")
    assert len(fork["session_id"]) == 36 and fork["session_id"].count("-") == 4
    assert (fork["run_count"], fork["state"], fork["metadata"]) == (
        0,
        {"k": 1},
        {"forked_from": {"session_id": "empty", "run_id": None}},
    )
    again = await call_ok(client, "fork_session", session_id=fork["session_id"], new_session_id="grandchild")
    assert again["metadata"] == {"forked_from": {"session_id": fork["session_id"], "run_id": None}}


async def test_search_finds_the_fork_s_text_once_per_session(client: Client) -> None:
    await seed(client, runs=2)
    await call_ok(client, "fork_session", session_id="trip", new_session_id="trip-b", up_to_run_id="r1")
    found = await call_ok(client, "search_previous_sessions", query="kayaking", limit=20)
    hits = sorted((h["session_id"], h["run_id"], h["role"]) for h in found["results"])
    assert hits == [("trip", "r1", "user"), ("trip", "r2", "user"), ("trip-b", "r1", "user")]
    found = await call_ok(client, "search_previous_sessions", query="weather", limit=20)
    hits = sorted((h["session_id"], h["run_id"], h["role"]) for h in found["results"])
    assert hits == [("trip", "r1", "tool"), ("trip", "r2", "tool"), ("trip-b", "r1", "tool")]


async def test_deleting_the_source_leaves_the_fork_whole(client: Client, store: SessionStore) -> None:
    await seed(client)
    await call_ok(client, "fork_session", session_id="trip", new_session_id="trip-b")
    fork = await record(store, "trip-b")
    await call_ok(client, "delete_session", session_id="trip")
    assert await record(store, "trip-b") == fork
    found = await call_ok(client, "search_previous_sessions", query="fjords", limit=20)
    assert sorted(h["run_id"] for h in found["results"] if h["session_id"] == "trip-b") == ["r1", "r2", "r3"]
    assert {h["session_id"] for h in found["results"]} == {"trip-b"}


async def test_the_summary_comes_along_only_if_it_covers_no_run_past_the_fork_point(
    client: Client, store: SessionStore
) -> None:
    await seed(client, runs=1)
    alice = store.for_user("alice")
    failed = NewRun.recorded("it broke", "", run_id="r2").model_copy(update={"status": "error"})
    await alice.append_run("trip", failed)
    await call_ok(client, "record_run", session_id="trip", run_id="r3", input="third", output="three")
    summary = SessionSummary(summary="Kayaks.", topics=["kayak"], run_count=3, updated_at="2026-01-01T00:00:00.000000Z")
    await alice.set_summary("trip", summary)

    whole = await call_ok(client, "fork_session", session_id="trip", new_session_id="whole")
    # it covers runs 1 to 3 of the source, of which the fork holds two (r1, r3)
    assert whole["summary"] == {**summary.model_dump(), "run_count": 2}
    part = await call_ok(client, "fork_session", session_id="trip", new_session_id="part", up_to_run_id="r1")
    assert (part["summary"], part["run_count"]) == (None, 1)


async def test_refused_forks_say_why_and_write_nothing(client: Client, store: SessionStore) -> None:
    await seed(client, runs=2)
    await call_ok(client, "start_session", session_id="taken")
    await call_ok(client, "start_session", session_id="bobs", user_id="bob")
    counts = await store.counts()
    refusals = {
        "You already have a session 'taken'; pass another new_session_id, or omit it for a new id.": {
            "new_session_id": "taken"
        },
        "Session 'trip' has no run 'r9'; call get_chat_history to see its run ids.": {"up_to_run_id": "r9"},
    }
    for expected, arguments in refusals.items():
        assert await call_error(client, "fork_session", session_id="trip", **arguments) == expected
    # a run id of another session is no run of this one
    await call_ok(client, "record_run", session_id="other", run_id="elsewhere", input="a", output="b")
    counts = await store.counts()
    message = await call_error(client, "fork_session", session_id="trip", up_to_run_id="elsewhere")
    assert message == "Session 'trip' has no run 'elsewhere'; call get_chat_history to see its run ids."
    # another user's session reads exactly like a missing one
    assert await call_error(client, "fork_session", session_id="trip", user_id="bob") == NOT_FOUND.format("trip")
    assert await call_error(client, "fork_session", session_id="nosuch") == NOT_FOUND.format("nosuch")
    assert await call_error(client, "fork_session", session_id="bobs") == NOT_FOUND.format("bobs")
    assert await store.counts() == counts
    bad = await client.call_tool("fork_session", {"session_id": "trip", "new_session_id": "no spaces"})
    assert bad.is_error and await store.counts() == counts


async def test_forks_are_the_user_s_own(client: Client, store: SessionStore) -> None:
    await seed(client, runs=1)
    bobs = await call_ok(client, "record_run", session_id="trip-b", user_id="bob", input="bob's", output="own")
    # session ids are per user: alice may fork into an id bob has, and bob's session stays his
    fork = await call_ok(client, "fork_session", session_id="trip", new_session_id="trip-b")
    assert (fork["user_id"], fork["run_count"]) == ("alice", 1)
    bob_record = await record(store, "trip-b", "bob")
    assert [(r.run_id, r.input) for r in bob_record.runs] == [(bobs["run_id"], "bob's")]
    bob_found = await call_ok(client, "search_previous_sessions", query="kayaking", user_id="bob")
    assert bob_found == {"results": []}
    listed = await call_ok(client, "list_sessions", user_id="bob")
    assert [s["session_id"] for s in listed["sessions"]] == ["trip-b"] and listed["total"] == 1


async def test_a_column_a_later_migration_adds_is_copied_too(db_path: Path) -> None:
    """SQLite only: the copy takes every column each table has, not a list written down today."""
    store = await SqliteStore.open(str(db_path))
    try:
        alice = store.for_user("alice")
        await alice.append_run("trip", NewRun.recorded("hello", "hi", run_id="r1"))
        with closing(sqlite3.connect(db_path)) as raw:
            for table in ("sessions", "runs", "messages", "tool_calls"):
                raw.execute(f"ALTER TABLE {table} ADD COLUMN later TEXT")
                raw.execute(f"UPDATE {table} SET later = 'kept ' || pk")
            raw.commit()
        await alice.fork_session("trip", "fork")
        with closing(sqlite3.connect(db_path)) as raw:
            rows = raw.execute(
                "SELECT s.session_id, s.later, r.later, m.later FROM sessions s JOIN runs r ON r.session_pk = s.pk "
                "JOIN messages m ON m.run_pk = r.pk ORDER BY s.pk, m.pk"
            ).fetchall()
        assert rows == [
            ("trip", "kept 1", "kept 1", "kept 1"),
            ("trip", "kept 1", "kept 1", "kept 2"),
            ("fork", "kept 1", "kept 1", "kept 1"),
            ("fork", "kept 1", "kept 1", "kept 2"),
        ]
    finally:
        await store.close()


async def test_a_fork_of_more_attachment_bytes_than_the_limit_is_refused_and_writes_nothing(
    client: Client, store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bytes of attachments a fork copies are bounded too (MAX_FORK_ATTACHMENT_BYTES), not only its runs:
    here 1,000 bytes, and the first two runs hold 600 each (a url attachment holds none)."""
    from mcp_server_sessions.store import sqlite_fork

    monkeypatch.setattr(sqlite_fork, "MAX_FORK_ATTACHMENT_BYTES", 1_000)  # postgres_fork shares its rule
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(592)).decode()
    sent = [
        [{"type": "image", "mime_type": "image/png", "data": png}],
        [{"type": "image", "mime_type": "image/png", "data": png}],
        [{"type": "file", "mime_type": "application/pdf", "url": "https://example.com/plan.pdf"}],
    ]
    for n, attachments in enumerate(sent, start=1):
        await call_ok(
            client, "record_run", session_id="trip", run_id=f"r{n}", input="see", output="seen", attachments=attachments
        )
    counts = await store.counts()
    assert await call_error(client, "fork_session", session_id="trip") == (
        "A fork copies at most 1,000 bytes of attachments, and the completed runs of session 'trip' up to that "
        "point hold 1,200; fork up to an earlier run (up_to_run_id)."
    )
    assert await call_error(client, "fork_session", session_id="trip", up_to_run_id="r2") == (
        "A fork copies at most 1,000 bytes of attachments, and the completed runs of session 'trip' up to that "
        "point hold 1,200; fork up to an earlier run (up_to_run_id)."
    )
    assert await store.counts() == counts
    fork = await call_ok(client, "fork_session", session_id="trip", new_session_id="trip-b", up_to_run_id="r1")
    assert fork["run_count"] == 1
    [copied] = (await record(store, "trip-b")).runs
    assert [a.size for a in copied.attachments] == [600]


async def test_a_fork_of_more_runs_than_the_limit_is_refused_and_writes_nothing(
    client: Client, store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork is one transaction (on SQLite it holds the write lock while the copies are indexed), so it
    copies at most MAX_FORK_RUNS runs: here 2 of 3."""
    from mcp_server_sessions.store import postgres_fork, sqlite_fork

    for module in (sqlite_fork, postgres_fork):
        monkeypatch.setattr(module, "MAX_FORK_RUNS", 2)
    await seed(client, runs=3)
    counts = await store.counts()
    assert await call_error(client, "fork_session", session_id="trip") == (
        "A fork copies at most 2 runs, and session 'trip' has more completed runs up to that point; fork up to "
        "an earlier run (up_to_run_id), or summarize_session and start a new session from its summary."
    )
    assert await store.counts() == counts
    fork = await call_ok(client, "fork_session", session_id="trip", up_to_run_id="r2")
    assert fork["run_count"] == 2 and fork["metadata"]["forked_from"] == {"session_id": "trip", "run_id": "r2"}


async def test_a_fork_of_a_team_session_holds_leader_runs_with_their_members_and_no_orphan(
    store: SessionStore,
) -> None:
    """The fork point is a completed leader run (by default the last one); a member run comes along when its
    parent run does (wherever it was recorded), and never without it: M2 served L2, which ended in error, and
    M2b served M2."""
    alice = store.for_user("alice")
    await alice.start_session("crew", kind=SessionKind("team", None, "planners", None))
    plan = [
        ("L1", None, "completed"),
        ("M1", "L1", "completed"),
        ("L2", None, "error"),
        ("M2", "L2", "completed"),
        ("M2b", "M2", "completed"),
        ("L3", None, "completed"),
        ("M1b", "L1", "completed"),
        ("M3", "L3", "completed"),
    ]
    for run_id, parent, status in plan:
        run = NewRun.recorded(f"ask {run_id}", f"answer {run_id}", run_id=run_id, parent_run_id=parent)
        ended = {"status": status, "error": None if status == "completed" else "boom"}
        await alice.append_run("crew", run.model_copy(update=ended))
    counts = await store.counts()

    fork = await alice.fork_session("crew", "crew-b")
    assert fork.metadata["forked_from"] == {"session_id": "crew", "run_id": "L3"} and fork.run_count == 5
    copied = (await record(store, "crew-b")).runs
    assert [(run.run_id, run.parent_run_id) for run in copied] == [
        ("L1", None),
        ("M1", "L1"),
        ("L3", None),
        ("M1b", "L1"),
        ("M3", "L3"),
    ]
    earlier = await alice.fork_session("crew", "crew-c", up_to_run_id="L1")
    assert [run.run_id for run in (await record(store, "crew-c")).runs] == ["L1", "M1", "M1b"]
    assert earlier.run_count == 3

    before = await store.counts()
    for member, leader in (("M1", "L1"), ("M3", "L3")):
        with pytest.raises(InvalidInput) as refused:
            await alice.fork_session("crew", "crew-d", up_to_run_id=member)
        assert str(refused.value) == (
            f"Run {member!r} of session 'crew' is a team member's run (of {leader!r}); fork up to a leader run, "
            "which brings its members along."
        )
    assert await store.counts() == before != counts
