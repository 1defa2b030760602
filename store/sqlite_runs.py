"""Writing runs: a whole recorded or finished run, a run begun before its turn and its lease, many runs
imported at once, and the runs a crashed process left `running` or whose lease expired.

Each function runs inside the caller's write transaction, for a user and session already
resolved through sqlite_identity.py. A run's messages and tool calls enter the search index in the
same transaction as their rows (sqlite_search_index.py).
"""

import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from . import sqlite_attachments as attachments
from . import sqlite_search_index as search_index
from . import sqlite_session_table as sessions
from .clock import utc_now
from .errors import InvalidInput
from .models import Run
from .process_owner import current_owner, owner_is_gone
from .sqlite_identity import OwnedSession, UserDirectory
from .sqlite_rows import RUN_EXTRA_COLUMNS, PreparedRun, row_to_run, row_to_tool_call

_SET_EXTRA = ", ".join(f"{column} = ?" for column in RUN_EXTRA_COLUMNS)

RunImport = tuple[str, str, PreparedRun]
"""A run to import: (user_id, session_id, the run checked and serialized)."""


def append(
    raw: sqlite3.Connection, session: OwnedSession, run: PreparedRun, finishing: bool, now: str
) -> tuple[Run, bool]:
    """Store a whole run, or complete in place the `running` run it finishes; a finished run with its
    run_id is returned as it is, with False."""
    existing = raw.execute(
        "SELECT pk, status FROM runs WHERE session_pk = ? AND run_id = ?", (session.session_pk, run.run_id)
    ).fetchone()
    if existing is not None and existing["status"] == "running" and not finishing:
        raise InvalidInput(
            f"run_id {run.run_id!r} belongs to a run still in progress in this session; use another run_id."
        )
    if existing is not None and existing["status"] != "running":
        return load_run(raw, existing["pk"], session.session_id), False
    if (
        run.parent_run_id is not None
        and not raw.execute(
            "SELECT 1 FROM runs WHERE session_pk = ? AND run_id = ?", (session.session_pk, run.parent_run_id)
        ).fetchone()
    ):
        raise InvalidInput(unknown_parent(run.parent_run_id, session.session_id))
    run_pk = write_run(raw, session.user_pk, session.session_pk, run, existing["pk"] if existing else None, now)
    sessions.add_runs(raw, session.session_pk, 0 if existing else 1, run.tokens, now)
    return load_run(raw, run_pk, session.session_id), True


def begin(raw: sqlite3.Connection, session: OwnedSession, run_id: str, input: str, lease_s: float) -> Run:
    """A `running` run owned by this process (so that the next start can tell if it was interrupted),
    holding a lease of `lease_s` from now."""
    if raw.execute("SELECT 1 FROM runs WHERE session_pk = ? AND run_id = ?", (session.session_pk, run_id)).fetchone():
        raise InvalidInput(f"run_id {run_id!r} already exists in this session; use a new run_id.")
    now = utc_now()
    run_pk = raw.execute(
        "INSERT INTO runs (session_pk, run_id, status, input, owner, created_at, lease_expires_at) "
        "VALUES (?, ?, 'running', ?, ?, ?, ?)",
        (session.session_pk, run_id, input, current_owner(), now, lease_end(lease_s)),
    ).lastrowid
    sessions.add_runs(raw, session.session_pk, 1, (0, 0, 0, 0), now)
    assert run_pk is not None
    return load_run(raw, run_pk, session.session_id)


def renew(raw: sqlite3.Connection, session_pk: int, run_id: str, lease_s: float) -> bool:
    """Extend the lease of the session's `running` run `run_id` to `lease_s` from now; False when no
    such run is running (finished, marked `error`, or unknown)."""
    return (
        raw.execute(
            "UPDATE runs SET lease_expires_at = ? WHERE session_pk = ? AND run_id = ? AND status = 'running'",
            (lease_end(lease_s), session_pk, run_id),
        ).rowcount
        > 0
    )


def lease_end(lease_s: float) -> str:
    """`lease_s` from now, written as store/clock.py's utc_now writes a moment (so text order is time order)."""
    return (datetime.now(UTC) + timedelta(seconds=lease_s)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Added:
    """The runs an import adds to one session, counted into its totals once at the end."""

    runs: int = 0
    tokens: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    last: str = ""

    def count(self, run: PreparedRun, now: str) -> None:
        self.runs += 1
        self.tokens = [total + tokens for total, tokens in zip(self.tokens, run.tokens, strict=True)]
        self.last = now


def import_batch(raw: sqlite3.Connection, users: UserDirectory, batch: list[RunImport]) -> int:
    """Append new runs of any users and sessions, starting sessions as needed; a run whose run_id its
    session already holds is left as it is. Returns how many runs were written."""
    # Users met in this batch. One not met yet was not inserted by this transaction, so `users` may
    # cache its pk when it finds it (see UserDirectory.created_user_pk).
    user_pks: dict[str, int] = {}
    session_pks: dict[tuple[str, str], int] = {}
    added: dict[int, _Added] = {}
    for user_id, session_id, run in batch:
        now = utc_now()
        if user_id not in user_pks:
            user_pks[user_id] = users.created_user_pk(raw, user_id)
        if (user_id, session_id) not in session_pks:
            session_pks[user_id, session_id], _ = sessions.start(raw, user_pks[user_id], session_id, now)
        session_pk = session_pks[user_id, session_id]
        if raw.execute("SELECT 1 FROM runs WHERE session_pk = ? AND run_id = ?", (session_pk, run.run_id)).fetchone():
            continue
        write_run(raw, user_pks[user_id], session_pk, run, None, now)
        added.setdefault(session_pk, _Added()).count(run, now)
    for session_pk, runs in added.items():
        sessions.add_runs(raw, session_pk, runs.runs, tuple(runs.tokens), runs.last)
    return sum(runs.runs for runs in added.values())


def write_run(
    raw: sqlite3.Connection, user_pk: int, session_pk: int, run: PreparedRun, run_pk: int | None, now: str
) -> int:
    """Insert the run (or complete the `running` row `run_pk`) with its messages and tool calls."""
    if run_pk is None:
        run_pk = raw.execute(
            "INSERT INTO runs (session_pk, run_id, status, input, content, metrics, error, created_at, "
            f"{', '.join(RUN_EXTRA_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (session_pk, run.run_id, run.status, run.input, run.content, run.metrics, run.error, now, *run.run_columns),
        ).lastrowid
        assert run_pk is not None
    else:
        raw.execute(
            "UPDATE runs SET status = ?, content = ?, metrics = ?, error = ?, owner = NULL, lease_expires_at = NULL, "
            f"{_SET_EXTRA} WHERE pk = ?",
            (run.status, run.content, run.metrics, run.error, *run.run_columns, run_pk),
        )
    for message in run.messages:
        message_pk = raw.execute(
            "INSERT INTO messages (session_pk, run_pk, role, content, blocks, is_tool) VALUES (?, ?, ?, ?, ?, ?)",
            (session_pk, run_pk, message.role, message.content, message.blocks, message.is_tool),
        ).lastrowid
        assert message_pk is not None
        search_index.add_message(raw, message_pk, user_pk, session_pk, message.content, message.searchable)
    for call in run.tool_calls:
        call_pk = raw.execute(
            "INSERT INTO tool_calls (session_pk, run_pk, tool_call_id, tool_name, arguments, result, is_error, "
            "duration_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session_pk,
                run_pk,
                call.tool_call_id,
                call.tool_name,
                call.arguments,
                call.result,
                call.is_error,
                call.duration_ms,
                now,
            ),
        ).lastrowid
        assert call_pk is not None
        search_index.add_tool_call(raw, call_pk, user_pk, session_pk, call.search_text)
    attachments.write(raw, session_pk, run_pk, run.attachments, now)
    return run_pk


def load_run(raw: sqlite3.Connection, run_pk: int, session_id: str) -> Run:
    row = raw.execute("SELECT * FROM runs WHERE pk = ?", (run_pk,)).fetchone()
    calls = raw.execute(
        "SELECT t.*, ? AS run_id FROM tool_calls t WHERE t.run_pk = ? ORDER BY t.pk", (row["run_id"], run_pk)
    ).fetchall()
    run = row_to_run(row, session_id, [row_to_tool_call(call) for call in calls])
    run.attachments = attachments.run_refs(raw, run_pk, session_id)
    return run


def unknown_parent(parent_run_id: str, session_id: str) -> str:
    return (
        f"parent_run_id {parent_run_id!r} is not a run of session {session_id!r}; record the leader's run "
        "in this session first and name its run_id."
    )


INTERRUPTED = "The server stopped before this run finished."


def mark_interrupted(raw: sqlite3.Connection) -> int:
    """Mark `error` the runs left `running` by a process of this host that no longer runs, and those
    of any process whose lease has expired (their server stopped renewing it); how many."""
    owners = [row[0] for row in raw.execute("SELECT DISTINCT owner FROM runs WHERE status = 'running'")]
    marked = 0
    for owner in owners:
        if owner_is_gone(owner):
            marked += raw.execute(
                "UPDATE runs SET status = 'error', error = ?, lease_expires_at = NULL "
                "WHERE status = 'running' AND owner IS ?",
                (INTERRUPTED, owner),
            ).rowcount
    marked += raw.execute(
        "UPDATE runs SET status = 'error', error = ?, lease_expires_at = NULL "
        "WHERE status = 'running' AND lease_expires_at < ?",
        (INTERRUPTED, utc_now()),
    ).rowcount
    return marked
