"""Whole sessions out of a PostgresStore, for operator tools such as `copy` and `export`: sessions read as
SessionRecords (every user's, one user's, named ones, or a caller's own through session_record), and
what the database holds, counted. postgres_import.py writes a record back.

Reading goes one session per read-only transaction, in sessions.pk order, the sessions to read listed a
batch of pks at a time.
"""

import functools
import json
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from . import postgres_attachments
from .models import ToolCall
from .postgres_connection import Database
from .postgres_runs import row_to_run, row_to_tool_call
from .postgres_session_table import COLUMNS, OwnedSession, row_to_session
from .postgres_values import from_db
from .record_checks import EXPORT_BATCH, ExportFilter, export_filter
from .records import RecordedMessage, RunRecord, SessionRecord, StoreCounts

if TYPE_CHECKING:
    from .postgres_schema import Conn


async def export_sessions(
    db: Database, *, user_id: str | None = None, session_ids: Sequence[str] | None = None
) -> AsyncIterator[SessionRecord]:
    """The sessions (of `user_id` only, and then of `session_ids` only), whole, in sessions.pk order:
    listed EXPORT_BATCH at a time, each read in one read-only transaction of its own."""
    scope = export_filter(user_id, session_ids)
    if scope is None:
        return
    where, params = _where(scope)
    after = 0
    while pks := await db.run(functools.partial(_session_pks, where=where, params=(after, *params)), write=False):
        for session_pk in pks:
            record = await db.run(functools.partial(_record, where=where, params=(session_pk, *params)), write=False)
            if record is not None:  # unless deleted since it was listed
                yield record
        after = pks[-1]


async def _session_pks(conn: "Conn", *, where: str, params: tuple[object, ...]) -> list[int]:
    """The pks of the next EXPORT_BATCH sessions after pk params[0]."""
    rows = await conn.fetch(
        f"SELECT s.pk FROM sessions s WHERE s.pk > $1 AND {where} ORDER BY s.pk LIMIT {EXPORT_BATCH}", *params
    )
    return [int(row["pk"]) for row in rows]


async def _record(conn: "Conn", *, where: str, params: tuple[object, ...]) -> SessionRecord | None:
    """The session of pk params[0], whole, if it still is one the export reads."""
    row = await conn.fetchrow(
        f"SELECT {COLUMNS}, u.user_id FROM sessions s JOIN users u ON u.pk = s.user_pk WHERE s.pk = $1 AND {where}",
        *params,
    )
    if row is None:
        return None
    session = row_to_session(row, row["user_id"])
    return SessionRecord(session=session, runs=await _runs(conn, row["pk"], session.session_id, 0, with_bytes=True))


def _where(scope: ExportFilter) -> tuple[str, list[object]]:
    """The condition on `sessions s` an export reads (its parameters from $2 on), and its parameters."""
    clauses = ["TRUE"]
    params: list[object] = []
    if scope.user_id is not None:
        params.append(scope.user_id)
        clauses.append(f"s.user_pk = (SELECT pk FROM users WHERE user_id = ${len(params) + 1})")
    if scope.session_ids is not None:
        params.append(scope.session_ids)
        clauses.append(f"s.session_id = ANY(${len(params) + 1}::text[])")
    return " AND ".join(clauses), params


async def session_record(
    conn: "Conn", session: OwnedSession, user_id: str, last_runs: int | None, *, with_bytes: bool
) -> SessionRecord:
    """The user's session as a record, with every run or only its last `last_runs`, read inside the
    caller's (read-only, repeatable read) transaction; its attachments with their bytes only if `with_bytes`."""
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM sessions s WHERE s.pk = $1", session.session_pk)
    assert row is not None  # found in this transaction, whose snapshot keeps it
    first_run_pk = await _first_run_pk(conn, session.session_pk, last_runs)
    runs = (
        []
        if first_run_pk is None
        else await _runs(conn, session.session_pk, session.session_id, first_run_pk, with_bytes=with_bytes)
    )
    return SessionRecord(session=row_to_session(row, user_id), runs=runs)


async def _first_run_pk(conn: "Conn", session_pk: int, last_runs: int | None) -> int | None:
    """The pk from which the last `last_runs` runs start (0: every run; None: no run at all)."""
    if last_runs is None:
        return 0
    if last_runs == 0:
        return None
    first = await conn.fetchval(
        "SELECT pk FROM runs WHERE session_pk = $1 ORDER BY pk DESC LIMIT 1 OFFSET $2", session_pk, last_runs - 1
    )
    return 0 if first is None else int(first)


async def _runs(
    conn: "Conn", session_pk: int, session_id: str, first_run_pk: int, *, with_bytes: bool
) -> list[RunRecord]:
    """The session's runs from pk `first_run_pk` on, oldest first, with their messages, tool calls and
    attachments (with their bytes only if `with_bytes`)."""
    rows = await conn.fetch(
        "SELECT * FROM runs WHERE session_pk = $1 AND pk >= $2 ORDER BY pk", session_pk, first_run_pk
    )
    messages = await conn.fetch(
        "SELECT run_pk, role, content, blocks, is_tool FROM messages WHERE session_pk = $1 AND run_pk >= $2 "
        "ORDER BY run_pk, pk",
        session_pk,
        first_run_pk,
    )
    calls = await conn.fetch(
        "SELECT t.* FROM runs r JOIN tool_calls t ON t.run_pk = r.pk WHERE r.session_pk = $1 AND r.pk >= $2 "
        "ORDER BY t.pk",
        session_pk,
        first_run_pk,
    )
    by_run: dict[int, list[RecordedMessage]] = {}
    for m in messages:
        by_run.setdefault(m["run_pk"], []).append(
            RecordedMessage(
                role=m["role"],
                content=from_db(m["content"]),
                blocks=json.loads(m["blocks"]) if m["blocks"] else None,
                is_tool=m["is_tool"],
            )
        )
    run_ids = {row["pk"]: row["run_id"] for row in rows}
    calls_by_run: dict[int, list[ToolCall]] = {}
    for call in calls:
        calls_by_run.setdefault(call["run_pk"], []).append(row_to_tool_call(call, run_ids[call["run_pk"]]))
    media = await postgres_attachments.records(conn, session_pk, session_id, first_run_pk, with_bytes=with_bytes)
    return [
        RunRecord(
            **dict(row_to_run(row, session_id, calls_by_run.get(row["pk"], [])))
            | {"attachments": media.get(row["pk"], [])},
            messages=by_run.get(row["pk"], []),
            resume=json.loads(row["resume"]) if row["resume"] is not None else None,
        )
        for row in rows
    ]


async def counts(db: Database) -> StoreCounts:
    async def body(conn: "Conn") -> StoreCounts:
        row = await conn.fetchrow(
            "SELECT (SELECT count(DISTINCT user_pk) FROM sessions) AS users, "
            "(SELECT count(*) FROM sessions) AS sessions, "
            "(SELECT count(*) FROM runs) AS runs, (SELECT count(*) FROM messages) AS messages, "
            "(SELECT count(*) FROM tool_calls) AS tool_calls"
        )
        assert row is not None
        return StoreCounts(**dict(row))

    return await db.run(body, write=False)
