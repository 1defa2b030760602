"""Whole sessions out of a SqliteStore, for operator tools such as `copy` and `export`: sessions read as
SessionRecords (every user's, one user's, named ones, or a caller's own through session_record), and
what the file holds, counted. sqlite_import.py writes a record back.

Reading goes one session per read transaction, in sessions.pk order, so a file of any size is read a
session at a time and each record is one consistent snapshot; the sessions to read are listed a batch
of pks at a time, so one user's sessions among many are found through the user's index. Sessions being
purged (sqlite_purge.py) are neither exported nor counted: they are deleted already.
"""

import functools
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from itertools import groupby

from . import sqlite_attachments
from .record_checks import EXPORT_BATCH, RECORD_COLUMNS, ExportFilter, export_filter
from .records import RecordedMessage, RunRecord, SessionRecord, StoreCounts
from .sqlite_connection import Connection, read
from .sqlite_identity import OwnedSession
from .sqlite_rows import PAUSED_RUN_IDS, row_to_run, row_to_session, row_to_tool_call

_LIVE = "session_pk NOT IN (SELECT session_pk FROM session_purges)"
"""Rows of sessions not being purged (a deleted session's rows stay until purged)."""

_SELECT_SESSION = ", ".join([*(f"s.{column}" for column in RECORD_COLUMNS), PAUSED_RUN_IDS])


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
    return SessionRecord(session=session, runs=_runs(raw, row["pk"], session.session_id, 0, with_bytes=True))


def session_record(
    raw: sqlite3.Connection, session: OwnedSession, user_id: str, last_runs: int | None, *, with_bytes: bool
) -> SessionRecord:
    """The user's session as a record, with every run or only its last `last_runs`, read inside the
    caller's read transaction; its attachments with their bytes only if `with_bytes`."""
    row = raw.execute(f"SELECT {_SELECT_SESSION} FROM sessions s WHERE s.pk = ?", (session.session_pk,)).fetchone()
    first_run_pk = _first_run_pk(raw, session.session_pk, last_runs)
    runs = (
        []
        if first_run_pk is None
        else _runs(raw, session.session_pk, session.session_id, first_run_pk, with_bytes=with_bytes)
    )
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


def _runs(
    raw: sqlite3.Connection, session_pk: int, session_id: str, first_run_pk: int, *, with_bytes: bool
) -> list[RunRecord]:
    """The session's runs from pk `first_run_pk` on, oldest first, with their messages, tool calls and
    attachments (with their bytes only if `with_bytes`)."""
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
    media = sqlite_attachments.records(raw, session_pk, session_id, first_run_pk, with_bytes=with_bytes)
    records = []
    for row in raw.execute(
        "SELECT * FROM runs WHERE session_pk = ? AND pk >= ? ORDER BY pk", (session_pk, first_run_pk)
    ):
        run = row_to_run(row, session_id, calls.get(row["pk"], []))
        resume = json.loads(row["resume"]) if row["resume"] is not None else None
        fields = dict(run) | {"attachments": media.get(row["pk"], [])}
        records.append(RunRecord(**fields, messages=messages.get(row["pk"], []), resume=resume))
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
