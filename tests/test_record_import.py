"""Whole sessions read and written on both backends: `session_record` (a caller's session whole or its
last runs, nobody else's), `export_sessions` by user and ids, and `import_session` merging, skipping or
replacing a session the user already has, each checked by exporting the result back."""

import pytest

from mcp_server_sessions.store import InvalidInput, SessionNotFound, postgres_records, sqlite_export
from mcp_server_sessions.store.protocol import SessionStore
from mcp_server_sessions.store.records import SessionRecord
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
