"""The tools that record turns and read them back: history, tool calls, search."""

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from mcp_server_sessions.store import (
    ChatHistoryPage,
    NewRun,
    NewToolCall,
    NewWorkflowStep,
    Run,
    RunMetrics,
    SearchHit,
    ToolCallPage,
)
from mcp_server_sessions.store.limits import (
    HISTORY_PAGE,
    ID_PATTERN,
    MAX_HISTORY_PAGE,
    MAX_LAST_N_RUNS,
    MAX_NUM_SESSIONS,
    MAX_QUERY_CHARS,
    MAX_SEARCH_RESULTS,
    MAX_STEPS_PER_RUN,
    MAX_TOOL_CALL_PAGE,
    MAX_TOOL_NAME_CHARS,
    SEARCH_RESULTS,
    TOOL_CALL_PAGE,
)
from mcp_server_sessions.store.search_query import MAX_TERMS

from .. import rendering
from ..attachments import Attachments
from ..context import user_sessions
from .common import (
    Cursor,
    IncludeMemberRuns,
    SessionId,
    SessionTypeParam,
    TeamId,
    UserId,
    WorkflowId,
    result,
    run_result,
    session_kind,
)


class SearchResults(BaseModel):
    results: list[SearchHit]


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
    session_type: SessionTypeParam = None,
    agent_id: Annotated[
        str | None, Field(pattern=ID_PATTERN, description="The agent that ran the turn (and the new session's).")
    ] = None,
    team_id: TeamId = None,
    workflow_id: WorkflowId = None,
    parent_run_id: Annotated[
        str | None, Field(pattern=ID_PATTERN, description="A team member's turn: the leader's run it served.")
    ] = None,
    steps: Annotated[
        list[NewWorkflowStep] | None, Field(max_length=MAX_STEPS_PER_RUN, description="Workflow steps, in order.")
    ] = None,
    attachments: Attachments = None,
) -> Annotated[CallToolResult, Run]:
    """Store a turn you ran yourself, starting the session if new (with session_type and the ids). Pass
    run_id to make retries safe: without it each call stores a new run."""
    new_run = NewRun.recorded(
        input,
        output,
        tool_calls,
        metrics,
        run_id,
        steps=list(steps or []),
        parent_run_id=parent_run_id,
        agent_id=agent_id,
    )
    new_run.attachments = list(attachments or [])
    kind = session_kind(session_type, agent_id, team_id, workflow_id)
    run, _ = await user_sessions(ctx, user_id).append_run(session_id, new_run, kind=kind)
    return run_result(run, rendering.run_line(run))


async def get_chat_history(
    ctx: Context,
    session_id: SessionId,
    user_id: UserId = None,
    last_n_runs: Annotated[int | None, Field(ge=1, le=MAX_LAST_N_RUNS, description="Only the last N runs.")] = None,
    limit: Annotated[int, Field(ge=1, le=MAX_HISTORY_PAGE, description="Messages per page.")] = HISTORY_PAGE,
    cursor: Cursor = None,
    include_tool_messages: Annotated[bool, Field(description="Include tool messages.")] = False,
    include_member_runs: IncludeMemberRuns = False,
) -> Annotated[CallToolResult, ChatHistoryPage]:
    """A session's messages, oldest first, a page at a time."""
    page = await user_sessions(ctx, user_id).get_chat_history(
        session_id,
        last_n_runs=last_n_runs,
        limit=limit,
        cursor=cursor,
        include_tool_messages=include_tool_messages,
        include_member_runs=include_member_runs,
    )
    return result(page, rendering.history(page))


async def get_tool_call_history(
    ctx: Context,
    session_id: SessionId,
    user_id: UserId = None,
    limit: Annotated[int, Field(ge=1, le=MAX_TOOL_CALL_PAGE, description="Tool calls per page.")] = TOOL_CALL_PAGE,
    tool_name: Annotated[
        str | None, Field(max_length=MAX_TOOL_NAME_CHARS, description="Only calls of this tool.")
    ] = None,
    cursor: Cursor = None,
    include_member_runs: IncludeMemberRuns = False,
) -> Annotated[CallToolResult, ToolCallPage]:
    """A session's tool calls, newest first."""
    page = await user_sessions(ctx, user_id).get_tool_calls(
        session_id, limit=limit, tool_name=tool_name, cursor=cursor, include_member_runs=include_member_runs
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
        int | None, Field(ge=1, le=MAX_NUM_SESSIONS, description="Only the N latest updated sessions.")
    ] = None,
    exclude_session_id: Annotated[str | None, Field(pattern=ID_PATTERN, description="Session to leave out.")] = None,
    limit: Annotated[int, Field(ge=1, le=MAX_SEARCH_RESULTS, description="Most results.")] = SEARCH_RESULTS,
) -> Annotated[CallToolResult, SearchResults]:
    """Search this user's earlier messages and tool calls; those with all the words rank first."""
    hits = await user_sessions(ctx, user_id).search(
        query, num_sessions=num_sessions, exclude_session_id=exclude_session_id, limit=limit
    )
    return result(SearchResults(results=hits), rendering.search(hits))
