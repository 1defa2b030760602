"""Whole sessions read and written on both backends: `session_record` (a caller's session whole or its
last runs, nobody else's), `export_sessions` by user and ids, and `import_session` merging, skipping or
replacing a session the user already has, each checked by exporting the result back."""

import pytest

from mcp_server_sessions.store import InvalidInput, SessionNotFound
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
