"""Writing a whole session record into a SqliteStore (`import_session`): one write transaction that
creates the session, or merges into, skips or replaces the one its user already has (records.OnConflict).

Runs go in through sqlite_runs.write_run, as `append_run` writes them, so their messages and tool calls
enter the search index the same way; only the timestamps are the record's rather than the clock's.
Replacing deletes the session's runs with their messages, tool calls and search index entries, then
writes the record's runs, all in the same transaction; the session row stays, so the session keeps its
place in creation order.
"""

import functools
import sqlite3
from typing import Literal

from . import sqlite_search_index as search_index
from .record_checks import RECORD_COLUMNS, PreparedRecord, check_on_conflict, prepare_record
from .records import ImportedSession, OnConflict, SessionRecord
from .sqlite_connection import Connection, write
from .sqlite_identity import UserDirectory, find_session
from .sqlite_runs import write_run

_SET_SESSION = ", ".join(f"{column} = ?" for column in RECORD_COLUMNS[1:])
_INSERT_SESSION = (
    f"INSERT INTO sessions (user_pk, {', '.join(RECORD_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in range(len(RECORD_COLUMNS) + 1))})"
)


async def import_session(
    writer: Connection, users: UserDirectory, record: SessionRecord, on_conflict: OnConflict
) -> ImportedSession:
    """Write the record's session as `on_conflict` says, in one write transaction; what it did. The
    record is checked whole first: one the store cannot hold raises InvalidInput and writes nothing."""
    check_on_conflict(on_conflict)
    prepared = prepare_record(record)
    return await writer.run(write(functools.partial(_import, users=users, record=prepared, on_conflict=on_conflict)))


def _import(
    raw: sqlite3.Connection, *, users: UserDirectory, record: PreparedRecord, on_conflict: OnConflict
) -> ImportedSession:
    """Inside the write transaction. `runs_added` counts the record's runs the session did not hold
    (by run_id) before: a replace rewrites the others too, but they were there already."""
    user_pk = users.created_user_pk(raw, record.user_id)
    session_pk = find_session(raw, user_pk, record.session_id)
    held: set[str] = set()
    outcome: Literal["created", "merged", "replaced"]
    if session_pk is None:
        session_pk = raw.execute(_INSERT_SESSION, (user_pk, record.session_id, *record.columns)).lastrowid
        assert session_pk is not None
        outcome = "created"
    elif on_conflict == "skip":
        return ImportedSession("skipped", 0)
    else:
        raw.execute(f"UPDATE sessions SET {_SET_SESSION} WHERE pk = ?", (*record.columns, session_pk))
        held = {row[0] for row in raw.execute("SELECT run_id FROM runs WHERE session_pk = ?", (session_pk,))}
        outcome = "merged" if on_conflict == "merge" else "replaced"
        if outcome == "replaced":
            _delete_runs(raw, session_pk)
    kept = held if outcome == "merged" else set()
    added = 0
    for run, created_at, call_times in record.runs:
        if run.run_id in kept:
            continue
        run_pk = write_run(raw, user_pk, session_pk, run, None, created_at)
        call_pks = raw.execute("SELECT pk FROM tool_calls WHERE run_pk = ? ORDER BY pk", (run_pk,)).fetchall()
        for (call_pk,), call_time in zip(call_pks, call_times, strict=True):
            if call_time != created_at:  # write_run stamps a run's tool calls with the run's time
                raw.execute("UPDATE tool_calls SET created_at = ? WHERE pk = ?", (call_time, call_pk))
        added += run.run_id not in held
    return ImportedSession(outcome, added)


def _delete_runs(raw: sqlite3.Connection, session_pk: int) -> None:
    """The session's runs gone, with their messages, tool calls and search index entries."""
    tables: tuple[search_index.IndexedTable, ...] = ("tool_calls", "messages")
    for table in tables:
        pks = raw.execute(f"SELECT json_group_array(pk) FROM {table} WHERE session_pk = ?", (session_pk,)).fetchone()
        search_index.remove(raw, table, pks[0])
        raw.execute(f"DELETE FROM {table} WHERE session_pk = ?", (session_pk,))
    raw.execute("DELETE FROM runs WHERE session_pk = ?", (session_pk,))
