"""The tools that start, list, read, change and delete sessions."""

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from mcp_server_sessions.store import AgentConfig, Session, SessionPage
from mcp_server_sessions.store.limits import ID_PATTERN, MAX_NAME_CHARS, MAX_SESSION_PAGE, SESSION_PAGE
from mcp_server_sessions.store.models import SessionType

from .. import rendering
from ..context import user_sessions
from .common import (
    AgentId,
    Cursor,
    SessionId,
    SessionTypeParam,
    TeamId,
    UserId,
    WorkflowId,
    result,
    session_kind,
)


class DeletedSession(BaseModel):
    session_id: str
    deleted: bool


class StartedSession(Session):
    created: bool = Field(description="False if the session already existed.")


async def start_session(
    ctx: Context,
    session_id: Annotated[
        str | None,
        Field(pattern=ID_PATTERN, description="Id to start or continue; omit for a new random one."),
    ] = None,
    user_id: UserId = None,
    name: Annotated[str | None, Field(max_length=MAX_NAME_CHARS, description="Session title.")] = None,
    state: Annotated[dict[str, Any] | None, Field(description="Initial state.")] = None,
    metadata: Annotated[dict[str, Any] | None, Field(description="Free-form metadata.")] = None,
    agent: Annotated[AgentConfig | None, Field(description="How `run` calls Claude in this session.")] = None,
    session_type: SessionTypeParam = None,
    agent_id: AgentId = None,
    team_id: TeamId = None,
    workflow_id: WorkflowId = None,
) -> Annotated[CallToolResult, StartedSession]:
    """Start a session, or get this user's existing one with this id unchanged (created=false).
    session_type and the ids are set when the session starts; another session_type than an existing
    session's is refused."""
    kind = session_kind(session_type, agent_id, team_id, workflow_id)
    session, created = await user_sessions(ctx, user_id).start_session(
        session_id, name=name, state=state, metadata=metadata, agent=agent, kind=kind
    )
    return result(StartedSession(**session.model_dump(), created=created), rendering.started(session, created))


async def list_sessions(
    ctx: Context,
    user_id: UserId = None,
    limit: Annotated[int, Field(ge=1, le=MAX_SESSION_PAGE, description="Sessions per page.")] = SESSION_PAGE,
    cursor: Cursor = None,
    sort_by: Annotated[Literal["updated_at", "created_at"], Field(description="Sort key.")] = "updated_at",
    order: Annotated[Literal["desc", "asc"], Field(description="desc: newest first.")] = "desc",
    name_contains: Annotated[
        str | None, Field(max_length=MAX_NAME_CHARS, description="Only names containing this text.")
    ] = None,
    session_type: Annotated[SessionType | None, Field(description="Only sessions of this type.")] = None,
    agent_id: Annotated[str | None, Field(pattern=ID_PATTERN, description="Only this agent's sessions.")] = None,
    team_id: Annotated[str | None, Field(pattern=ID_PATTERN, description="Only this team's sessions.")] = None,
    workflow_id: Annotated[str | None, Field(pattern=ID_PATTERN, description="Only this workflow's sessions.")] = None,
) -> Annotated[CallToolResult, SessionPage]:
    """List this user's sessions, a page at a time, with the total count; the filters combine."""
    page = await user_sessions(ctx, user_id).list_sessions(
        limit=limit,
        cursor=cursor,
        sort_by=sort_by,
        order=order,
        name_contains=name_contains,
        kind=session_kind(session_type, agent_id, team_id, workflow_id),
    )
    return result(page, rendering.sessions(page))


async def get_session(
    ctx: Context, session_id: SessionId, user_id: UserId = None
) -> Annotated[CallToolResult, Session]:
    """Read one session with its state, metadata, agent, summary and totals."""
    session = await user_sessions(ctx, user_id).get_session(session_id)
    return result(session, rendering.session(session))


async def update_session(
    ctx: Context,
    session_id: SessionId,
    user_id: UserId = None,
    name: Annotated[
        str | None, Field(max_length=MAX_NAME_CHARS, description="New name; an empty string clears it.")
    ] = None,
    metadata: Annotated[dict[str, Any] | None, Field(description="Replaces the metadata.")] = None,
    state: Annotated[dict[str, Any] | None, Field(description="State changes.")] = None,
    merge_state: Annotated[
        bool, Field(description="true: merge top-level keys into the state; false: replace it.")
    ] = True,
    agent: Annotated[AgentConfig | None, Field(description="Settings to change, field by field.")] = None,
) -> Annotated[CallToolResult, Session]:
    """Change a session's name, metadata, state or agent settings; what you omit stays."""
    session = await user_sessions(ctx, user_id).update_session(
        session_id, name=name, metadata=metadata, state=state, merge_state=merge_state, agent=agent
    )
    return result(session, rendering.session(session))


async def delete_session(
    ctx: Context, session_id: SessionId, user_id: UserId = None
) -> Annotated[CallToolResult, DeletedSession]:
    """Delete a session with all its runs, messages and tool calls."""
    await user_sessions(ctx, user_id).delete_session(session_id)
    return result(DeletedSession(session_id=session_id, deleted=True), f"Deleted session {session_id!r}.")
