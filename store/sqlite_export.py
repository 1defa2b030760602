"""Whole sessions in and out of a SqliteStore, for operator tools such as `copy` and `export`: sessions
read as SessionRecords (every user's, one user's, named ones, or a caller's own through session_record),
a record written back as it is, and what the file holds, counted.

Reading goes one session per read transaction, in sessions.pk order, so a file of any size is read a
session at a time and each record is one consistent snapshot; the sessions to read are listed a batch
of pks at a time, so one user's sessions among many are found through the user's index. Sessions being
purged (sqlite_purge.py) are neither exported nor counted: they are deleted already. Writing a record is
one write transaction that inserts its runs through sqlite_runs.write_run, as `append_run` does, so
messages and tool calls enter the search index the same way; only the timestamps are the record's
rather than the clock's.
"""

import functools
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from itertools import groupby

from .record_checks import EXPORT_BATCH, ExportFilter, PreparedRecord, export_filter, prepare_record
from .records import RecordedMessage, RunRecord, SessionRecord, StoreCounts
from .sqlite_connection import Connection, read, write
from .sqlite_identity import OwnedSession, UserDirectory, find_session
from .sqlite_rows import row_to_run, row_to_session, row_to_tool_call
from .sqlite_runs import write_run

_LIVE = "session_pk NOT IN (SELECT session_pk FROM session_purges)"
"""Rows of sessions not being purged (a deleted session's rows stay until purged)."""

_SESSION_COLUMNS = (
    "session_id",
    "name",
    "state",
    "metadata",
    "agent",
    "summary",
    "run_count",
    "created_at",
    "updated_at",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)
"""The sessions columns a record sets, besides the owner."""
_SELECT_SESSION = ", ".join(f"s.{column}" for column in _SESSION_COLUMNS)
_SET_SESSION = ", ".join(f"{column} = ?" for column in _SESSION_COLUMNS[1:])
_INSERT_SESSION = (
    f"INSERT INTO sessions (user_pk, {', '.join(_SESSION_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in range(len(_SESSION_COLUMNS) + 1))})"
)


# -- export -------------------------------------------------------------------------------


async def export_sessions(
    reader: Connection, *, user_id: str | None = None, session_ids: Sequence[str] | None = None
) -> AsyncIterator[SessionRecord]:
    """The sessions not being purged (of `user_id` only, and then of `session_ids` only), whole, in
    sessions.pk order: listed EXPORT_BATCH at a time, each read in one read transaction of its own."""
    scope = export_filter(user_id, session_ids)
    if scope is None:
        return
    where, params = _where(scope)
    after = 0
    while pks := await reader.run(read(functools.partial(_session_pks, where=where, params=(after, *params)))):
        for session_pk in pks:
            record = await reader.run(read(functools.partial(_record, where=where, params=(session_pk, *params))))
            if record is not None:  # unless deleted since it was listed
                yield record
        after = pks[-1]


def _where(scope: ExportFilter) -> tuple[str, tuple[str, ...]]:
    """The condition on `sessions s` an export reads, and its parameters."""
    clauses = ["s.pk NOT IN (SELECT session_pk FROM session_purges)"]
    params: list[str] = []
    if scope.user_id is not None:
        clauses.append("s.user_pk = (SELECT pk FROM users WHERE user_id = ?)")
        params.append(scope.user_id)
    if scope.session_ids is not None:
        clauses.append("s.session_id IN (SELECT value FROM json_each(?))")
        params.append(json.dumps(scope.session_ids))
    return " AND ".join(clauses), tuple(params)


def _session_pks(raw: sqlite3.Connection, *, where: str, params: tuple[object, ...]) -> list[int]:
    """The pks of the next EXPORT_BATCH sessions after pk params[0]."""
    rows = raw.execute(
        f"SELECT s.pk FROM sessions s WHERE s.pk > ? AND {where} ORDER BY s.pk LIMIT {EXPORT_BATCH}", params
    )
    return [int(row[0]) for row in rows]


def _record(raw: sqlite3.Connection, *, where: str, params: tuple[object, ...]) -> SessionRecord | None:
    """The session of pk params[0], whole, if it still is one the export reads."""
    row = raw.execute(
        f"SELECT s.pk, u.user_id, {_SELECT_SESSION} FROM sessions s JOIN users u ON u.pk = s.user_pk "
        f"WHERE s.pk = ? AND {where}",
        params,
    ).fetchone()
    if row is None:
        return None
    session = row_to_session(row, row["user_id"])
    return SessionRecord(session=session, runs=_runs(raw, row["pk"], session.session_id, 0))


def session_record(
    raw: sqlite3.Connection, session: OwnedSession, user_id: str, last_runs: int | None
) -> SessionRecord:
    """The user's session as a record, with every run or only its last `last_runs`, read inside the
    caller's read transaction."""
    row = raw.execute(f"SELECT {_SELECT_SESSION} FROM sessions s WHERE s.pk = ?", (session.session_pk,)).fetchone()
    first_run_pk = _first_run_pk(raw, session.session_pk, last_runs)
    runs = [] if first_run_pk is None else _runs(raw, session.session_pk, session.session_id, first_run_pk)
    return SessionRecord(session=row_to_session(row, user_id), runs=runs)


def _first_run_pk(raw: sqlite3.Connection, session_pk: int, last_runs: int | None) -> int | None:
    """The pk from which the last `last_runs` runs start (0: every run; None: no run at all)."""
    if last_runs is None:
        return 0
    if last_runs == 0:
        return None
    row = raw.execute(
        "SELECT pk FROM runs WHERE session_pk = ? ORDER BY pk DESC LIMIT 1 OFFSET ?", (session_pk, last_runs - 1)
    ).fetchone()
    return 0 if row is None else int(row[0])


def _runs(raw: sqlite3.Connection, session_pk: int, session_id: str, first_run_pk: int) -> list[RunRecord]:
    """The session's runs from pk `first_run_pk` on, oldest first, with their messages and tool calls."""
    messages = {
        run_pk: [_message(row) for row in rows]
        for run_pk, rows in groupby(
            raw.execute(
                "SELECT * FROM messages WHERE session_pk = ? AND run_pk >= ? ORDER BY run_pk, pk",
                (session_pk, first_run_pk),
            ),
            key=lambda row: row["run_pk"],
        )
    }
    calls = {
        run_pk: [row_to_tool_call(row) for row in rows]
        for run_pk, rows in groupby(
            raw.execute(
                "SELECT t.*, r.run_id FROM runs r JOIN tool_calls t ON t.run_pk = r.pk "
                "WHERE r.session_pk = ? AND r.pk >= ? ORDER BY r.pk, t.pk",
                (session_pk, first_run_pk),
            ),
            key=lambda row: row["run_pk"],
        )
    }
    records = []
    for row in raw.execute(
        "SELECT * FROM runs WHERE session_pk = ? AND pk >= ? ORDER BY pk", (session_pk, first_run_pk)
    ):
        run = row_to_run(row, session_id, calls.get(row["pk"], []))
        records.append(RunRecord(**dict(run), messages=messages.get(row["pk"], [])))
    return records


def _message(row: sqlite3.Row) -> RecordedMessage:
    blocks = json.loads(row["blocks"]) if row["blocks"] is not None else None
    return RecordedMessage(role=row["role"], content=row["content"], blocks=blocks, is_tool=bool(row["is_tool"]))


async def counts(reader: Connection) -> StoreCounts:
    """Users owning a session, sessions, runs, messages and tool calls, leaving out sessions being purged."""
    return await reader.run(read(_counts))


def _counts(raw: sqlite3.Connection) -> StoreCounts:
    users, session_count = raw.execute(
        "SELECT count(DISTINCT user_pk), count(*) FROM sessions WHERE pk NOT IN (SELECT session_pk FROM session_purges)"
    ).fetchone()
    rows = {
        table: raw.execute(f"SELECT count(*) FROM {table} WHERE {_LIVE}").fetchone()[0]
        for table in ("runs", "messages", "tool_calls")
    }
    return StoreCounts(
        users=users, sessions=session_count, runs=rows["runs"], messages=rows["messages"], tool_calls=rows["tool_calls"]
    )


# -- import -------------------------------------------------------------------------------


async def import_session(writer: Connection, users: UserDirectory, record: SessionRecord) -> int:
    """Write the record's session (its fields set to the record's) and the runs it lacks, in one
    write transaction; how many runs were added."""
    prepared = prepare_record(record)
    return await writer.run(write(lambda raw: _import(raw, users, prepared)))


def _import(raw: sqlite3.Connection, users: UserDirectory, record: PreparedRecord) -> int:
    user_pk = users.created_user_pk(raw, record.user_id)
    session_pk = find_session(raw, user_pk, record.session_id)
    if session_pk is None:
        session_pk = raw.execute(_INSERT_SESSION, (user_pk, record.session_id, *record.columns)).lastrowid
        assert session_pk is not None
    else:
        raw.execute(f"UPDATE sessions SET {_SET_SESSION} WHERE pk = ?", (*record.columns, session_pk))
    held = {row[0] for row in raw.execute("SELECT run_id FROM runs WHERE session_pk = ?", (session_pk,))}
    added = 0
    for run, created_at, call_times in record.runs:
        if run.run_id in held:
            continue
        run_pk = write_run(raw, user_pk, session_pk, run, None, created_at)
        call_pks = raw.execute("SELECT pk FROM tool_calls WHERE run_pk = ? ORDER BY pk", (run_pk,)).fetchall()
        for (call_pk,), call_time in zip(call_pks, call_times, strict=True):
            if call_time != created_at:  # write_run stamps a run's tool calls with the run's time
                raw.execute("UPDATE tool_calls SET created_at = ? WHERE pk = ?", (call_time, call_pk))
        added += 1
    return added
