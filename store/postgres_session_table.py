"""The sessions table on PostgreSQL: a user's sessions started, read, listed and changed, and runs
counted into them; and who is who (the users.pk behind a user id, the sessions.pk behind a session id).

Each function runs inside the caller's transaction. Changes to a session lock its row first
(`FOR UPDATE`), so two replicas merging state at once both land, one after the other.
"""

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from .cursor import CursorSealer
from .errors import SessionNotFound
from .limits import MAX_PAUSED_RUN_IDS, MAX_SESSION_TOKENS
from .models import Session, SessionMetrics, SessionPage, SessionSummary, StoredAgentConfig
from .pages import fill_page
from .postgres_values import iso, now, optional_from_db, optional_to_db, timestamp, to_db
from .sqlite_identity import OwnedSession as OwnedSession  # the same resolved session on both backends
from .sqlite_session_table import EMPTY, NewSession, SessionChange, SessionQuery, check_kind

if TYPE_CHECKING:
    from .postgres_schema import Conn

COLUMNS = (
    "s.pk, s.session_id, s.name, s.state, s.metadata, s.agent, s.summary, s.run_count, s.created_at, s.updated_at, "
    "s.input_tokens, s.output_tokens, s.cache_read_tokens, s.cache_write_tokens, "
    "s.session_type, s.agent_id, s.team_id, s.workflow_id, "
    "ARRAY(SELECT r.run_id FROM runs r WHERE r.session_pk = s.pk AND r.status = 'paused' "
    f"ORDER BY r.pk LIMIT {MAX_PAUSED_RUN_IDS}) AS paused_run_ids"
)
"""The select list of `sessions s` that row_to_session reads (the oldest paused runs through runs_paused)."""
_ASCII_LOWER = "translate({}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')"


class UserDirectory:
    """users.pk by user id, cached: users are never renumbered or deleted."""

    def __init__(self) -> None:
        self._known: dict[str, int] = {}

    async def user_pk(self, conn: "Conn", user_id: str) -> int | None:
        """The user's pk, or None. A pk found is cached, so call this before the transaction could have
        inserted the user itself (a rolled-back insert must not be remembered)."""
        user_pk = self._known.get(user_id)
        if user_pk is None:
            user_pk = await conn.fetchval("SELECT pk FROM users WHERE user_id = $1", user_id)
            if user_pk is not None:
                self._known[user_id] = user_pk
        return user_pk

    async def created_user_pk(self, conn: "Conn", user_id: str) -> int:
        """The user's pk, the user inserted if new (committed or not, another transaction sees it only
        once committed; a pk inserted here is not cached until then)."""
        user_pk = await self.user_pk(conn, user_id)
        if user_pk is None:
            await conn.execute("INSERT INTO users (user_id) VALUES ($1) ON CONFLICT (user_id) DO NOTHING", user_id)
            user_pk = int(await conn.fetchval("SELECT pk FROM users WHERE user_id = $1", user_id))
        return user_pk

    async def session(self, conn: "Conn", user_id: str, session_id: str, *, hold: bool = False) -> OwnedSession:
        """The user's session `session_id` (`hold`: kept from being deleted until this write transaction
        ends). Raises SessionNotFound for an unknown user or session."""
        user_pk = await self.user_pk(conn, user_id)
        session_pk = None if user_pk is None else await find_session(conn, user_pk, session_id, hold=hold)
        if user_pk is None or session_pk is None:
            raise SessionNotFound(session_id)
        return OwnedSession(user_pk, session_pk, session_id)


async def find_session(conn: "Conn", user_pk: int, session_id: str, *, hold: bool = False) -> int | None:
    """The pk of the user's session `session_id`, if it exists. `hold` (write transactions only) keeps the
    row from being deleted until the transaction ends (a delete waits, or committed first and it is None),
    so the rows a write adds never point at a session deleted meanwhile."""
    pk = await conn.fetchval(
        f"SELECT pk FROM sessions WHERE user_pk = $1 AND session_id = $2{' FOR KEY SHARE' if hold else ''}",
        user_pk,
        session_id,
    )
    return None if pk is None else int(pk)


async def start(
    conn: "Conn", user_pk: int, session_id: str, moment: datetime, new: NewSession = EMPTY
) -> tuple[int, bool]:
    """The pk of the user's session `session_id`, and whether it was created now (with `new`'s fields).

    Two replicas starting one session at once: the unique (user, session id) makes one insert win,
    and the other finds its row (held, as `find_session`); one deleted in between is started anew.
    """
    while True:
        session_pk = await find_session(conn, user_pk, session_id, hold=True)
        if session_pk is not None:
            if new.kind.session_type is not None:
                stored = await conn.fetchval("SELECT session_type FROM sessions WHERE pk = $1", session_pk)
                check_kind(session_id, stored, new.kind)
            return session_pk, False
        inserted = await conn.fetchval(
            "INSERT INTO sessions (user_pk, session_id, name, state, metadata, agent, created_at, updated_at, "
            "session_type, agent_id, team_id, workflow_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11) "
            "ON CONFLICT (user_pk, session_id) DO NOTHING RETURNING pk",
            user_pk,
            session_id,
            optional_to_db(new.name),
            new.state_json,
            new.metadata_json,
            new.agent_json,
            moment,
            *new.kind.columns,
        )
        if inserted is not None:
            return int(inserted), True


async def load(conn: "Conn", session_pk: int, user_id: str, *, lock: bool = False) -> Session:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM sessions s WHERE s.pk = $1{' FOR NO KEY UPDATE' if lock else ''}", session_pk
    )
    assert row is not None  # resolved in this transaction, which keeps it
    return row_to_session(row, user_id)


def row_to_session(row: asyncpg.Record, user_id: str) -> Session:
    input_tokens, output_tokens = row["input_tokens"], row["output_tokens"]
    return Session(
        session_id=row["session_id"],
        user_id=user_id,
        name=optional_from_db(row["name"]),
        state=json.loads(row["state"]),
        metadata=json.loads(row["metadata"]),
        agent=StoredAgentConfig.model_validate_json(row["agent"]) if row["agent"] else None,
        summary=SessionSummary.model_validate_json(row["summary"]) if row["summary"] else None,
        run_count=row["run_count"],
        created_at=iso(row["created_at"]),
        updated_at=iso(row["updated_at"]),
        metrics=SessionMetrics(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=min(input_tokens + output_tokens, MAX_SESSION_TOKENS),
            cache_read_tokens=row["cache_read_tokens"],
            cache_write_tokens=row["cache_write_tokens"],
        ),
        session_type=row["session_type"],
        agent_id=row["agent_id"],
        team_id=row["team_id"],
        workflow_id=row["workflow_id"],
        paused_run_ids=list(row["paused_run_ids"]),
    )


async def page(
    conn: "Conn",
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
    params: list[Any] = [user_pk]
    name_filter = ""
    if query.name_contains:
        params.append(to_db(query.name_contains))
        name_filter = f" AND strpos({_ASCII_LOWER.format('s.name')}, {_ASCII_LOWER.format('$2')}) > 0"
    for column, value in query.kind.filters:
        params.append(value)
        name_filter += f" AND s.{column} = ${len(params)}"
    total = await conn.fetchval(f"SELECT count(*) FROM sessions s WHERE s.user_pk = $1{name_filter}", *params)
    direction, compare = ("DESC", "<") if query.order == "desc" else ("ASC", ">")
    page_filter = ""
    if after:
        params += [timestamp(after[0]), after[1]]
        page_filter = f" AND (s.{query.sort_by}, s.pk) {compare} (${len(params) - 1}, ${len(params)})"
    params.append(limit + 1)
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM sessions s WHERE s.user_pk = $1{name_filter}{page_filter} "
        f"ORDER BY s.{query.sort_by} {direction}, s.pk {direction} LIMIT ${len(params)}",
        *params,
    )
    positioned = (((iso(row[query.sort_by]), row["pk"]), row_to_session(row, user_id)) for row in rows)
    sessions, last = fill_page(positioned, limit)
    next_cursor = sealer.seal(scope, *last) if last is not None else None
    return SessionPage(sessions=sessions, next_cursor=next_cursor, total=total)


async def update(conn: "Conn", session_pk: int, user_id: str, change: SessionChange) -> Session:
    """Apply `change` to the locked row; a change that changes nothing writes nothing."""
    current = await load(conn, session_pk, user_id, lock=True)
    columns = change.columns(current)
    if not columns:
        return current
    if "name" in columns:
        columns["name"] = optional_to_db(columns["name"])
    assignments = "".join(f"{column} = ${index}, " for index, column in enumerate(columns, start=3))
    await conn.execute(
        f"UPDATE sessions SET {assignments}updated_at = $2 WHERE pk = $1", session_pk, now(), *columns.values()
    )
    return await load(conn, session_pk, user_id)


async def set_summary(conn: "Conn", session_pk: int, user_id: str, summary_json: str) -> Session:
    await conn.execute(
        "UPDATE sessions SET summary = $2, updated_at = $3 WHERE pk = $1", session_pk, summary_json, now()
    )
    return await load(conn, session_pk, user_id)


async def add_runs(conn: "Conn", session_pk: int, runs: int, tokens: tuple[int, ...], moment: datetime) -> None:
    """Count new runs and their tokens (input, output, cache read, cache write), each total saturating."""
    await conn.execute(
        "UPDATE sessions SET run_count = run_count + $2, updated_at = $3, "
        "input_tokens = least(input_tokens + $4, $8), output_tokens = least(output_tokens + $5, $8), "
        "cache_read_tokens = least(cache_read_tokens + $6, $8), "
        "cache_write_tokens = least(cache_write_tokens + $7, $8) "
        "WHERE pk = $1",
        session_pk,
        runs,
        moment,
        *tokens,
        MAX_SESSION_TOKENS,
    )
