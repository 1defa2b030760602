"""Paused runs on PostgreSQL: claiming one for its continuation, cancelling one, finishing a continued one.

As sqlite_paused.py (whose PausedRun and refusals these share): the run is found among its owner's
sessions only, and locked (FOR UPDATE) while it is checked and claimed or cancelled, so of two
continuations of one run the second waits for the first to commit and then finds it running.
"""

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from . import postgres_runs as runs
from . import postgres_session_table as sessions
from .models import Run
from .postgres_session_table import OwnedSession
from .postgres_values import now
from .sqlite_paused import (
    CANCELLED_PAUSED,
    PausedRun,
    check_answers,
    delta_tokens,
    not_paused,
    run_not_found,
    summary_before,
    unclaims,
)
from .sqlite_rows import PreparedRun

if TYPE_CHECKING:
    from .postgres_schema import Conn


async def _locked(conn: "Conn", user_pk: int | None, run_id: str) -> asyncpg.Record:
    """The user's run `run_id` (a paused one first, should two sessions hold that id), locked until the
    transaction ends: its pk, status, session id and session pk."""
    row = None
    if user_pk is not None:
        row = await conn.fetchrow(
            "SELECT r.pk, r.status, s.session_id, s.pk AS session_pk FROM runs r "
            "JOIN sessions s ON s.pk = r.session_pk WHERE r.run_id = $1 AND s.user_pk = $2 "
            "ORDER BY r.status = 'paused' DESC, r.pk DESC LIMIT 1 FOR UPDATE OF r",
            run_id,
            user_pk,
        )
    if row is None:
        raise run_not_found(run_id)
    if row["status"] != "paused":
        raise not_paused(run_id, row["status"])
    return row


async def claim(
    conn: "Conn", user_pk: int | None, run_id: str, tool_call_ids: Sequence[str], lease_s: float
) -> PausedRun:
    """The user's paused run `run_id`, now `running` with a lease on the database's clock; its session's
    `updated_at` now, so a delete conditional on an earlier read of the session (prune) is refused."""
    row = await _locked(conn, user_pk, run_id)
    run = await runs.load_run(conn, row["pk"], row["session_id"])
    check_answers(run_id, run.requirements, tool_call_ids)
    resume = await conn.fetchval(
        "UPDATE runs SET status = 'running', lease_expires_at = now() + make_interval(secs => $2) "
        "WHERE pk = $1 RETURNING resume",
        row["pk"],
        lease_s,
    )
    await sessions.add_runs(conn, row["session_pk"], 0, (0, 0, 0, 0), now())  # a prune listing it must not delete it
    return PausedRun(run.model_copy(update={"status": "running"}), json.loads(resume) if resume else None)


async def cancel(conn: "Conn", user_pk: int | None, run_id: str, moment: datetime) -> Run:
    """The user's paused run `run_id` ended `cancelled`, waiting for nothing any more."""
    row = await _locked(conn, user_pk, run_id)
    await conn.execute(
        "UPDATE runs SET status = 'cancelled', error = $2, requirements = NULL, resume = NULL WHERE pk = $1",
        row["pk"],
        CANCELLED_PAUSED,
    )
    await sessions.add_runs(conn, row["session_pk"], 0, (0, 0, 0, 0), moment)
    return await runs.load_run(conn, row["pk"], row["session_id"])


async def finish_continued(conn: "Conn", session: OwnedSession, run: PreparedRun, moment: datetime) -> tuple[Run, bool]:
    """The claimed run completed in place by its continuation: its outcome replaced, its new messages
    and tool calls added after its own; False (nothing written) when it is no longer `running`. A
    continuation that produced nothing (`unclaims`) only turns it back `paused`, and a completed one
    lowers a summary covering it, as sqlite_paused.py does."""
    row = await conn.fetchrow(
        "SELECT pk, metrics FROM runs WHERE session_pk = $1 AND run_id = $2 FOR UPDATE",
        session.session_pk,
        run.run_id,
    )
    if row is None:
        raise run_not_found(run.run_id)
    if unclaims(run):
        released = await conn.fetchval(
            "UPDATE runs SET status = 'paused', lease_expires_at = NULL WHERE pk = $1 AND status = 'running' "
            "RETURNING 1",
            row["pk"],
        )
        return await runs.load_run(conn, row["pk"], session.session_id), released is not None
    _, stored = await runs.append(conn, session, replace(run, tokens=delta_tokens(run, row["metrics"])), True, moment)
    finished = await runs.load_run(conn, row["pk"], session.session_id)
    if stored and finished.status == "completed":
        summary = await conn.fetchval("SELECT summary FROM sessions WHERE pk = $1", session.session_pk)
        position = await conn.fetchval(
            "SELECT count(*) FROM runs WHERE session_pk = $1 AND pk <= $2", session.session_pk, row["pk"]
        )
        if (lowered := summary_before(summary, position)) is not None:
            await conn.execute("UPDATE sessions SET summary = $2 WHERE pk = $1", session.session_pk, lowered)
    return finished, stored
