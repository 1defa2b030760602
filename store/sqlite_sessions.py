"""One user's sessions in a SqliteStore: the UserSessions handle that `SqliteStore.for_user` hands out.

Each method checks and serializes its arguments first, then runs one transaction in one hop to a
connection's worker thread (or inline, for a short read; see sqlite_connection.py). Inside it,
the handle's user is resolved once (sqlite_identity.py) and the SQL of the sessions table, the
runs, the history and the search (the sqlite_* modules beside this one) does the rest.
"""

import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import search_query, sqlite_attachments, sqlite_export, sqlite_fork
from . import sqlite_history as history
from . import sqlite_paused as paused
from . import sqlite_runs as runs
from . import sqlite_session_table as sessions
from .attachments import AttachmentRef, attachment_missing
from .clock import utc_now
from .cursor import CursorSealer
from .errors import SessionChanged, SessionNotFound
from .limits import HISTORY_PAGE, SEARCH_RESULTS, SESSION_PAGE, TOOL_CALL_PAGE, check_id, check_name, dump_json
from .models import (
    AgentConfig,
    ChatHistoryPage,
    ContextMessage,
    Run,
    RunTranscript,
    SearchHit,
    Session,
    SessionPage,
    SessionSummary,
    ToolCallPage,
)
from .protocol import Order, SortKey
from .record_checks import runs_to_read
from .records import SessionRecord
from .run_inputs import NewRun, SessionKind
from .sqlite_connection import Connection, read, write
from .sqlite_identity import OwnedSession, UserDirectory
from .sqlite_paused import PausedRun
from .sqlite_purge import Purger, purge_step, vanish
from .sqlite_rows import prepare_run
from .sqlite_search import search_user

INLINE_WRITE_BYTES = 64_000
"""A write this small runs on the event loop when the database is free (a thread hop costs more than
the write, about 1 ms of CPU under load); a larger one, or one that finds the file locked, goes to the
writer's thread, so no write holds the event loop for long."""


@dataclass(frozen=True)
class StoreParts:
    """What every handle of one store shares: its connections, cursor sealer, user directory and purger,
    and how long a run's lease lasts."""

    writer: Connection
    reader: Connection
    cursors: CursorSealer
    users: UserDirectory
    purger: Purger
    lease_s: float


class SqliteUserSessions:
    """UserSessions on a SqliteStore: every call acts for `user_id` and sees nothing of other users."""

    def __init__(self, parts: StoreParts, user_id: str) -> None:
        self._parts = parts
        self._user_id = user_id

    @property
    def user_id(self) -> str:
        return self._user_id

    # Every transaction resolves the handle's user first, once, through one of these three.

    def _session(self, raw: sqlite3.Connection, session_id: str) -> OwnedSession:
        """This user's session `session_id`, or SessionNotFound (see UserDirectory.session)."""
        return self._parts.users.session(raw, self._user_id, session_id)

    def _user_pk(self, raw: sqlite3.Connection) -> int | None:
        """This user's pk, None if the file has no such user yet (see UserDirectory.user_pk)."""
        return self._parts.users.user_pk(raw, self._user_id)

    def _created_user_pk(self, raw: sqlite3.Connection) -> int:
        """This user's pk, the user inserted if new (see UserDirectory.created_user_pk)."""
        return self._parts.users.created_user_pk(raw, self._user_id)

    # -- sessions ---------------------------------------------------------------------

    async def start_session(
        self,
        session_id: str | None,
        *,
        name: str | None = None,
        state: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        agent: AgentConfig | None = None,
        kind: SessionKind | None = None,
    ) -> tuple[Session, bool]:
        check_id(self._user_id, "user_id")
        session_id = check_id(session_id, "session_id") if session_id is not None else str(uuid.uuid4())
        new = sessions.NewSession(
            name=check_name(name),
            state_json=dump_json(state or {}, "state"),
            metadata_json=dump_json(metadata or {}, "metadata"),
            agent_json=agent.model_dump_json() if agent is not None else None,
            kind=(kind or SessionKind()).checked(),
        )

        def body(raw: sqlite3.Connection) -> tuple[Session, bool]:
            user_pk = self._created_user_pk(raw)
            session_pk, created = sessions.start(raw, user_pk, session_id, utc_now(), new)
            return sessions.load(raw, session_pk, self._user_id), created

        size = len(new.state_json) + len(new.metadata_json) + len(new.agent_json or "")
        return await self._parts.writer.run(write(body), inline=size <= INLINE_WRITE_BYTES)

    async def get_session(self, session_id: str) -> Session:
        def body(raw: sqlite3.Connection) -> Session:
            return sessions.load(raw, self._session(raw, session_id).session_pk, self._user_id)

        return await self._parts.reader.run(read(body), inline=True)

    async def list_sessions(
        self,
        *,
        limit: int = SESSION_PAGE,
        cursor: str | None = None,
        sort_by: SortKey = "updated_at",
        order: Order = "desc",
        name_contains: str | None = None,
        kind: SessionKind | None = None,
    ) -> SessionPage:
        query = sessions.SessionQuery(sort_by, order, name_contains, kind or SessionKind())

        def body(raw: sqlite3.Connection) -> SessionPage:
            return sessions.page(raw, self._parts.cursors, self._user_pk(raw), self._user_id, query, limit, cursor)

        return await self._parts.reader.run(read(body), inline=True)

    async def update_session(
        self,
        session_id: str,
        *,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
        merge_state: bool = True,
        agent: AgentConfig | None = None,
    ) -> Session:
        change = sessions.SessionChange.checked(name, metadata, state, merge_state, agent)

        def body(raw: sqlite3.Connection) -> Session:
            return sessions.update(raw, self._session(raw, session_id).session_pk, self._user_id, change)

        return await self._parts.writer.run(write(body))

    async def delete_session(self, session_id: str, *, if_updated_at: str | None = None) -> None:
        """The session vanishes at once; rows that one short transaction cannot delete are purged
        in the background (see sqlite_purge)."""

        def body(raw: sqlite3.Connection) -> bool:
            session = self._session(raw, session_id)
            if if_updated_at is not None:
                row = raw.execute("SELECT updated_at FROM sessions WHERE pk = ?", (session.session_pk,)).fetchone()
                if row[0] != if_updated_at:
                    raise SessionChanged(session_id)
            vanish(raw, session.user_pk, session.session_pk)
            return purge_step(raw, session.session_pk)

        if not await self._parts.writer.run(write(body)):
            self._parts.purger.start()

    async def set_summary(self, session_id: str, summary: SessionSummary) -> Session:
        summary_json = dump_json(summary.model_dump(), "summary")

        def body(raw: sqlite3.Connection) -> Session:
            return sessions.set_summary(raw, self._session(raw, session_id).session_pk, self._user_id, summary_json)

        return await self._parts.writer.run(write(body))

    async def session_record(
        self, session_id: str, *, last_runs: int | None = None, with_bytes: bool = False
    ) -> SessionRecord:
        last_runs = runs_to_read(last_runs)

        def body(raw: sqlite3.Connection) -> SessionRecord:
            session = self._session(raw, session_id)
            return sqlite_export.session_record(raw, session, self._user_id, last_runs, with_bytes=with_bytes)

        return await self._parts.reader.run(read(body))

    async def fork_session(
        self, session_id: str, new_session_id: str | None = None, *, up_to_run_id: str | None = None
    ) -> Session:
        return await sqlite_fork.fork_session(
            self._parts.writer, self._parts.users, self._user_id, session_id, new_session_id, up_to_run_id
        )

    # -- runs -------------------------------------------------------------------------

    async def append_run(
        self, session_id: str, run: NewRun, *, finishing: bool = False, kind: SessionKind | None = None
    ) -> tuple[Run, bool]:
        check_id(self._user_id, "user_id")
        check_id(session_id, "session_id")
        prepared = prepare_run(run)
        new = sessions.new_session(kind)

        def body(raw: sqlite3.Connection) -> tuple[Run, bool]:
            now = utc_now()
            if finishing:  # a begun run ends in its own session only, never in a re-created one
                session = self._session(raw, session_id)
            else:
                user_pk = self._created_user_pk(raw)
                session_pk, _ = sessions.start(raw, user_pk, session_id, now, new)
                session = OwnedSession(user_pk, session_pk, session_id)
            return runs.append(raw, session, prepared, finishing, now)

        return await self._parts.writer.run(write(body), inline=prepared.size <= INLINE_WRITE_BYTES)

    async def begin_run(self, session_id: str, run_id: str, input: str) -> Run:
        check_id(run_id, "run_id")

        def body(raw: sqlite3.Connection) -> Run:
            return runs.begin(raw, self._session(raw, session_id), run_id, input, self._parts.lease_s)

        return await self._parts.writer.run(write(body), inline=len(input) <= INLINE_WRITE_BYTES)

    async def renew_lease(self, session_id: str, run_id: str) -> bool:
        def body(raw: sqlite3.Connection) -> bool:
            try:
                session = self._session(raw, session_id)
            except SessionNotFound:  # another user's session holds no run of this user
                return False
            return runs.renew(raw, session.session_pk, run_id, self._parts.lease_s)

        return await self._parts.writer.run(write(body), inline=True)

    async def claim_paused_run(self, run_id: str, tool_call_ids: Sequence[str]) -> PausedRun:
        check_id(run_id, "run_id")

        def body(raw: sqlite3.Connection) -> PausedRun:
            return paused.claim(raw, self._user_pk(raw), run_id, tool_call_ids, self._parts.lease_s)

        return await self._parts.writer.run(write(body))

    async def cancel_run(self, run_id: str) -> Run:
        check_id(run_id, "run_id")

        def body(raw: sqlite3.Connection) -> Run:
            return paused.cancel(raw, self._user_pk(raw), run_id, utc_now())

        return await self._parts.writer.run(write(body))

    async def finish_continued_run(self, session_id: str, run: NewRun) -> tuple[Run, bool]:
        prepared = prepare_run(run)

        def body(raw: sqlite3.Connection) -> tuple[Run, bool]:
            return paused.finish_continued(raw, self._session(raw, session_id), prepared, utc_now())

        return await self._parts.writer.run(write(body), inline=prepared.size <= INLINE_WRITE_BYTES)

    # -- history ----------------------------------------------------------------------

    async def get_chat_history(
        self,
        session_id: str,
        *,
        last_n_runs: int | None = None,
        limit: int = HISTORY_PAGE,
        cursor: str | None = None,
        include_tool_messages: bool = False,
        include_member_runs: bool = False,
    ) -> ChatHistoryPage:
        def body(raw: sqlite3.Connection) -> ChatHistoryPage:
            session = self._session(raw, session_id)  # an unknown session wins over a bad cursor
            page = history.chat_history_page(
                raw,
                self._parts.cursors,
                session,
                last_n_runs,
                limit,
                cursor,
                include_tool_messages,
                include_member_runs,
            )
            return sqlite_attachments.with_refs(raw, session.session_pk, page)

        return await self._parts.reader.run(read(body), inline=True)

    async def get_attachment(self, session_id: str, attachment_id: str) -> tuple[AttachmentRef, bytes | None]:
        def body(raw: sqlite3.Connection) -> tuple[AttachmentRef, bytes | None]:
            session = self._session(raw, session_id)
            found = sqlite_attachments.content(raw, session.session_pk, session_id, attachment_id)
            if found is None:
                raise attachment_missing(session_id, attachment_id)
            return found

        return await self._parts.reader.run(read(body))

    async def get_tool_calls(
        self,
        session_id: str,
        *,
        limit: int = TOOL_CALL_PAGE,
        tool_name: str | None = None,
        cursor: str | None = None,
        include_member_runs: bool = False,
    ) -> ToolCallPage:
        def body(raw: sqlite3.Connection) -> ToolCallPage:
            session = self._session(raw, session_id)
            return history.tool_call_page(
                raw, self._parts.cursors, session, limit, tool_name, cursor, include_member_runs
            )

        return await self._parts.reader.run(read(body), inline=True)

    async def context_messages(self, session_id: str, num_runs: int) -> list[ContextMessage]:
        def body(raw: sqlite3.Connection) -> list[ContextMessage]:
            return history.context_messages(raw, self._session(raw, session_id).session_pk, num_runs)

        return await self._parts.reader.run(read(body), inline=True)

    async def runs_for_summary(self, session_id: str, after: int) -> tuple[list[RunTranscript], int]:
        def body(raw: sqlite3.Connection) -> tuple[list[RunTranscript], int]:
            return history.runs_for_summary(raw, self._session(raw, session_id).session_pk, after)

        return await self._parts.reader.run(read(body))

    # -- search -----------------------------------------------------------------------

    async def search(
        self,
        query: str,
        *,
        num_sessions: int | None = None,
        exclude_session_id: str | None = None,
        limit: int = SEARCH_RESULTS,
    ) -> list[SearchHit]:
        words = search_query.quoted(search_query.terms(query))
        if not words:
            return []

        def body(raw: sqlite3.Connection) -> list[SearchHit]:
            user_pk = self._user_pk(raw)
            if user_pk is None:
                return []
            return search_user(raw, user_pk, words, num_sessions, exclude_session_id, limit)

        return await self._parts.reader.run(read(body))
