"""What the lifespan opens once and every tool reaches through its Context."""

from dataclasses import dataclass
from typing import Any

from anyio.abc import TaskGroup
from mcp.server.mcpserver import Context

from mcp_server_sessions.store import SessionStore, UserSessions

from .agent.gateway import ModelGateway
from .settings import Settings


@dataclass(frozen=True)
class AppContext:
    store: SessionStore
    settings: Settings
    gateway: ModelGateway
    background: TaskGroup
    """Work that must not delay a tool's answer (automatic summaries); cancelled at shutdown."""


def app(ctx: Context[Any, Any]) -> AppContext:
    context: AppContext = ctx.request_context.lifespan_context
    return context


def user_sessions(ctx: Context[Any, Any], user_id: str | None) -> UserSessions:
    """The store handle of the caller's user: the one place a tool learns who it acts for.

    Over stdio that is the `user_id` argument, else the configured user (a local, trusted client).
    """
    context = app(ctx)
    return context.store.for_user(user_id if user_id is not None else context.settings.user)
