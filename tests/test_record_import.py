"""Whole sessions read and written on both backends: `session_record` (a caller's session whole or its
last runs, nobody else's), `export_sessions` by user and ids, and `import_session` merging, skipping or
replacing a session the user already has, each checked by exporting the result back."""

import pytest

from mcp_server_sessions.store import (
    InvalidInput,
    NewRun,
    SessionNotFound,
    SqliteStore,
    postgres_records,
    sqlite_export,
)
from mcp_server_sessions.store.protocol import SessionStore
from mcp_server_sessions.store.records import ImportedSession, RecordedMessage, SessionRecord, StoreCounts
from tests import test_records
from tests.test_records import fill, records

pytestmark = pytest.mark.anyio


async def exported(store: SessionStore, user_id: str, session_id: str) -> SessionRecord:
    """The user's session as the unfiltered export gives it."""
    [record] = [r for r in await records(store) if (r.session.user_id, r.session.session_id) == (user_id, session_id)]
    return record


# -- session_record ----------------------------------------------------------------------


async def test_a_session_record_is_the_session_whole_as_exported(store: SessionStore) -> None:
    await fill(store)
    alice = store.for_user("alice")
    for session_id in ("trip", "agent"):
        record = await alice.session_record(session_id)
        assert record == await exported(store, "alice", session_id)
        assert record.session == await alice.get_session(session_id)
    assert [run.run_id for run in (await alice.session_record("trip")).runs] == ["run-1", "run-2"]
    empty = await store.for_user("bob").session_record("empty")
    assert empty == await exported(store, "bob", "empty") and empty.runs == []


async def test_a_session_record_of_the_last_runs_holds_those_runs_whole(store: SessionStore) -> None:
    await fill(store)
    alice = store.for_user("alice")
    whole = await alice.session_record("agent")
    assert len(whole.runs) == 2
    assert await alice.session_record("agent", last_runs=1) == whole.model_copy(update={"runs": whole.runs[-1:]})
    assert await alice.session_record("agent", last_runs=2) == whole
    assert await alice.session_record("agent", last_runs=2**62) == whole
    assert await alice.session_record("agent", last_runs=0) == whole.model_copy(update={"runs": []})
    begun = (await alice.session_record("agent", last_runs=2)).runs[0]
    assert [m.role for m in begun.messages] == ["user", "assistant", "tool", "assistant"]
    assert [call.tool_name for call in begun.tool_calls] == ["weather"]
    with pytest.raises(InvalidInput, match="last_runs must be 0 or more"):
        await alice.session_record("agent", last_runs=-1)


async def test_another_users_session_record_is_not_found_exactly_as_a_missing_one(store: SessionStore) -> None:
    await fill(store)
    alice, bob = store.for_user("alice"), store.for_user("bob")
    with pytest.raises(SessionNotFound) as foreign:
        await bob.session_record("agent")  # alice's
    with pytest.raises(SessionNotFound) as unknown_user:
        await store.for_user("dave").session_record("agent")
    await alice.delete_session("agent")
    with pytest.raises(SessionNotFound) as deleted:
        await alice.session_record("agent")
    with pytest.raises(SessionNotFound) as missing:
        await bob.session_record("agent")  # now nobody's
    assert str(foreign.value) == str(unknown_user.value) == str(deleted.value) == str(missing.value)
    assert "'agent'" in str(missing.value)
    # bob's own "trip" is his, not alice's session of the same id
    assert [run.input for run in (await bob.session_record("trip")).runs] == ["Pack list?"]


async def test_a_deleted_session_has_no_record(store: SessionStore) -> None:
    await fill(store)  # carol's "gone" is deleted there
    with pytest.raises(SessionNotFound):
        await store.for_user("carol").session_record("gone")


# -- export_sessions by user and ids --------------------------------------------------------


def keys(found: list[SessionRecord]) -> list[tuple[str, str]]:
    return [(record.session.user_id, record.session.session_id) for record in found]


async def filtered(store: SessionStore, user_id: str | None, session_ids: list[str] | None) -> list[SessionRecord]:
    return [record async for record in store.export_sessions(user_id=user_id, session_ids=session_ids)]


async def test_an_export_by_user_holds_that_users_sessions_whole_in_creation_order(store: SessionStore) -> None:
    await fill(store)
    everything = {(r.session.user_id, r.session.session_id): r for r in await records(store)}
    alice = await filtered(store, "alice", None)
    assert keys(alice) == [("alice", "trip"), ("alice", "agent")]
    assert alice == [everything["alice", "trip"], everything["alice", "agent"]]
    assert keys(await filtered(store, "bob", None)) == [("bob", "trip"), ("bob", "empty")]
    assert await filtered(store, "carol", None) == []  # her only session was deleted
    assert await filtered(store, "dave", None) == []
    assert await filtered(store, "no such user\x00", None) == []


async def test_an_export_by_ids_leaves_out_the_ids_the_user_lacks(store: SessionStore) -> None:
    await fill(store)
    everything = {(r.session.user_id, r.session.session_id): r for r in await records(store)}
    named = await filtered(store, "alice", ["agent", "nope", "trip", "agent", "empty", "bad id\x00"])
    assert named == [everything["alice", "trip"], everything["alice", "agent"]]  # creation order, each once
    assert await filtered(store, "alice", ["empty"]) == []  # bob's
    assert await filtered(store, "alice", []) == []
    assert keys(await filtered(store, None, ["trip"])) == [("alice", "trip"), ("bob", "trip")]
    assert keys(await filtered(store, "bob", ["trip"])) == [("bob", "trip")]


async def test_an_export_lists_sessions_in_batches_and_leaves_out_one_deleted_meanwhile(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_export, "EXPORT_BATCH", 2)
    monkeypatch.setattr(postgres_records, "EXPORT_BATCH", 2)
    for number in range(7):
        owner = "alice" if number % 3 else "bob"
        await store.for_user(owner).start_session(f"s{number}")
    assert keys(await filtered(store, "alice", None)) == [("alice", f"s{n}") for n in (1, 2, 4, 5)]
    assert keys(await records(store)) == [("bob" if n % 3 == 0 else "alice", f"s{n}") for n in range(7)]
    exporting = store.export_sessions(user_id="alice")
    first = await anext(exporting)
    await store.for_user("alice").delete_session("s2")  # listed with s1 already
    await store.for_user("alice").delete_session("s5")  # not listed yet
    assert keys([first, *[record async for record in exporting]]) == [("alice", "s1"), ("alice", "s4")]


# -- import_session: created, merged, skipped, replaced ------------------------------------------


source = test_records.source
"""Another store (a SQLite file) holding test_records.fill's sample, whose records are imported into `store`."""


async def alice_trip(store: SessionStore) -> SessionRecord:
    return await store.for_user("alice").session_record("trip")


def counted(found: list[SessionRecord]) -> StoreCounts:
    """What a store holding exactly these records counts."""
    runs = [run for record in found for run in record.runs]
    return StoreCounts(
        users=len({record.session.user_id for record in found}),
        sessions=len(found),
        runs=len(runs),
        messages=sum(len(run.messages) for run in runs),
        tool_calls=sum(len(run.tool_calls) for run in runs),
    )


def replacement_of(record: SessionRecord) -> SessionRecord:
    """`record` changed as a replacing import would bring it: renamed, its second run gone, its first
    run's answer rewritten, and a run it did not have."""
    first, _ = record.runs
    rewritten = first.model_copy(
        update={
            "content": "Go in May instead.",
            "messages": [
                *first.messages[:-1],
                RecordedMessage(role="assistant", content="Go in May instead."),
            ],
        }
    )
    new = first.model_copy(
        update={
            "run_id": "run-9",
            "input": "What about Lisbon?",
            "content": "Lisbon in spring.",
            "tool_calls": [],
            "messages": [
                RecordedMessage(role="user", content="What about Lisbon?"),
                RecordedMessage(role="assistant", content="Lisbon in spring."),
            ],
        }
    )
    session = record.session.model_copy(update={"name": "Replaced", "state": {"only": "this"}, "run_count": 2})
    return SessionRecord(session=session, runs=[rewritten, new])


async def test_a_session_the_user_lacks_is_created_whatever_on_conflict_says(
    source: SqliteStore, store: SessionStore
) -> None:
    originals = await records(source)
    for record, on_conflict in zip(originals, ("merge", "skip", "replace", "merge"), strict=True):
        done = await store.import_session(record, on_conflict=on_conflict)
        assert done == ImportedSession("created", len(record.runs))
    assert await records(store) == originals
    assert await store.counts() == counted(originals) == await source.counts()


async def test_merging_sets_the_sessions_fields_and_adds_only_the_runs_it_lacks(
    source: SqliteStore, store: SessionStore
) -> None:
    await store.import_session(await alice_trip(source))
    alice = source.for_user("alice")
    await alice.append_run("trip", NewRun.recorded("And in July?", "Midnight sun.", run_id="run-3"))
    await alice.update_session("trip", name="Renamed", state={"added": True})
    grown = await alice_trip(source)
    assert await store.import_session(grown) == ImportedSession("merged", 1)
    assert await alice_trip(store) == grown
    assert await store.import_session(grown, on_conflict="merge") == ImportedSession("merged", 0)
    assert await records(store) == [grown]


async def test_skipping_leaves_the_session_untouched(source: SqliteStore, store: SessionStore) -> None:
    original = await alice_trip(source)
    await store.import_session(original)
    changed = replacement_of(original)
    assert await store.import_session(changed, on_conflict="skip") == ImportedSession("skipped", 0)
    assert await records(store) == [original]
    assert await store.counts() == counted([original])


async def test_replacing_makes_the_session_exactly_the_record(source: SqliteStore, store: SessionStore) -> None:
    original = await alice_trip(source)
    await store.import_session(original)
    await store.for_user("alice").append_run("trip", NewRun.recorded("Zanzibar?", "Zanzibar is far.", run_id="local"))
    replacement = replacement_of(original)
    assert await store.import_session(replacement, on_conflict="replace") == ImportedSession("replaced", 1)
    assert await alice_trip(store) == replacement
    assert await records(store) == [replacement]
    assert await store.counts() == counted([replacement])
    assert await store.import_session(replacement, on_conflict="replace") == ImportedSession("replaced", 0)
    assert await records(store) == [replacement]


async def test_replacing_drops_the_search_hits_of_the_runs_it_removes(source: SqliteStore, store: SessionStore) -> None:
    original = await alice_trip(source)
    await store.import_session(original)
    alice = store.for_user("alice")
    await alice.append_run("trip", NewRun.recorded("Zanzibar?", "Zanzibar is far.", run_id="local"))
    assert {hit.run_id for hit in await alice.search("seats")} == {"run-2"}  # run-2's tool call
    assert {hit.run_id for hit in await alice.search("zanzibar")} == {"local"}
    await store.import_session(replacement_of(original), on_conflict="replace")
    assert await alice.search("seats") == []
    assert await alice.search("zanzibar") == []
    assert await alice.search("June") == []  # run-1's former answer
    assert [(hit.run_id, hit.role) for hit in await alice.search("May instead")] == [("run-1", "assistant")]
    assert [(hit.run_id, hit.role) for hit in await alice.search("kayaking fjord")] == [("run-1", "user")]
    assert [hit.run_id for hit in await alice.search("Lisbon") if hit.role == "user"] == ["run-9"]


async def test_an_invalid_record_leaves_the_session_exactly_as_it_was(source: SqliteStore, store: SessionStore) -> None:
    original = await alice_trip(source)
    await store.import_session(original)
    replacement = replacement_of(original)
    twice = replacement.model_copy(update={"runs": [replacement.runs[0], replacement.runs[0]]})
    late_run = replacement.runs[1].model_copy(update={"created_at": "later"})
    bad_time = replacement.model_copy(update={"runs": [replacement.runs[0], late_run]})
    for refused in (twice, bad_time):
        for on_conflict in ("replace", "merge"):
            with pytest.raises(InvalidInput):
                await store.import_session(refused, on_conflict=on_conflict)
    with pytest.raises(InvalidInput, match="on_conflict must be merge, skip or replace"):
        await store.import_session(replacement, on_conflict="overwrite")  # type: ignore[arg-type]
    assert await records(store) == [original]
    assert await store.counts() == counted([original])
