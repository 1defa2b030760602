"""What the lifespan opens once and every tool reaches through its Context."""

from dataclasses import dataclass
from typing import Any

from anyio.abc import TaskGroup
from mcp.server.mcpserver import Context

from mcp_server_sessions.store import InvalidInput, SessionStore, UserSessions

from .agent.gateway import ModelGateway
from .auth.identity import token_user
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
    """The store handle of the caller's user: the one place a tool learns who it acts for."""
    context = app(ctx)
    return context.store.for_user(acting_user(context.settings, user_id))


def acting_user(settings: Settings, user_id: str | None) -> str:
    """Over stdio: the argument, else the configured user (a local, trusted client). Over HTTP the
    request's token decides (an anonymous loopback server: the configured user); a `user_id`
    argument may only repeat that user."""
    if settings.transport == "stdio":
        return user_id if user_id is not None else settings.user
    if settings.http.allow_anonymous:
        acting, who = settings.user, "This anonymous server acts as user"
    else:
        found = token_user()
        if found is None:  # the SDK's bearer middleware lets no request through without one; never guess
            raise RuntimeError("an HTTP request reached a tool without a verified token")
        acting, who = found, "This token acts as user"
    if user_id is not None and user_id != acting:
        raise InvalidInput(f"{who} {acting!r}; omit user_id (or pass {acting!r}).")
    return acting
