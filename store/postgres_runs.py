"""Writing runs on PostgreSQL: a whole recorded or finished run, a run begun before its turn with its
lease, many runs imported at once, and the runs whose lease expired.

A run is unique by (session, run_id): two replicas retrying one record_run at once both insert,
the unique index makes the second wait for the first and then find its row (ON CONFLICT DO
NOTHING), so a run is stored once without a read-then-write race. Messages and tool calls go in
with one statement each (arrays unnested in order), their search vectors computed by PostgreSQL in
the same statement (postgres_search.VECTOR).
"""

import json
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from . import postgres_attachments as attachments
from . import postgres_session_table as sessions
from .errors import InvalidInput
from .models import Requirement, Run, StoredRunMetrics, ToolCall, WorkflowStep
from .postgres_search import VECTOR
from .postgres_session_table import OwnedSession
from .postgres_values import from_db, iso, optional_from_db, optional_to_db, to_db
from .sqlite_rows import RUN_EXTRA_COLUMNS, PreparedRun, stored_list
from .sqlite_runs import unknown_parent

if TYPE_CHECKING:
    from .postgres_schema import Conn

INTERRUPTED = "The server stopped before this run finished."
_EXTRA = ", ".join(RUN_EXTRA_COLUMNS)
_SET_EXTRA = ", ".join(f"{column} = ${index}" for index, column in enumerate(RUN_EXTRA_COLUMNS, 6))
RUNNING_ELSEWHERE = "run_id {!r} belongs to a run still in progress in this session; use another run_id."

_INSERT_MESSAGES = (
    "INSERT INTO messages (user_pk, session_pk, run_pk, role, content, blocks, is_tool, search) "
    "SELECT $1, $2, $3, m.role, m.content, m.blocks, m.is_tool, "
    f"CASE WHEN m.searchable THEN {VECTOR.format('m.content')} ELSE ''::tsvector END "
    "FROM unnest($4::text[], $5::text[], $6::text[], $7::boolean[], $8::boolean[]) "
    "WITH ORDINALITY AS m(role, content, blocks, is_tool, searchable, n) "
    "ORDER BY m.n"
)
_INSERT_TOOL_CALLS = (
    "INSERT INTO tool_calls (user_pk, session_pk, run_pk, tool_call_id, tool_name, arguments, result, is_error, "
    "duration_ms, created_at, search) "
    "SELECT $1, $2, $3, t.id, t.name, t.arguments, t.result, t.is_error, t.duration_ms, t.created_at, "
    f"{VECTOR.format('t.text')} "
    "FROM unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::boolean[], $9::float8[], $10::timestamptz[], "
    "$11::text[]) WITH ORDINALITY AS t(id, name, arguments, result, is_error, duration_ms, created_at, text, n) "
    "ORDER BY t.n"
)


async def append(
    conn: "Conn", session: OwnedSession, run: PreparedRun, finishing: bool, moment: datetime
) -> tuple[Run, bool]:
    """Store a whole run, or complete in place the `running` run it finishes; a finished run with its
    run_id is returned as it is, with False."""
    if finishing:
        existing = await conn.fetchrow(
            "SELECT pk, status, created_at FROM runs WHERE session_pk = $1 AND run_id = $2 FOR UPDATE",
            session.session_pk,
            run.run_id,
        )
        if existing is not None and existing["status"] == "running":
            await conn.execute(
                "UPDATE runs SET status = $2, content = $3, metrics = $4, error = $5, lease_expires_at = NULL, "
                f"{_SET_EXTRA} WHERE pk = $1",
                existing["pk"],
                run.status,
                optional_to_db(run.content),
                run.metrics,
                optional_to_db(run.error),
                *run.run_columns,
            )
            await write_rows(conn, session, existing["pk"], run, moment)
            await sessions.add_runs(conn, session.session_pk, 0, run.tokens, moment)
            return prepared_run(run, session.session_id, existing["created_at"], moment), True
        if existing is not None:
            return await load_run(conn, existing["pk"], session.session_id), False
    if run.parent_run_id is not None and not await conn.fetchval(
        "SELECT 1 FROM runs WHERE session_pk = $1 AND run_id = $2", session.session_pk, run.parent_run_id
    ):
        raise InvalidInput(unknown_parent(run.parent_run_id, session.session_id))
    run_pk = await insert_run(conn, session.session_pk, run, moment)
    if run_pk is None:
        existing = await conn.fetchrow(
            "SELECT pk, status FROM runs WHERE session_pk = $1 AND run_id = $2", session.session_pk, run.run_id
        )
        assert existing is not None
        if existing["status"] == "running":
            raise InvalidInput(RUNNING_ELSEWHERE.format(run.run_id))
        return await load_run(conn, existing["pk"], session.session_id), False
    await write_rows(conn, session, run_pk, run, moment)
    await sessions.add_runs(conn, session.session_pk, 1, run.tokens, moment)
    return prepared_run(run, session.session_id, moment, moment), True


async def insert_run(conn: "Conn", session_pk: int, run: PreparedRun, created_at: datetime) -> int | None:
    """The new run row's pk; None when the session already holds a run with this run_id (written by
    another call, which this one waited for if it was still writing)."""
    run_pk = await conn.fetchval(
        f"INSERT INTO runs (session_pk, run_id, status, input, content, metrics, error, created_at, {_EXTRA}) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
        "ON CONFLICT (session_pk, run_id) DO NOTHING RETURNING pk",
        session_pk,
        run.run_id,
        run.status,
        to_db(run.input),
        optional_to_db(run.content),
        run.metrics,
        optional_to_db(run.error),
        created_at,
        *run.run_columns,
    )
    return None if run_pk is None else int(run_pk)


async def begin(conn: "Conn", session: OwnedSession, run_id: str, input: str, lease_s: float, moment: datetime) -> Run:
    """A `running` run whose lease (on the database's clock, shared by every replica) lasts `lease_s`."""
    run_pk = await conn.fetchval(
        "INSERT INTO runs (session_pk, run_id, status, input, created_at, lease_expires_at) "
        "VALUES ($1, $2, 'running', $3, $4, now() + make_interval(secs => $5)) "
        "ON CONFLICT (session_pk, run_id) DO NOTHING RETURNING pk",
        session.session_pk,
        run_id,
        to_db(input),
        moment,
        lease_s,
    )
    if run_pk is None:
        raise InvalidInput(f"run_id {run_id!r} already exists in this session; use a new run_id.")
    await sessions.add_runs(conn, session.session_pk, 1, (0, 0, 0, 0), moment)
    return Run(
        run_id=run_id,
        session_id=session.session_id,
        status="running",
        input=input,
        content=None,
        tool_calls=[],
        metrics=StoredRunMetrics(),
        created_at=iso(moment),
    )


async def renew(conn: "Conn", session_pk: int, run_id: str, lease_s: float) -> bool:
    updated = await conn.fetchval(
        "UPDATE runs SET lease_expires_at = now() + make_interval(secs => $3) "
        "WHERE session_pk = $1 AND run_id = $2 AND status = 'running' RETURNING 1",
        session_pk,
        run_id,
        lease_s,
    )
    return updated is not None


async def mark_expired(conn: "Conn") -> int:
    """Mark `error` the running runs whose lease has expired (or that never had one); how many."""
    marked = await conn.fetch(
        "UPDATE runs SET status = 'error', error = $1, lease_expires_at = NULL "
        "WHERE status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < now()) RETURNING 1",
        INTERRUPTED,
    )
    return len(marked)


async def write_rows(
    conn: "Conn",
    session: OwnedSession,
    run_pk: int,
    run: PreparedRun,
    moment: datetime,
    call_times: list[datetime] | None = None,
) -> None:
    """The run's messages and tool calls (created at `moment`, or each at its `call_times`), with their
    search vectors, and its attachments."""
    if run.messages:
        await conn.execute(
            _INSERT_MESSAGES,
            session.user_pk,
            session.session_pk,
            run_pk,
            [m.role for m in run.messages],
            [to_db(m.content) for m in run.messages],
            [m.blocks for m in run.messages],
            [m.is_tool for m in run.messages],
            [m.searchable for m in run.messages],
        )
    if run.tool_calls:
        calls = run.tool_calls
        await conn.execute(
            _INSERT_TOOL_CALLS,
            session.user_pk,
            session.session_pk,
            run_pk,
            [to_db(c.tool_call_id) for c in calls],
            [to_db(c.tool_name) for c in calls],
            [c.arguments for c in calls],
            [c.result for c in calls],
            [c.is_error for c in calls],
            [c.duration_ms for c in calls],
            call_times or [moment] * len(calls),
            [to_db(c.search_text) for c in calls],
        )
    await attachments.write(conn, session.session_pk, run_pk, run.attachments, moment)


def prepared_run(run: PreparedRun, session_id: str, created_at: datetime, calls_at: datetime) -> Run:
    """The Run a write just stored, built from what was written rather than read back."""
    calls_created = iso(calls_at)
    return Run(
        run_id=run.run_id,
        session_id=session_id,
        status=run.status,  # type: ignore[arg-type]
        input=run.input,
        content=run.content,
        tool_calls=[
            ToolCall(
                tool_call_id=c.tool_call_id,
                run_id=run.run_id,
                tool_name=c.tool_name,
                arguments=json.loads(c.arguments),
                result=json.loads(c.result),
                is_error=c.is_error,
                created_at=calls_created,
                duration_ms=c.duration_ms,
            )
            for c in run.tool_calls
        ],
        metrics=StoredRunMetrics.model_validate_json(run.metrics),
        created_at=iso(created_at),
        error=run.error,
        parent_run_id=run.parent_run_id,
        agent_id=run.agent_id,
        steps=stored_list(WorkflowStep, run.steps),
        requirements=stored_list(Requirement, run.requirements),
        attachments=[attachment.ref(session_id) for attachment in run.attachments],
    )


async def load_run(conn: "Conn", run_pk: int, session_id: str) -> Run:
    row = await conn.fetchrow("SELECT * FROM runs WHERE pk = $1", run_pk)
    assert row is not None  # found in this transaction, which keeps it
    calls = await conn.fetch("SELECT * FROM tool_calls WHERE run_pk = $1 ORDER BY pk", run_pk)
    run = row_to_run(row, session_id, [row_to_tool_call(call, row["run_id"]) for call in calls])
    run.attachments = await attachments.run_refs(conn, run_pk, session_id)
    return run


def row_to_run(row: asyncpg.Record, session_id: str, tool_calls: list[ToolCall]) -> Run:
    return Run(
        run_id=row["run_id"],
        session_id=session_id,
        status=row["status"],
        input=from_db(row["input"]),
        content=optional_from_db(row["content"]),
        tool_calls=tool_calls,
        metrics=StoredRunMetrics.model_validate_json(row["metrics"]),
        created_at=iso(row["created_at"]),
        error=optional_from_db(row["error"]),
        parent_run_id=row["parent_run_id"],
        agent_id=row["agent_id"],
        steps=stored_list(WorkflowStep, row["steps"]),
        requirements=stored_list(Requirement, row["requirements"]),
    )


def row_to_tool_call(row: asyncpg.Record, run_id: str) -> ToolCall:
    return ToolCall(
        tool_call_id=from_db(row["tool_call_id"]),
        run_id=run_id,
        tool_name=from_db(row["tool_name"]),
        arguments=json.loads(row["arguments"]),
        result=json.loads(row["result"]),
        is_error=row["is_error"],
        created_at=iso(row["created_at"]),
        duration_ms=row["duration_ms"],
    )
