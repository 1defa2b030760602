"""Writing a whole session record into a PostgresStore (`import_session`): one transaction that creates
the session, or merges into, skips or replaces the one its user already has (records.OnConflict).

The session row is inserted or set to the record's fields, and runs go in through postgres_runs
(messages and tool calls with their search vectors), keeping the record's timestamps. Replacing
deletes the session's runs first (their messages and tool calls, search vectors included, cascade
with them) in the same transaction; the session row stays, so the session keeps its place in creation
order. A run still `running` in the record comes in without a lease, so the next recovery marks it
`error`: its server is not this one.
"""

from typing import TYPE_CHECKING, Literal

from . import postgres_runs as runs
from .postgres_connection import Database
from .postgres_session_table import OwnedSession, UserDirectory, find_session
from .postgres_values import optional_to_db, timestamp
from .record_checks import RECORD_COLUMNS, PreparedRecord, check_on_conflict, prepare_record
from .records import ImportedSession, OnConflict, SessionRecord

if TYPE_CHECKING:
    from .postgres_schema import Conn

_COLUMNS = RECORD_COLUMNS[1:]
"""The sessions columns a record sets besides the owner and the id (PreparedRecord.columns)."""
_SET_SESSION = ", ".join(f"{column} = ${index}" for index, column in enumerate(_COLUMNS, 2))
_INSERT_SESSION = (
    f"INSERT INTO sessions (user_pk, session_id, {', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join(f'${index}' for index in range(1, len(_COLUMNS) + 3))}) "
    "ON CONFLICT (user_pk, session_id) DO NOTHING RETURNING pk"
)


async def import_session(
    db: Database, users: UserDirectory, record: SessionRecord, on_conflict: OnConflict
) -> ImportedSession:
    """Write the record's session as `on_conflict` says, in one transaction; what it did. The record is
    checked whole first: one the store cannot hold raises InvalidInput and writes nothing. Repeating
    it after a lost connection is harmless: the session ends the same."""
    check_on_conflict(on_conflict)
    prepared = prepare_record(record)
    values = _session_values(prepared)

    async def body(conn: "Conn") -> ImportedSession:
        user_pk = await users.created_user_pk(conn, prepared.user_id)
        outcome: Literal["created", "merged", "replaced"]
        while True:  # found and held, or inserted; one deleted or inserted meanwhile: again
            session_pk = await find_session(conn, user_pk, prepared.session_id, hold=True)
            if session_pk is not None:
                if on_conflict == "skip":
                    return ImportedSession("skipped", 0)
                await conn.execute(f"UPDATE sessions SET {_SET_SESSION} WHERE pk = $1", session_pk, *values)
                outcome = "merged" if on_conflict == "merge" else "replaced"
                break
            session_pk = await conn.fetchval(_INSERT_SESSION, user_pk, prepared.session_id, *values)
            if session_pk is not None:
                outcome = "created"
                break
        held = {row["run_id"] for row in await conn.fetch("SELECT run_id FROM runs WHERE session_pk = $1", session_pk)}
        if outcome == "replaced":
            await conn.execute("DELETE FROM runs WHERE session_pk = $1", session_pk)
        added = await _write_runs(conn, OwnedSession(user_pk, session_pk, prepared.session_id), prepared, held, outcome)
        return ImportedSession(outcome, added)

    return await db.run(body)


def _session_values(prepared: PreparedRecord) -> tuple[object, ...]:
    """The record's session columns (_COLUMNS) as PostgreSQL takes them."""
    name, state, metadata, agent, summary, run_count, created, updated, *figures_and_kind = prepared.columns
    return (
        optional_to_db(name),  # type: ignore[arg-type]
        state,
        metadata,
        agent,
        summary,
        run_count,
        timestamp(str(created)),
        timestamp(str(updated)),
        *figures_and_kind,
    )


async def _write_runs(
    conn: "Conn", session: OwnedSession, prepared: PreparedRecord, held: set[str], outcome: str
) -> int:
    """Write the record's runs (a merge leaves out those the session `held`); how many the session did
    not hold before, by run_id (a replace rewrites the others too, but they were there already)."""
    added = 0
    for run, created_at, call_times in prepared.runs:
        if outcome == "merged" and run.run_id in held:
            continue
        run_pk = await runs.insert_run(conn, session.session_pk, run, timestamp(created_at))
        if run_pk is None:  # another import or copy added it meanwhile
            continue
        moments = [timestamp(moment) for moment in call_times]
        await runs.write_rows(conn, session, run_pk, run, timestamp(created_at), moments)
        added += run.run_id not in held
    return added
