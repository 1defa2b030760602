"""The tools of paused runs: `continue_run` (the client's tool results back to the model) and `cancel_run`.

A `run` given client tools (`tools`) pauses when the model calls one; these answer it later, from any
server process on the same database.
"""

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from mcp_server_sessions.store import Run
from mcp_server_sessions.store.limits import ID_PATTERN, MAX_TOOL_CALLS_PER_RUN

from .. import rendering
from ..agent.continuation import continue_turn
from ..agent.paused import ToolResult
from ..context import app, user_sessions
from .claude import run_text, streamed_progress
from .common import UserId, run_result

RunId = Annotated[str, Field(pattern=ID_PATTERN, description="The paused run's run_id.")]


async def continue_run(
    ctx: Context,
    run_id: RunId,
    tool_results: Annotated[
        list[ToolResult],
        Field(
            min_length=1,
            max_length=MAX_TOOL_CALLS_PER_RUN,
            description="One result per requirement of the run.",
        ),
    ],
    user_id: UserId = None,
) -> Annotated[CallToolResult, Run]:
    """Resume a paused run with its client tools' results; it completes or pauses again."""
    context = app(ctx)
    sessions = user_sessions(ctx, user_id)
    progress = streamed_progress(ctx)
    run = await continue_turn(sessions, context.gateway, run_id, tool_results, progress, lease_s=context.store.lease_s)
    return run_result(run, run_text(run))


async def cancel_run(ctx: Context, run_id: RunId, user_id: UserId = None) -> Annotated[CallToolResult, Run]:
    """End a paused run as cancelled."""
    run = await user_sessions(ctx, user_id).cancel_run(run_id)
    return run_result(run, rendering.run_line(run))
