"""The MCP tools of the spec, each a few lines over the caller's store handle."""

from typing import Any

from mcp.server.mcpserver import MCPServer

from ..errors import expected_failures
from .claude import run, summarize_session
from .common import MODEL_CALL, READ_ONLY, WRITES
from .fork import fork_session
from .history import get_chat_history, get_tool_call_history, record_run, search_previous_sessions
from .paused_runs import cancel_run, continue_run
from .sessions import delete_session, get_session, list_sessions, start_session, update_session

STORE_TOOLS = (
    (start_session, WRITES),
    (record_run, WRITES),  # idempotent only when the caller passes a run_id
    (get_chat_history, READ_ONLY),
    (get_tool_call_history, READ_ONLY),
    (search_previous_sessions, READ_ONLY),
    (list_sessions, READ_ONLY),
    (get_session, READ_ONLY),
    (update_session, WRITES.model_copy(update={"idempotent_hint": True})),
    (delete_session, WRITES.model_copy(update={"destructive_hint": True})),
    (fork_session, WRITES),
    (cancel_run, WRITES),
)
MODEL_TOOLS = ((run, MODEL_CALL), (summarize_session, MODEL_CALL), (continue_run, MODEL_CALL))


def register_tools(server: MCPServer[Any]) -> None:
    """Every tool, in the order tools/list shows them, behind the one error boundary."""
    for tool, annotations in STORE_TOOLS + MODEL_TOOLS:
        server.add_tool(expected_failures(tool), annotations=annotations)
