"""One user's sessions in a PostgresStore: the UserSessions handle that `PostgresStore.for_user` hands out.

Each method checks and serializes its arguments first, then runs one transaction on a pooled
connection (postgres_connection.Database.run). Inside it, the handle's user is resolved once and the
SQL of the sessions table, the runs, the history and the search (the postgres_* modules beside this
one) does the rest.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import postgres_attachments, postgres_fork, search_query
from . import postgres_history as history
from . import postgres_paused as paused
from . import postgres_records as records
from . import postgres_runs as runs
from . import postgres_session_table as sessions
from .attachments import AttachmentRef, attachment_missing
from .cursor import CursorSealer
from .errors import SessionChanged
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
from .postgres_connection import Database
from .postgres_search import search_user
from .postgres_session_table import OwnedSession, UserDirectory
from .postgres_values import iso, now
from .protocol import Order, SortKey
from .record_checks import runs_to_read
from .records import SessionRecord
from .run_inputs import NewRun, SessionKind
from .sqlite_paused import PausedRun
from .sqlite_rows import prepare_run
from .sqlite_session_table import NewSession, SessionChange, SessionQuery, new_session

if TYPE_CHECKING:
    from .postgres_schema import Conn


@dataclass(frozen=True)
class PgStoreParts:
    """What every handle of one store shares."""

    db: Database
    cursors: CursorSealer
    users: UserDirectory
    lease_s: float


class PostgresUserSessions:
    """UserSessions on a PostgresStore: every call acts for `user_id` and sees nothing of other users."""

    def __init__(self, parts: PgStoreParts, user_id: str) -> None:
        self._parts = parts
        self._user_id = user_id

    @property
    def user_id(self) -> str:
        return self._user_id

    async def _session(self, conn: "Conn", session_id: str) -> OwnedSession:
        return await self._parts.users.session(conn, self._user_id, session_id)

    async def _held_session(self, conn: "Conn", session_id: str) -> OwnedSession:
        """For a write: the session, kept from a concurrent delete until the write commits."""
        return await self._parts.users.session(conn, self._user_id, session_id, hold=True)

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
        new = NewSession(
            name=check_name(name),
            state_json=dump_json(state or {}, "state"),
            metadata_json=dump_json(metadata or {}, "metadata"),
            agent_json=agent.model_dump_json() if agent is not None else None,
            kind=(kind or SessionKind()).checked(),
        )

        async def body(conn: "Conn") -> tuple[Session, bool]:
            user_pk = await self._parts.users.created_user_pk(conn, self._user_id)
            session_pk, created = await sessions.start(conn, user_pk, session_id, now(), new)
            return await sessions.load(conn, session_pk, self._user_id), created

        return await self._parts.db.run(body)

    async def get_session(self, session_id: str) -> Session:
        async def body(conn: "Conn") -> Session:
            return await sessions.load(conn, (await self._session(conn, session_id)).session_pk, self._user_id)

        return await self._parts.db.run(body, write=False)

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
        query = SessionQuery(sort_by, order, name_contains, kind or SessionKind())

        async def body(conn: "Conn") -> SessionPage:
            user_pk = await self._parts.users.user_pk(conn, self._user_id)
            return await sessions.page(conn, self._parts.cursors, user_pk, self._user_id, query, limit, cursor)

        return await self._parts.db.run(body, write=False)

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
        change = SessionChange.checked(name, metadata, state, merge_state, agent)

        async def body(conn: "Conn") -> Session:
            session = await self._held_session(conn, session_id)
            return await sessions.update(conn, session.session_pk, self._user_id, change)

        return await self._parts.db.run(body)

    async def delete_session(self, session_id: str, *, if_updated_at: str | None = None) -> None:
        """The session's rows go in one transaction (cascading); readers keep their snapshot meanwhile."""

        async def body(conn: "Conn") -> None:
            session = await self._session(conn, session_id)
            await conn.execute("SET LOCAL statement_timeout = 0")  # a session of any size can be deleted
            if if_updated_at is not None:
                updated_at = await conn.fetchval(
                    "SELECT updated_at FROM sessions WHERE pk = $1 FOR UPDATE", session.session_pk
                )
                if updated_at is None or iso(updated_at) != if_updated_at:  # changed, or deleted meanwhile
                    raise SessionChanged(session_id)
            await conn.execute("DELETE FROM sessions WHERE pk = $1", session.session_pk)

        await self._parts.db.run(body, repeatable=False)

    async def set_summary(self, session_id: str, summary: SessionSummary) -> Session:
        summary_json = dump_json(summary.model_dump(), "summary")

        async def body(conn: "Conn") -> Session:
            session = await self._held_session(conn, session_id)
            return await sessions.set_summary(conn, session.session_pk, self._user_id, summary_json)

        return await self._parts.db.run(body)

    async def session_record(
        self, session_id: str, *, last_runs: int | None = None, with_bytes: bool = False
    ) -> SessionRecord:
        last_runs = runs_to_read(last_runs)

        async def body(conn: "Conn") -> SessionRecord:
            session = await self._session(conn, session_id)
            return await records.session_record(conn, session, self._user_id, last_runs, with_bytes=with_bytes)

        return await self._parts.db.run(body, write=False)

    async def fork_session(
        self, session_id: str, new_session_id: str | None = None, *, up_to_run_id: str | None = None
    ) -> Session:
        return await postgres_fork.fork_session(
            self._parts.db, self._parts.users, self._user_id, session_id, new_session_id, up_to_run_id
        )

    # -- runs -------------------------------------------------------------------------

    async def append_run(
        self, session_id: str, run: NewRun, *, finishing: bool = False, kind: SessionKind | None = None
    ) -> tuple[Run, bool]:
        check_id(self._user_id, "user_id")
        check_id(session_id, "session_id")
        prepared = prepare_run(run)
        new = new_session(kind)

        async def body(conn: "Conn") -> tuple[Run, bool]:
            moment = now()
            if finishing:  # a begun run ends in its own session only, never in a re-created one
                session = await self._held_session(conn, session_id)
            else:
                user_pk = await self._parts.users.created_user_pk(conn, self._user_id)
                session_pk, _ = await sessions.start(conn, user_pk, session_id, moment, new)
                session = OwnedSession(user_pk, session_pk, session_id)
            return await runs.append(conn, session, prepared, finishing, moment)

        return await self._parts.db.run(body)

    async def begin_run(self, session_id: str, run_id: str, input: str) -> Run:
        check_id(run_id, "run_id")

        async def body(conn: "Conn") -> Run:
            session = await self._held_session(conn, session_id)
            return await runs.begin(conn, session, run_id, input, self._parts.lease_s, now())

        return await self._parts.db.run(body, repeatable=False)

    async def renew_lease(self, session_id: str, run_id: str) -> bool:
        async def body(conn: "Conn") -> bool:
            user_pk = await self._parts.users.user_pk(conn, self._user_id)
            session_pk = None if user_pk is None else await sessions.find_session(conn, user_pk, session_id)
            if session_pk is None:
                return False
            return await runs.renew(conn, session_pk, run_id, self._parts.lease_s)

        return await self._parts.db.run(body)

    async def claim_paused_run(self, run_id: str, tool_call_ids: Sequence[str]) -> PausedRun:
        check_id(run_id, "run_id")

        async def body(conn: "Conn") -> PausedRun:
            user_pk = await self._parts.users.user_pk(conn, self._user_id)
            return await paused.claim(conn, user_pk, run_id, tool_call_ids, self._parts.lease_s)

        return await self._parts.db.run(body, repeatable=False)

    async def cancel_run(self, run_id: str) -> Run:
        check_id(run_id, "run_id")

        async def body(conn: "Conn") -> Run:
            return await paused.cancel(conn, await self._parts.users.user_pk(conn, self._user_id), run_id, now())

        return await self._parts.db.run(body, repeatable=False)

    async def finish_continued_run(self, session_id: str, run: NewRun) -> tuple[Run, bool]:
        prepared = prepare_run(run)

        async def body(conn: "Conn") -> tuple[Run, bool]:
            return await paused.finish_continued(conn, await self._held_session(conn, session_id), prepared, now())

        return await self._parts.db.run(body)

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
        async def body(conn: "Conn") -> ChatHistoryPage:
            session = await self._session(conn, session_id)  # an unknown session wins over a bad cursor
            page = await history.chat_history_page(
                conn,
                self._parts.cursors,
                session,
                last_n_runs,
                limit,
                cursor,
                include_tool_messages,
                include_member_runs,
            )
            return await postgres_attachments.with_refs(conn, session.session_pk, page)

        return await self._parts.db.run(body, write=False)

    async def get_attachment(self, session_id: str, attachment_id: str) -> tuple[AttachmentRef, bytes | None]:
        async def body(conn: "Conn") -> tuple[AttachmentRef, bytes | None]:
            session = await self._session(conn, session_id)
            found = await postgres_attachments.content(conn, session.session_pk, session_id, attachment_id)
            if found is None:
                raise attachment_missing(session_id, attachment_id)
            return found

        return await self._parts.db.run(body, write=False)

    async def get_tool_calls(
        self,
        session_id: str,
        *,
        limit: int = TOOL_CALL_PAGE,
        tool_name: str | None = None,
        cursor: str | None = None,
        include_member_runs: bool = False,
    ) -> ToolCallPage:
        async def body(conn: "Conn") -> ToolCallPage:
            session = await self._session(conn, session_id)
            return await history.tool_call_page(
                conn, self._parts.cursors, session, limit, tool_name, cursor, include_member_runs
            )

        return await self._parts.db.run(body, write=False)

    async def context_messages(self, session_id: str, num_runs: int) -> list[ContextMessage]:
        async def body(conn: "Conn") -> list[ContextMessage]:
            session = await self._session(conn, session_id)
            return await history.context_messages(conn, session.session_pk, num_runs)

        return await self._parts.db.run(body, write=False)

    async def runs_for_summary(self, session_id: str, after: int) -> tuple[list[RunTranscript], int]:
        async def body(conn: "Conn") -> tuple[list[RunTranscript], int]:
            session = await self._session(conn, session_id)
            return await history.runs_for_summary(conn, session.session_pk, after)

        return await self._parts.db.run(body, write=False)

    # -- search -----------------------------------------------------------------------

    async def search(
        self,
        query: str,
        *,
        num_sessions: int | None = None,
        exclude_session_id: str | None = None,
        limit: int = SEARCH_RESULTS,
    ) -> list[SearchHit]:
        words = search_query.terms(query)
        if not words:
            return []

        async def body(conn: "Conn") -> list[SearchHit]:
            user_pk = await self._parts.users.user_pk(conn, self._user_id)
            if user_pk is None:
                return []
            return await search_user(conn, user_pk, words, num_sessions, exclude_session_id, limit)

        return await self._parts.db.run(body, write=False)
