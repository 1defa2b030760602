"""TEMPORARY adapter: the user-bound handle over SqliteStore's user-first methods (replaced in the reshape)."""

from typing import TYPE_CHECKING, Any

from .limits import HISTORY_PAGE, SEARCH_RESULTS, SESSION_PAGE, TOOL_CALL_PAGE
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
from .protocol import Order, SortKey

if TYPE_CHECKING:
    from .sqlite import SqliteStore


class SqliteUserSessions:
    def __init__(self, store: "SqliteStore", user_id: str) -> None:
        self._store = store
        self._user_id = user_id

    @property
    def user_id(self) -> str:
        return self._user_id

    async def start_session(
        self,
        session_id: str | None,
        *,
        name: str | None = None,
        state: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        agent: AgentConfig | None = None,
    ) -> tuple[Session, bool]:
        return await self._store.start_session(
            self._user_id, session_id, name=name, state=state, metadata=metadata, agent=agent
        )

    async def get_session(self, session_id: str) -> Session:
        return await self._store.get_session(self._user_id, session_id)

    async def list_sessions(
        self,
        *,
        limit: int = SESSION_PAGE,
        cursor: str | None = None,
        sort_by: SortKey = "updated_at",
        order: Order = "desc",
        name_contains: str | None = None,
    ) -> SessionPage:
        return await self._store.list_sessions(
            self._user_id, limit=limit, cursor=cursor, sort_by=sort_by, order=order, name_contains=name_contains
        )

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
        return await self._store.update_session(
            self._user_id, session_id, name=name, metadata=metadata, state=state, merge_state=merge_state, agent=agent
        )

    async def delete_session(self, session_id: str) -> None:
        await self._store.delete_session(self._user_id, session_id)

    async def append_run(self, session_id: str, run: NewRun, *, finishing: bool = False) -> tuple[Run, bool]:
        return await self._store.append_run(self._user_id, session_id, run, finishing=finishing)

    async def begin_run(self, session_id: str, run_id: str, input: str) -> Run:
        return await self._store.begin_run(self._user_id, session_id, run_id, input)

    async def get_chat_history(
        self,
        session_id: str,
        *,
        last_n_runs: int | None = None,
        limit: int = HISTORY_PAGE,
        cursor: str | None = None,
        include_tool_messages: bool = False,
    ) -> ChatHistoryPage:
        return await self._store.get_chat_history(
            self._user_id,
            session_id,
            last_n_runs=last_n_runs,
            limit=limit,
            cursor=cursor,
            include_tool_messages=include_tool_messages,
        )

    async def get_tool_calls(
        self, session_id: str, *, limit: int = TOOL_CALL_PAGE, tool_name: str | None = None, cursor: str | None = None
    ) -> ToolCallPage:
        return await self._store.get_tool_calls(
            self._user_id, session_id, limit=limit, tool_name=tool_name, cursor=cursor
        )

    async def search(
        self,
        query: str,
        *,
        num_sessions: int | None = None,
        exclude_session_id: str | None = None,
        limit: int = SEARCH_RESULTS,
    ) -> list[SearchHit]:
        return await self._store.search(
            self._user_id, query, num_sessions=num_sessions, exclude_session_id=exclude_session_id, limit=limit
        )

    async def context_messages(self, session_id: str, num_runs: int) -> list[ContextMessage]:
        return await self._store.context_messages(self._user_id, session_id, num_runs)

    async def runs_for_summary(self, session_id: str, after: int) -> tuple[list[RunTranscript], int]:
        return await self._store.runs_for_summary(self._user_id, session_id, after)

    async def set_summary(self, session_id: str, summary: SessionSummary) -> Session:
        return await self._store.set_summary(self._user_id, session_id, summary)
