"""What the MCP tools share: parameter types, annotations, and the shape of an answer."""

from typing import Annotated

from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from mcp_server_sessions.store import Run, SessionKind
from mcp_server_sessions.store.limits import ID_PATTERN, MAX_CURSOR_CHARS
from mcp_server_sessions.store.models import SessionType

from .. import budget

SessionId = Annotated[str, Field(pattern=ID_PATTERN, description="Session id.")]
UserId = Annotated[
    str | None,
    Field(
        pattern=ID_PATTERN,
        description="Owner; omit for the server's user.",
    ),
]
Cursor = Annotated[str | None, Field(max_length=MAX_CURSOR_CHARS, description="next_cursor from the last page.")]
SessionTypeParam = Annotated[SessionType | None, Field(description="agent (default), team or workflow.")]
AgentId = Annotated[str | None, Field(pattern=ID_PATTERN, description="Agent id.")]
TeamId = Annotated[str | None, Field(pattern=ID_PATTERN, description="Team id.")]
WorkflowId = Annotated[str | None, Field(pattern=ID_PATTERN, description="Workflow id.")]
IncludeMemberRuns = Annotated[bool, Field(description="Include team members' runs, not only the leader's.")]


def session_kind(
    session_type: SessionType | None, agent_id: str | None, team_id: str | None, workflow_id: str | None
) -> SessionKind:
    """The session type and ids a call names, for starting a session or filtering a listing."""
    return SessionKind(session_type, agent_id, team_id, workflow_id)


# destructive_hint and idempotent_hint mean nothing for a read-only tool, and idempotent_hint is false unless
# sent (MCP spec), so those are not sent.
READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
MODEL_CALL = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)


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
