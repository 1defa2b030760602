"""The tool that forks a session: a new session holding a copy of another's runs up to a point."""

from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from mcp_server_sessions.store import Session
from mcp_server_sessions.store.limits import ID_PATTERN

from .. import rendering
from ..context import user_sessions
from .common import SessionId, UserId, result


async def fork_session(
    ctx: Context,
    session_id: SessionId,
    new_session_id: Annotated[
        str | None,
        Field(pattern=ID_PATTERN, description="New session id; omit for a random one."),
    ] = None,
    up_to_run_id: Annotated[
        str | None,
        Field(pattern=ID_PATTERN, description="Last run to copy; omit for every completed run."),
    ] = None,
    user_id: UserId = None,
) -> Annotated[CallToolResult, Session]:
    """Copy a session's completed runs (up to up_to_run_id), state, metadata and agent settings into a new
    session, to try another path; metadata.forked_from names the source, which stays unchanged."""
    fork = await user_sessions(ctx, user_id).fork_session(session_id, new_session_id, up_to_run_id=up_to_run_id)
    forked_from = fork.metadata["forked_from"]
    point = f"up to run {forked_from['run_id']!r}" if forked_from["run_id"] else "with no runs"
    return result(fork, f"Forked {session_id!r} {point} into {fork.session_id!r}.\n{rendering.session(fork)}")
