"""The sessions table: a user's sessions started, read, listed and changed, and runs counted into them.

Each function runs inside the caller's transaction, for a user (and session) already resolved
through sqlite_identity.py, and so already checked to belong to the caller.
"""

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

from .clock import utc_now
from .cursor import CursorSealer
from .errors import InvalidInput
from .limits import MAX_SESSION_TOKENS, check_name, dump_json, same_json
from .models import AgentConfig, Session, SessionPage
from .pages import fill_page
from .protocol import Order, SortKey
from .run_inputs import SessionKind
from .sqlite_identity import find_session
from .sqlite_rows import PAUSED_RUN_IDS, row_to_session

_COLUMNS = (
    "s.pk, s.session_id, s.name, s.state, s.metadata, s.agent, s.summary, s.run_count, s.created_at, s.updated_at, "
    "s.input_tokens, s.output_tokens, s.cache_read_tokens, s.cache_write_tokens, "
    f"s.session_type, s.agent_id, s.team_id, s.workflow_id, {PAUSED_RUN_IDS}"
)
_ADD_TOKENS = ", ".join(
    f"{column} = min({column} + ?, {MAX_SESSION_TOKENS})"
    for column in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
)


@dataclass(frozen=True)
class NewSession:
    """A start_session call's fields, checked and serialized before its transaction."""

    name: str | None = None
    state_json: str = "{}"
    metadata_json: str = "{}"
    agent_json: str | None = None
    kind: SessionKind = field(default_factory=SessionKind)


EMPTY = NewSession()
"""The fields of a session a recorded run starts."""


def new_session(kind: SessionKind | None) -> NewSession:
    """The fields of a session a recorded run starts, of `kind` (checked) if given."""
    return EMPTY if kind is None else NewSession(kind=kind.checked())


def check_kind(session_id: str, stored_type: str, kind: SessionKind) -> None:
    """Refuse a call naming a session_type other than the existing session's."""
    if kind.session_type is not None and kind.session_type != stored_type:
        raise InvalidInput(
            f"Session {session_id!r} has session_type {stored_type!r}, not {kind.session_type!r}; "
            f"leave session_type out or pass {stored_type!r}."
        )


def start(
    raw: sqlite3.Connection, user_pk: int, session_id: str, now: str, new: NewSession = EMPTY
) -> tuple[int, bool]:
    """The pk of the user's session `session_id`, and whether it was created now (with `new`'s fields)."""
    session_pk = find_session(raw, user_pk, session_id)
    if session_pk is not None:
        if new.kind.session_type is not None:
            stored = raw.execute("SELECT session_type FROM sessions WHERE pk = ?", (session_pk,)).fetchone()[0]
            check_kind(session_id, stored, new.kind)
        return session_pk, False
    inserted = raw.execute(
        "INSERT INTO sessions (user_pk, session_id, name, state, metadata, agent, created_at, updated_at, "
        "session_type, agent_id, team_id, workflow_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (user_pk, session_id, new.name, new.state_json, new.metadata_json, new.agent_json, now, now, *new.kind.columns),
    ).lastrowid
    assert inserted is not None
    return inserted, True


def load(raw: sqlite3.Connection, session_pk: int, user_id: str) -> Session:
    row = raw.execute(f"SELECT {_COLUMNS} FROM sessions s WHERE s.pk = ?", (session_pk,)).fetchone()
    return row_to_session(row, user_id)


@dataclass(frozen=True)
class SessionQuery:
    """What list_sessions lists: the order and the name filter, checked before the transaction."""

    sort_by: SortKey
    order: Order
    name_contains: str | None
    kind: SessionKind = field(default_factory=SessionKind)
    """Only sessions of this type and these agent, team and workflow ids (the fields set)."""

    def __post_init__(self) -> None:
        if self.sort_by not in ("updated_at", "created_at") or self.order not in ("asc", "desc"):
            raise InvalidInput("sort_by must be updated_at or created_at, and order desc or asc.")
        self.kind.checked()

    @property
    def scope(self) -> tuple[str | None, ...]:
        """What a cursor of this listing is bound to, besides the user."""
        kind = self.kind
        filters = (kind.session_type, kind.agent_id, kind.team_id, kind.workflow_id)
        return (self.sort_by, self.order, self.name_contains or None, *filters)


def page(
    raw: sqlite3.Connection,
    sealer: CursorSealer,
    user_pk: int | None,
    user_id: str,
    query: SessionQuery,
    limit: int,
    cursor: str | None,
) -> SessionPage:
    """A page of the user's sessions; a bad cursor is refused even for a user with no sessions."""
    scope = ("sessions", user_pk, *query.scope)
    after = sealer.open(cursor, scope, (str, int)) if cursor else None
    if user_pk is None:
        return SessionPage(sessions=[], next_cursor=None, total=0)
    name_filter = ""
    params: list[Any] = []
    if query.name_contains:
        # instr on the bytes sees the whole text (LIKE stops at a NUL); lower() folds ASCII letters only.
        name_filter = " AND instr(CAST(lower(s.name) AS BLOB), CAST(lower(?) AS BLOB)) > 0"
        params.append(query.name_contains)
    for column, value in query.kind.filters:
        name_filter += f" AND s.{column} = ?"
        params.append(value)
    direction, compare = ("DESC", "<") if query.order == "desc" else ("ASC", ">")
    total = raw.execute(
        f"SELECT count(*) FROM sessions s WHERE s.user_pk = ?{name_filter}", (user_pk, *params)
    ).fetchone()[0]
    page_filter = f" AND (s.{query.sort_by}, s.pk) {compare} (?, ?)" if after else ""
    rows = raw.execute(
        f"SELECT {_COLUMNS} FROM sessions s WHERE s.user_pk = ?{name_filter}{page_filter} "
        f"ORDER BY s.{query.sort_by} {direction}, s.pk {direction} LIMIT ?",
        (user_pk, *params, *(after or ()), limit + 1),
    )
    with closing(rows):
        sessions, last = fill_page(_sessions(rows, user_id, query.sort_by), limit)
    next_cursor = sealer.seal(scope, *last) if last is not None else None
    return SessionPage(sessions=sessions, next_cursor=next_cursor, total=total)


def _sessions(rows: sqlite3.Cursor, user_id: str, sort_by: SortKey) -> Iterator[tuple[tuple[str, int], Session]]:
    for row in rows:
        yield (row[sort_by], row["pk"]), row_to_session(row, user_id)


@dataclass(frozen=True)
class SessionChange:
    """An update_session call's fields, checked before its transaction (see `checked`)."""

    name: str | None
    metadata: dict[str, Any] | None
    metadata_json: str | None
    state: dict[str, Any] | None
    merge_state: bool
    agent: AgentConfig | None

    @classmethod
    def checked(
        cls,
        name: str | None,
        metadata: dict[str, Any] | None,
        state: dict[str, Any] | None,
        merge_state: bool,
        agent: AgentConfig | None,
    ) -> "SessionChange":
        check_name(name)
        metadata_json = dump_json(metadata, "metadata") if metadata is not None else None
        if state is not None:
            dump_json(state, "state")
        return cls(name, metadata, metadata_json, state, merge_state, agent)

    def columns(self, current: Session) -> dict[str, Any]:
        """The columns this change sets to a new value; none when it changes nothing."""
        changes: dict[str, Any] = {}
        if self.name is not None and (self.name or None) != current.name:
            changes["name"] = self.name or None
        if self.metadata_json is not None and not same_json(self.metadata, current.metadata):
            changes["metadata"] = self.metadata_json
        if self.state is not None:
            new_state = {**current.state, **self.state} if self.merge_state else self.state
            if not same_json(new_state, current.state):
                changes["state"] = dump_json(new_state, "state")
        if self.agent is not None:
            stored = (current.agent or AgentConfig()).model_dump()
            new_agent = {**stored, **self.agent.model_dump(include=self.agent.model_fields_set)}
            if current.agent is None or not same_json(new_agent, stored):
                changes["agent"] = dump_json(new_agent, "agent")
        return changes


def update(raw: sqlite3.Connection, session_pk: int, user_id: str, change: SessionChange) -> Session:
    """Apply `change`; a change that changes nothing writes nothing and leaves updated_at as it was."""
    current = load(raw, session_pk, user_id)
    columns = change.columns(current)
    if not columns:
        return current
    assignments = "".join(f"{column} = ?, " for column in columns)
    raw.execute(
        f"UPDATE sessions SET {assignments}updated_at = ? WHERE pk = ?", (*columns.values(), utc_now(), session_pk)
    )
    return load(raw, session_pk, user_id)


def set_summary(raw: sqlite3.Connection, session_pk: int, user_id: str, summary_json: str) -> Session:
    raw.execute("UPDATE sessions SET summary = ?, updated_at = ? WHERE pk = ?", (summary_json, utc_now(), session_pk))
    return load(raw, session_pk, user_id)


def add_runs(raw: sqlite3.Connection, session_pk: int, runs: int, tokens: tuple[int, ...], now: str) -> None:
    """Count new runs and their tokens (input, output, cache read, cache write) in the session's totals.

    Each total saturates at MAX_SESSION_TOKENS rather than overflowing SQLite's 64-bit integers into a REAL.
    """
    raw.execute(
        f"UPDATE sessions SET run_count = run_count + ?, updated_at = ?, {_ADD_TOKENS} WHERE pk = ?",
        (runs, now, *tokens, session_pk),
    )
