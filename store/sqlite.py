"""The SQLite session store: one file, WAL, rows per run, message and tool call, FTS5 search."""

import secrets
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

from . import search_query
from . import sqlite_history as history
from .clock import utc_now
from .cursor import SECRET_BYTES, CursorSealer
from .errors import InvalidInput, SessionNotFound
from .limits import check_id, check_name, dump_json, same_json
from .models import (
    AgentConfig,
    ChatHistoryPage,
    ContextMessage,
    NewRun,
    Run,
    RunTranscript,
    SearchHit,
    Session,
    SessionPage,
    SessionSummary,
    ToolCallPage,
)
from .pages import fill_page
from .process_owner import current_owner, owner_is_gone
from .protocol import Order, SortKey
from .sqlite_connection import Connection, read, write
from .sqlite_files import make_companions_private, prepare_file
from .sqlite_purge import PURGING_USER, Purger, purge_step, vanish
from .sqlite_rows import add_to_session, ensure_session, load_run, prepare_run, row_to_session, write_run
from .sqlite_schema import MIGRATIONS, Migration, migrate
from .sqlite_search import search_user
from .sqlite_user import SqliteUserSessions

_SESSION_COLUMNS = (
    "s.pk, s.session_id, s.name, s.state, s.metadata, s.agent, s.summary, s.run_count, s.created_at, s.updated_at, "
    "s.input_tokens, s.output_tokens, s.cache_read_tokens, s.cache_write_tokens"
)


class SqliteStore:
    """SessionStore on one SQLite file (or `:memory:`), safe to share between processes."""

    def __init__(self, writer: Connection, reader: Connection, cursors: CursorSealer) -> None:
        self._writer = writer
        self._reader = reader
        self._cursors = cursors
        self._user_pks: dict[str, int] = {}
        self._purger = Purger(writer)

    @classmethod
    async def open(cls, database: str | Path, migrations: tuple[Migration, ...] = MIGRATIONS) -> "SqliteStore":
        """Open (creating and migrating as needed), mark runs interrupted by a crash and resume the
        purge of sessions deleted by a process that stopped before it finished."""
        if str(database) == ":memory:":
            writer = await Connection.open(":memory:")
            reader = writer
        else:
            path = Path(database).expanduser()
            prepare_file(path)
            writer = await Connection.open(str(path))
            reader = writer
        try:
            await writer.run(lambda raw: migrate(raw, migrations))
            if str(database) != ":memory:":
                reader = await Connection.open(str(path), inline=True)
                make_companions_private(path)
            store = cls(writer, reader, CursorSealer(await writer.run(_cursor_secret)))
            await store.recover_interrupted_runs()
            await store._purger.resume()
        except BaseException:
            await writer.close()
            if reader is not writer:
                await reader.close()
            raise
        return store

    def for_user(self, user_id: str) -> SqliteUserSessions:
        return SqliteUserSessions(self, user_id)

    async def close(self) -> None:
        """Close the connections; a purge in progress stops and resumes at the next open."""
        try:
            await self._purger.stop()
        finally:
            if self._reader is not self._writer:
                await self._reader.close()
            await self._writer.close()

    # -- sessions ---------------------------------------------------------------------

    async def start_session(
        self,
        user_id: str,
        session_id: str | None,
        *,
        name: str | None = None,
        state: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        agent: AgentConfig | None = None,
    ) -> tuple[Session, bool]:
        check_id(user_id, "user_id")
        session_id = check_id(session_id, "session_id") if session_id is not None else str(uuid.uuid4())
        check_name(name)
        state_json = dump_json(state or {}, "state")
        metadata_json = dump_json(metadata or {}, "metadata")
        agent_json = agent.model_dump_json() if agent is not None else None

        def body(raw: sqlite3.Connection) -> tuple[Session, bool]:
            user_pk = self._ensure_user(raw, user_id)
            now = utc_now()
            created = (
                raw.execute(
                    "INSERT OR IGNORE INTO sessions (user_pk, session_id, name, state, metadata, agent, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (user_pk, session_id, name, state_json, metadata_json, agent_json, now, now),
                ).rowcount
                == 1
            )
            return self._load_session(raw, user_id, user_pk, session_id), created

        return await self._writer.run(write(body))

    async def get_session(self, user_id: str, session_id: str) -> Session:
        def body(raw: sqlite3.Connection) -> Session:
            return self._load_session(raw, user_id, self._user_pk(raw, user_id, session_id), session_id)

        return await self._reader.run(body, inline=True)

    async def list_sessions(
        self,
        user_id: str,
        *,
        limit: int = 20,
        cursor: str | None = None,
        sort_by: SortKey = "updated_at",
        order: Order = "desc",
        name_contains: str | None = None,
    ) -> SessionPage:
        if sort_by not in ("updated_at", "created_at") or order not in ("asc", "desc"):
            raise InvalidInput("sort_by must be updated_at or created_at, and order desc or asc.")
        name_filter = ""
        params: list[Any] = []
        if name_contains:
            # instr on the bytes sees the whole text (LIKE stops at a NUL); lower() folds ASCII letters only.
            name_filter = " AND instr(CAST(lower(s.name) AS BLOB), CAST(lower(?) AS BLOB)) > 0"
            params.append(name_contains)
        direction, compare = ("DESC", "<") if order == "desc" else ("ASC", ">")

        def body(raw: sqlite3.Connection) -> SessionPage:
            user_pk = self._known_user(raw, user_id)
            scope = ("sessions", user_pk, sort_by, order, name_contains or None)
            after = self._cursors.open(cursor, scope, (str, int)) if cursor else None
            if user_pk is None:
                return SessionPage(sessions=[], next_cursor=None, total=0)
            total = raw.execute(
                f"SELECT count(*) FROM sessions s WHERE s.user_pk = ?{name_filter}", (user_pk, *params)
            ).fetchone()[0]
            page_filter = f" AND (s.{sort_by}, s.pk) {compare} (?, ?)" if after else ""
            rows = raw.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions s WHERE s.user_pk = ?{name_filter}{page_filter} "
                f"ORDER BY s.{sort_by} {direction}, s.pk {direction} LIMIT ?",
                (user_pk, *params, *(after or ()), limit + 1),
            )
            with closing(rows):
                sessions, last = fill_page(_sessions(rows, user_id, sort_by), limit)
            next_cursor = self._cursors.seal(scope, *last) if last is not None else None
            return SessionPage(sessions=sessions, next_cursor=next_cursor, total=total)

        return await self._reader.run(read(body), inline=True)

    async def update_session(
        self,
        user_id: str,
        session_id: str,
        *,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
        merge_state: bool = True,
        agent: AgentConfig | None = None,
    ) -> Session:
        check_name(name)
        metadata_json = dump_json(metadata, "metadata") if metadata is not None else None
        if state is not None:
            dump_json(state, "state")

        def body(raw: sqlite3.Connection) -> Session:
            user_pk = self._user_pk(raw, user_id, session_id)
            current = self._load_session(raw, user_id, user_pk, session_id)
            changes: dict[str, Any] = {}
            if name is not None and (name or None) != current.name:
                changes["name"] = name or None
            if metadata_json is not None and not same_json(metadata, current.metadata):
                changes["metadata"] = metadata_json
            if state is not None:
                new_state = {**current.state, **state} if merge_state else state
                if not same_json(new_state, current.state):
                    changes["state"] = dump_json(new_state, "state")
            if agent is not None:
                stored = (current.agent or AgentConfig()).model_dump()
                new_agent = {**stored, **agent.model_dump(include=agent.model_fields_set)}
                if current.agent is None or not same_json(new_agent, stored):
                    changes["agent"] = dump_json(new_agent, "agent")
            if not changes:
                return current
            assignments = "".join(f"{column} = ?, " for column in changes)
            raw.execute(
                f"UPDATE sessions SET {assignments}updated_at = ? WHERE user_pk = ? AND session_id = ?",
                (*changes.values(), utc_now(), user_pk, session_id),
            )
            return self._load_session(raw, user_id, user_pk, session_id)

        return await self._writer.run(write(body))

    async def delete_session(self, user_id: str, session_id: str) -> None:
        """The session vanishes at once; rows that one short transaction cannot delete are purged
        in the background (see sqlite_purge)."""

        def body(raw: sqlite3.Connection) -> bool:
            user_pk = self._user_pk(raw, user_id, session_id)
            session_pk = self._session_pk(raw, user_id, session_id)
            vanish(raw, user_pk, session_pk)
            return purge_step(raw, session_pk)

        if not await self._writer.run(write(body)):
            self._purger.start()

    async def purge_pending(self) -> None:
        """Purge the rows of every deleted session now (also those another process left) and
        return when none is left."""
        await self._purger.finish()

    # -- runs -------------------------------------------------------------------------

    async def append_run(
        self, user_id: str, session_id: str, run: NewRun, *, finishing: bool = False
    ) -> tuple[Run, bool]:
        check_id(user_id, "user_id")
        check_id(session_id, "session_id")
        prepared = prepare_run(run)

        def body(raw: sqlite3.Connection) -> tuple[Run, bool]:
            now = utc_now()
            if finishing:  # a begun run ends in its own session only, never in a re-created one
                user_pk = self._user_pk(raw, user_id, session_id)
                session_pk = self._session_pk(raw, user_id, session_id)
            else:
                user_pk = self._ensure_user(raw, user_id)
                session_pk = ensure_session(raw, user_pk, session_id, now)
            existing = raw.execute(
                "SELECT pk, status FROM runs WHERE session_pk = ? AND run_id = ?", (session_pk, run.run_id)
            ).fetchone()
            if existing is not None and existing["status"] == "running" and not finishing:
                raise InvalidInput(
                    f"run_id {run.run_id!r} belongs to a run still in progress in this session; use another run_id."
                )
            if existing is not None and existing["status"] != "running":
                return load_run(raw, existing["pk"], session_id), False
            run_pk = write_run(raw, user_pk, session_pk, prepared, existing["pk"] if existing else None, now)
            add_to_session(raw, session_pk, 0 if existing else 1, prepared.tokens, now)
            return load_run(raw, run_pk, session_id), True

        return await self._writer.run(write(body))

    async def begin_run(self, user_id: str, session_id: str, run_id: str, input: str) -> Run:
        check_id(run_id, "run_id")

        def body(raw: sqlite3.Connection) -> Run:
            session_pk = self._session_pk(raw, user_id, session_id)
            if raw.execute("SELECT 1 FROM runs WHERE session_pk = ? AND run_id = ?", (session_pk, run_id)).fetchone():
                raise InvalidInput(f"run_id {run_id!r} already exists in this session; use a new run_id.")
            now = utc_now()
            run_pk = raw.execute(
                "INSERT INTO runs (session_pk, run_id, status, input, owner, created_at) "
                "VALUES (?, ?, 'running', ?, ?, ?)",
                (session_pk, run_id, input, current_owner(), now),
            ).lastrowid
            add_to_session(raw, session_pk, 1, (0, 0, 0, 0), now)
            assert run_pk is not None
            return load_run(raw, run_pk, session_id)

        return await self._writer.run(write(body))

    async def context_messages(self, user_id: str, session_id: str, num_runs: int) -> list[ContextMessage]:
        def body(raw: sqlite3.Connection) -> list[ContextMessage]:
            return history.context_messages(raw, self._session_pk(raw, user_id, session_id), num_runs)

        return await self._reader.run(read(body), inline=True)

    async def runs_for_summary(self, user_id: str, session_id: str, after: int) -> tuple[list[RunTranscript], int]:
        def body(raw: sqlite3.Connection) -> tuple[list[RunTranscript], int]:
            return history.runs_for_summary(raw, self._session_pk(raw, user_id, session_id), after)

        return await self._reader.run(read(body))

    async def set_summary(self, user_id: str, session_id: str, summary: SessionSummary) -> Session:
        summary_json = dump_json(summary.model_dump(), "summary")

        def body(raw: sqlite3.Connection) -> Session:
            user_pk = self._user_pk(raw, user_id, session_id)
            raw.execute(
                "UPDATE sessions SET summary = ?, updated_at = ? WHERE user_pk = ? AND session_id = ?",
                (summary_json, utc_now(), user_pk, session_id),
            )
            return self._load_session(raw, user_id, user_pk, session_id)

        return await self._writer.run(write(body))

    async def recover_interrupted_runs(self) -> int:
        def body(raw: sqlite3.Connection) -> int:
            owners = [row[0] for row in raw.execute("SELECT DISTINCT owner FROM runs WHERE status = 'running'")]
            gone = [owner for owner in owners if owner_is_gone(owner)]
            marked = 0
            for owner in gone:
                marked += raw.execute(
                    "UPDATE runs SET status = 'error', error = 'The server stopped before this run finished.' "
                    "WHERE status = 'running' AND owner IS ?",
                    (owner,),
                ).rowcount
            return marked

        return await self._writer.run(write(body))

    # -- history ------------------------------------------------------------------------

    async def get_chat_history(
        self,
        user_id: str,
        session_id: str,
        *,
        last_n_runs: int | None = None,
        limit: int = 100,
        cursor: str | None = None,
        include_tool_messages: bool = False,
    ) -> ChatHistoryPage:
        def body(raw: sqlite3.Connection) -> ChatHistoryPage:
            session = self._owned_session(raw, user_id, session_id)  # an unknown session wins over a bad cursor
            return history.chat_history_page(
                raw, self._cursors, session, last_n_runs, limit, cursor, include_tool_messages
            )

        return await self._reader.run(read(body), inline=True)

    async def get_tool_calls(
        self,
        user_id: str,
        session_id: str,
        *,
        limit: int = 20,
        tool_name: str | None = None,
        cursor: str | None = None,
    ) -> ToolCallPage:
        def body(raw: sqlite3.Connection) -> ToolCallPage:
            session = self._owned_session(raw, user_id, session_id)
            return history.tool_call_page(raw, self._cursors, session, limit, tool_name, cursor)

        return await self._reader.run(read(body), inline=True)

    # -- search -------------------------------------------------------------------------

    async def search(
        self,
        user_id: str,
        query: str,
        *,
        num_sessions: int | None = None,
        exclude_session_id: str | None = None,
        limit: int = 10,
    ) -> list[SearchHit]:
        words = search_query.quoted(search_query.terms(query))
        if not words:
            return []

        def body(raw: sqlite3.Connection) -> list[SearchHit]:
            user_pk = self._known_user(raw, user_id)
            if user_pk is None:
                return []
            return search_user(raw, user_pk, words, num_sessions, exclude_session_id, limit)

        return await self._reader.run(read(body))

    # -- helpers (run on the connection thread) -------------------------------------------

    def _ensure_user(self, raw: sqlite3.Connection, user_id: str) -> int:
        user_pk = self._known_user(raw, user_id)
        if user_pk is None:
            raw.execute("INSERT INTO users (user_id) VALUES (?)", (user_id,))
            user_pk = _find_user(raw, user_id)
            assert user_pk is not None
        return user_pk

    def _known_user(self, raw: sqlite3.Connection, user_id: str) -> int | None:
        """The user's pk if the user exists; cached, as users are never renumbered or deleted.

        Only a pk read before this transaction wrote anything is cached: a user inserted by a
        transaction that later rolls back must not be remembered.
        """
        user_pk = self._user_pks.get(user_id)
        if user_pk is None:
            user_pk = _find_user(raw, user_id)
            if user_pk is not None:
                self._user_pks[user_id] = user_pk
        return user_pk

    def _user_pk(self, raw: sqlite3.Connection, user_id: str, session_id: str) -> int:
        user_pk = self._known_user(raw, user_id)
        if user_pk is None:
            raise SessionNotFound(session_id)
        return user_pk

    def _session_pk(self, raw: sqlite3.Connection, user_id: str, session_id: str) -> int:
        row = raw.execute(
            "SELECT pk FROM sessions WHERE user_pk = ? AND session_id = ?",
            (self._user_pk(raw, user_id, session_id), session_id),
        ).fetchone()
        if row is None:
            raise SessionNotFound(session_id)
        return int(row[0])

    def _owned_session(self, raw: sqlite3.Connection, user_id: str, session_id: str) -> history.OwnedSession:
        session_pk = self._session_pk(raw, user_id, session_id)
        return history.OwnedSession(self._user_pk(raw, user_id, session_id), session_pk, session_id)

    def _load_session(self, raw: sqlite3.Connection, user_id: str, user_pk: int, session_id: str) -> Session:
        row = raw.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions s WHERE s.user_pk = ? AND s.session_id = ?",
            (user_pk, session_id),
        ).fetchone()
        if row is None:
            raise SessionNotFound(session_id)
        return row_to_session(row, user_id)


def _cursor_secret(raw: sqlite3.Connection) -> bytes:
    """The database's own cursor secret (migration 4); a file without one gets a secret for this store only."""
    row = raw.execute("SELECT value FROM secrets WHERE name = 'cursor'").fetchone()
    return bytes(row[0]) if row is not None else secrets.token_bytes(SECRET_BYTES)


def _sessions(rows: sqlite3.Cursor, user_id: str, sort_by: SortKey) -> Iterator[tuple[tuple[str, int], Session]]:
    for row in rows:
        yield (row[sort_by], row["pk"]), row_to_session(row, user_id)


def _find_user(raw: sqlite3.Connection, user_id: str) -> int | None:
    """The pk of the user named `user_id`; never the reserved owner of sessions being deleted."""
    if user_id == PURGING_USER:
        return None
    row = raw.execute("SELECT pk FROM users WHERE user_id = ?", (user_id,)).fetchone()
    return None if row is None else int(row[0])
