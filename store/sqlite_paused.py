"""Paused runs on SQLite: claiming one for its continuation, cancelling one, finishing a continued one.

A paused run is found by its run_id among its owner's sessions only (another user's reads as a
missing one). Claiming checks that the client's results answer exactly what the run waits for, then
turns it `running` with a lease in the same write transaction, as `begin_run` does, so of two
continuations of one run exactly one goes on: the other finds it running. What both backends share
(PausedRun and the refusals) lives here too; postgres_paused.py does the same on PostgreSQL.
"""

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import sqlite_runs as runs
from . import sqlite_session_table as sessions
from .clock import utc_now
from .errors import InvalidInput
from .models import Requirement, Run
from .process_owner import current_owner
from .sqlite_identity import OwnedSession
from .sqlite_rows import PreparedRun
from .sqlite_runs import lease_end, load_run

CANCELLED_PAUSED = "Cancelled with cancel_run while it waited for client tool results."
_NAMED_IDS = 5


@dataclass(frozen=True)
class PausedRun:
    """A paused run claimed for its continuation (now `running`, its requirements as they were), and
    what its turn stored for continuing it."""

    run: Run
    resume: dict[str, Any] | None


def run_not_found(run_id: str) -> InvalidInput:
    return InvalidInput(
        f"No run {run_id!r} for this user; a paused run's id is in its session's paused_run_ids "
        "(get_session or list_sessions)."
    )


def not_paused(run_id: str, status: str) -> InvalidInput:
    if status == "running":
        return InvalidInput(
            f"Run {run_id!r} is not paused (it is being continued or is still running); "
            "read its outcome with get_session once it ends."
        )
    return InvalidInput(
        f"Run {run_id!r} is not paused (it is {status}); only a paused run can be continued or cancelled."
    )


def check_answers(run_id: str, requirements: list[Requirement], tool_call_ids: Sequence[str]) -> None:
    """InvalidInput unless `tool_call_ids` names each requirement of the run exactly once."""
    expected = [requirement.tool_call_id for requirement in requirements]
    seen: set[str] = set()
    for tool_call_id in tool_call_ids:
        if tool_call_id in seen:
            raise InvalidInput(
                f"tool_results answers tool_call_id {tool_call_id!r} twice; send one result per tool_call_id."
            )
        seen.add(tool_call_id)
        if tool_call_id not in expected:
            raise InvalidInput(
                f"Run {run_id!r} does not wait for tool_call_id {tool_call_id!r}; answer its requirements "
                f"({_named(expected)})."
            )
    missing = [tool_call_id for tool_call_id in expected if tool_call_id not in seen]
    if missing:
        raise InvalidInput(
            f"tool_results lacks a result for {_named(missing)} of run {run_id!r}; answer every requirement at once."
        )


def _named(ids: list[str]) -> str:
    named = ", ".join(repr(tool_call_id) for tool_call_id in ids[:_NAMED_IDS])
    return named + (f" and {len(ids) - _NAMED_IDS} more" if len(ids) > _NAMED_IDS else "")


def delta_tokens(finished: PreparedRun, earlier_metrics: str) -> tuple[int, int, int, int]:
    """What a continued run adds to its session's token totals: its tokens now less those it had."""
    earlier = json.loads(earlier_metrics) if earlier_metrics else {}
    names = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    counted = [earlier.get(name) or 0 for name in names]
    added = [max(0, now - before) for now, before in zip(finished.tokens, counted, strict=True)]
    return (added[0], added[1], added[2], added[3])


def _find(raw: sqlite3.Connection, user_pk: int | None, run_id: str) -> tuple[int, str, str, int]:
    """The user's run `run_id` (a paused one first, should two sessions hold that id): its pk, status,
    session id and session pk."""
    row = None
    if user_pk is not None:
        row = raw.execute(
            "SELECT r.pk, r.status, s.session_id, s.pk AS session_pk FROM runs r "
            "JOIN sessions s ON s.pk = r.session_pk WHERE r.run_id = ? AND s.user_pk = ? "
            "ORDER BY r.status = 'paused' DESC, r.pk DESC LIMIT 1",
            (run_id, user_pk),
        ).fetchone()
    if row is None:
        raise run_not_found(run_id)
    return row["pk"], row["status"], row["session_id"], row["session_pk"]


def claim(
    raw: sqlite3.Connection, user_pk: int | None, run_id: str, tool_call_ids: Sequence[str], lease_s: float
) -> PausedRun:
    """The user's paused run `run_id`, now `running` with a lease owned by this process; its session's
    `updated_at` now, so a delete conditional on an earlier read of the session (prune) is refused."""
    run_pk, status, session_id, session_pk = _find(raw, user_pk, run_id)
    if status != "paused":
        raise not_paused(run_id, status)
    run = load_run(raw, run_pk, session_id)
    check_answers(run_id, run.requirements, tool_call_ids)
    resume = raw.execute("SELECT resume FROM runs WHERE pk = ?", (run_pk,)).fetchone()[0]
    raw.execute(
        "UPDATE runs SET status = 'running', owner = ?, lease_expires_at = ? WHERE pk = ? AND status = 'paused'",
        (current_owner(), lease_end(lease_s), run_pk),
    )
    sessions.add_runs(raw, session_pk, 0, (0, 0, 0, 0), utc_now())  # changed: a prune listing it must not delete it
    return PausedRun(run.model_copy(update={"status": "running"}), json.loads(resume) if resume else None)


def cancel(raw: sqlite3.Connection, user_pk: int | None, run_id: str, now: str) -> Run:
    """The user's paused run `run_id` ended `cancelled`, waiting for nothing any more."""
    run_pk, status, session_id, session_pk = _find(raw, user_pk, run_id)
    if status != "paused":
        raise not_paused(run_id, status)
    raw.execute(
        "UPDATE runs SET status = 'cancelled', error = ?, requirements = NULL, resume = NULL WHERE pk = ?",
        (CANCELLED_PAUSED, run_pk),
    )
    sessions.add_runs(raw, session_pk, 0, (0, 0, 0, 0), now)
    return load_run(raw, run_pk, session_id)


def unclaims(run: PreparedRun) -> bool:
    """A continuation's record saying it produced nothing: `paused` without a resume state (a run that
    pauses again always has one), so its run goes back to `paused` as it was."""
    return run.status == "paused" and run.resume is None


def finish_continued(raw: sqlite3.Connection, session: OwnedSession, run: PreparedRun, now: str) -> tuple[Run, bool]:
    """The claimed run completed in place by its continuation: its outcome replaced, its new messages
    and tool calls added after its own; False (nothing written) when it is no longer `running`. A
    continuation that produced nothing (`unclaims`) only turns it back `paused`, its requirements and
    resume state as they were. Once it completes, a summary covering it (made while it was paused) is
    lowered to just before it, so the next summary takes it."""
    row = raw.execute(
        "SELECT pk, metrics FROM runs WHERE session_pk = ? AND run_id = ?", (session.session_pk, run.run_id)
    ).fetchone()
    if row is None:
        raise run_not_found(run.run_id)
    if unclaims(run):
        released = raw.execute(
            "UPDATE runs SET status = 'paused', owner = NULL, lease_expires_at = NULL "
            "WHERE pk = ? AND status = 'running'",
            (row["pk"],),
        ).rowcount
        return load_run(raw, row["pk"], session.session_id), released > 0
    finished, stored = runs.append(raw, session, replace(run, tokens=delta_tokens(run, row["metrics"])), True, now)
    if stored and finished.status == "completed":
        position = raw.execute(
            "SELECT count(*) FROM runs WHERE session_pk = ? AND pk <= ?", (session.session_pk, row["pk"])
        ).fetchone()[0]
        summary = raw.execute("SELECT summary FROM sessions WHERE pk = ?", (session.session_pk,)).fetchone()[0]
        if (lowered := summary_before(summary, position)) is not None:
            raw.execute("UPDATE sessions SET summary = ? WHERE pk = ?", (lowered, session.session_pk))
    return finished, stored


def summary_before(summary: str | None, position: int) -> str | None:
    """A session's summary (JSON text) that covers the run at `position`, a paused run that has now
    completed, lowered to cover only the runs before it, so the next summary takes it (with those after
    it again); None when there is no summary or it does not cover that run."""
    if summary is None:
        return None
    stored = json.loads(summary)
    if int(stored["run_count"]) < position:
        return None
    return json.dumps({**stored, "run_count": position - 1}, ensure_ascii=False)
