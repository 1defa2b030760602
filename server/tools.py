"""The MCP tools of the spec: each a few lines over the store."""

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from mcp_server_sessions.store import (
    AgentConfig,
    ChatHistoryPage,
    NewRun,
    NewToolCall,
    Run,
    RunMetrics,
    SearchHit,
    Session,
    SessionPage,
    SessionStore,
    ToolCallPage,
)
from mcp_server_sessions.store.limits import ID_PATTERN, MAX_QUERY_CHARS
from mcp_server_sessions.store.search_query import MAX_TERMS

from . import budget, rendering
from .context import app

SessionId = Annotated[str, Field(pattern=ID_PATTERN, description="Session id.")]
UserId = Annotated[
    str | None,
    Field(
        pattern=ID_PATTERN,
        description="Owner; omit for the server's user.",
    ),
]
Cursor = Annotated[str | None, Field(max_length=1000, description="next_cursor from the last page.")]

# destructive_hint and idempotent_hint mean nothing for a read-only tool, and idempotent_hint is false unless
# sent (MCP spec), so those are not sent.
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)


class SearchResults(BaseModel):
    results: list[SearchHit]


class DeletedSession(BaseModel):
    session_id: str
    deleted: bool


class StartedSession(Session):
    created: bool = Field(description="False if the session already existed.")


def register_tools(server: MCPServer[Any]) -> None:
    for tool, annotations in (
        (start_session, WRITES),
        (record_run, WRITES),  # idempotent only when the caller passes a run_id
        (get_chat_history, READ_ONLY),
        (get_tool_call_history, READ_ONLY),
        (search_previous_sessions, READ_ONLY),
        (list_sessions, READ_ONLY),
        (get_session, READ_ONLY),
        (update_session, WRITES.model_copy(update={"idempotent_hint": True})),
        (delete_session, WRITES.model_copy(update={"destructive_hint": True})),
    ):
        server.add_tool(tool, annotations=annotations)


async def start_session(
    ctx: Context,
    session_id: Annotated[
        str | None,
        Field(pattern=ID_PATTERN, description="Id to start or continue; omit for a new random one."),
    ] = None,
    user_id: UserId = None,
    name: Annotated[str | None, Field(max_length=512, description="Session title.")] = None,
    state: Annotated[dict[str, Any] | None, Field(description="Initial state.")] = None,
    metadata: Annotated[dict[str, Any] | None, Field(description="Free-form metadata.")] = None,
    agent: Annotated[AgentConfig | None, Field(description="How `run` calls Claude in this session.")] = None,
) -> Annotated[CallToolResult, StartedSession]:
    """Start a session, or get this user's existing one with this id unchanged (created=false)."""
    session, created = await _store(ctx).start_session(
        _user(ctx, user_id), session_id, name=name, state=state, metadata=metadata, agent=agent
    )
    return result(StartedSession(**session.model_dump(), created=created), rendering.started(session, created))


async def record_run(
    ctx: Context,
    session_id: SessionId,
    input: Annotated[str, Field(min_length=1, description="The user's message.")],
    output: Annotated[str, Field(description="The assistant's final reply.")],
    user_id: UserId = None,
    tool_calls: Annotated[list[NewToolCall] | None, Field(description="Tool calls of the turn, in order.")] = None,
    metrics: Annotated[RunMetrics | None, Field(description="Tokens, timing and model, if known.")] = None,
    run_id: Annotated[
        str | None,
        Field(pattern=ID_PATTERN, description="Your id for the turn; retries with it store the turn once."),
    ] = None,
) -> Annotated[CallToolResult, Run]:
    """Store a turn you ran yourself, starting the session if new. Pass run_id to make retries safe:
    without it each call stores a new run."""
    new_run = NewRun.recorded(input, output, tool_calls, metrics, run_id)
    run, _ = await _store(ctx).append_run(_user(ctx, user_id), session_id, new_run)
    return run_result(run, rendering.run_line(run))


async def get_chat_history(
    ctx: Context,
    session_id: SessionId,
    user_id: UserId = None,
    last_n_runs: Annotated[int | None, Field(ge=1, le=10_000, description="Only the last N runs.")] = None,
    limit: Annotated[int, Field(ge=1, le=1000, description="Messages per page.")] = 100,
    cursor: Cursor = None,
    include_tool_messages: Annotated[bool, Field(description="Include tool messages.")] = False,
) -> Annotated[CallToolResult, ChatHistoryPage]:
    """A session's messages, oldest first, a page at a time."""
    page = await _store(ctx).get_chat_history(
        _user(ctx, user_id),
        session_id,
        last_n_runs=last_n_runs,
        limit=limit,
        cursor=cursor,
        include_tool_messages=include_tool_messages,
    )
    return result(page, rendering.history(page))


async def get_tool_call_history(
    ctx: Context,
    session_id: SessionId,
    user_id: UserId = None,
    limit: Annotated[int, Field(ge=1, le=200, description="Tool calls per page.")] = 20,
    tool_name: Annotated[str | None, Field(max_length=200, description="Only calls of this tool.")] = None,
    cursor: Cursor = None,
) -> Annotated[CallToolResult, ToolCallPage]:
    """A session's tool calls, newest first."""
    page = await _store(ctx).get_tool_calls(
        _user(ctx, user_id), session_id, limit=limit, tool_name=tool_name, cursor=cursor
    )
    return result(page, rendering.tool_calls(page))


async def search_previous_sessions(
    ctx: Context,
    query: Annotated[
        str,
        Field(
            description=f"Words to look for; word forms, case and accents ignored. Only the first {MAX_TERMS} "
            f"distinct words within the first {MAX_QUERY_CHARS:,} characters are used."
        ),
    ],
    user_id: UserId = None,
    num_sessions: Annotated[
        int | None, Field(ge=1, le=100_000, description="Only the N latest updated sessions.")
    ] = None,
    exclude_session_id: Annotated[str | None, Field(pattern=ID_PATTERN, description="Session to leave out.")] = None,
    limit: Annotated[int, Field(ge=1, le=100, description="Most results.")] = 10,
) -> Annotated[CallToolResult, SearchResults]:
    """Search this user's earlier messages and tool calls; those with all the words rank first."""
    hits = await _store(ctx).search(
        _user(ctx, user_id), query, num_sessions=num_sessions, exclude_session_id=exclude_session_id, limit=limit
    )
    return result(SearchResults(results=hits), rendering.search(hits))


async def list_sessions(
    ctx: Context,
    user_id: UserId = None,
    limit: Annotated[int, Field(ge=1, le=200, description="Sessions per page.")] = 20,
    cursor: Cursor = None,
    sort_by: Annotated[Literal["updated_at", "created_at"], Field(description="Sort key.")] = "updated_at",
    order: Annotated[Literal["desc", "asc"], Field(description="desc: newest first.")] = "desc",
    name_contains: Annotated[str | None, Field(max_length=512, description="Only names containing this text.")] = None,
) -> Annotated[CallToolResult, SessionPage]:
    """List this user's sessions, a page at a time, with the total count."""
    page = await _store(ctx).list_sessions(
        _user(ctx, user_id), limit=limit, cursor=cursor, sort_by=sort_by, order=order, name_contains=name_contains
    )
    return result(page, rendering.sessions(page))


async def get_session(
    ctx: Context, session_id: SessionId, user_id: UserId = None
) -> Annotated[CallToolResult, Session]:
    """Read one session with its state, metadata, agent, summary and totals."""
    session = await _store(ctx).get_session(_user(ctx, user_id), session_id)
    return result(session, rendering.session(session))


async def update_session(
    ctx: Context,
    session_id: SessionId,
    user_id: UserId = None,
    name: Annotated[str | None, Field(max_length=512, description="New name; an empty string clears it.")] = None,
    metadata: Annotated[dict[str, Any] | None, Field(description="Replaces the metadata.")] = None,
    state: Annotated[dict[str, Any] | None, Field(description="State changes.")] = None,
    merge_state: Annotated[
        bool, Field(description="true: merge top-level keys into the state; false: replace it.")
    ] = True,
    agent: Annotated[AgentConfig | None, Field(description="Settings to change, field by field.")] = None,
) -> Annotated[CallToolResult, Session]:
    """Change a session's name, metadata, state or agent settings; what you omit stays."""
    session = await _store(ctx).update_session(
        _user(ctx, user_id),
        session_id,
        name=name,
        metadata=metadata,
        state=state,
        merge_state=merge_state,
        agent=agent,
    )
    return result(session, rendering.session(session))


async def delete_session(
    ctx: Context, session_id: SessionId, user_id: UserId = None
) -> Annotated[CallToolResult, DeletedSession]:
    """Delete a session with all its runs, messages and tool calls."""
    await _store(ctx).delete_session(_user(ctx, user_id), session_id)
    return result(DeletedSession(session_id=session_id, deleted=True), f"Deleted session {session_id!r}.")


def _store(ctx: Context) -> SessionStore:
    return app(ctx).store


def _user(ctx: Context, user_id: str | None) -> str:
    return user_id if user_id is not None else app(ctx).settings.user


def result(model: BaseModel, text: str) -> CallToolResult:
    """A tool's answer: the short text and the structured content."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=model.model_dump(mode="json")
    )


def run_result(run: Run, text: str) -> CallToolResult:
    """A Run as a tool's answer, cut to RESULT_BUDGET_BYTES (a run holds up to 16 MB; its parts are read
    whole with get_chat_history and get_tool_call_history)."""
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=budget.fit_run(run.model_dump(mode="json"))
    )
