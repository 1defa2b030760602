"""Building the server: the store opens once in the lifespan and reaches tools through the context."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

from mcp_server_sessions.store import SessionStore, StoreError
from mcp_server_sessions.store.opening import open_store

from .agent.gateway import ModelGateway
from .attachments import register_attachment_resource
from .context import AppContext
from .errors import SessionsServer
from .prompts import register_prompts
from .resources import register_resources
from .schemas import compact_tools
from .settings import Settings
from .stdio import stdio_transport
from .tools import register_tools

logger = logging.getLogger(__name__)

INSTRUCTIONS = (
    "Persistent conversation sessions. Start or continue a session with start_session; send a message to "
    "Claude inside a session with run, or record each turn you ran yourself with record_run; condense a "
    "session with summarize_session; read it back with get_chat_history and get_tool_call_history, "
    "find earlier conversations with search_previous_sessions, and manage sessions with "
    "list_sessions, get_session, update_session and delete_session; branch one with fork_session. A run given "
    "client tools pauses when Claude calls one: answer with continue_run, or end it with cancel_run. "
    "Each session is also the resource "
    "session://{session_id} (its transcript as markdown; resources/list shows your recent ones), an attachment's "
    "bytes are the resource its uri names, and the "
    "prompt resume_session hands your own model a session's summary, state and last runs to continue it."
)


def build_server(
    settings: Settings,
    store: SessionStore | None = None,
    *,
    auth: AuthSettings | None = None,
    token_verifier: TokenVerifier | None = None,
) -> MCPServer[Any]:
    """The server; it opens the store in its lifespan unless one is given (and then closes it).

    Over HTTP, `auth` and `token_verifier` make the SDK require a bearer token on every request.
    """

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[AppContext]:
        opened = store or await open_configured_store(settings)
        gateway = ModelGateway(timeout_s=settings.model_timeout_s, max_retries=settings.model_max_retries)
        try:
            async with anyio.create_task_group() as background:
                background.start_soon(gateway.warm_up)
                background.start_soon(recover_interrupted_runs, opened)
                yield AppContext(store=opened, settings=settings, gateway=gateway, background=background)
                background.cancel_scope.cancel()
        finally:
            await gateway.close()
            await opened.close()

    server = SessionsServer(
        "mcp-server-sessions",
        instructions=INSTRUCTIONS,
        version=_version(),
        lifespan=lifespan,
        log_level=settings.log_level,  # type: ignore[arg-type]
        auth=auth,
        token_verifier=token_verifier,
    )
    register_tools(server)
    register_resources(server)
    register_attachment_resource(server)
    register_prompts(server)
    # MCPServer has no public handle on its registered tools; compacting them in place keeps the SDK's
    # own listing and argument validation, now with the smaller schemas.
    compact_tools(server._tool_manager.list_tools())
    return server


async def recover_interrupted_runs(store: SessionStore) -> None:
    """Every `lease_s`, mark `error` the runs whose lease expired (their server stopped renewing it,
    whichever replica it was) without waiting for a restart; a failure is logged and tried again."""
    while True:
        await anyio.sleep(store.lease_s)
        try:
            marked = await store.recover_interrupted_runs()
        except StoreError as problem:
            logger.warning("could not mark interrupted runs error: %s", problem)
            continue
        if marked:
            logger.info("marked %d interrupted run(s) error", marked)


async def open_configured_store(settings: Settings) -> SessionStore:
    """The store `--db` names: a SQLite file (or :memory:), or a PostgreSQL database with the pool flags."""
    return await open_store(settings.db_path, settings.pool)


def serve(settings: Settings) -> None:
    anyio.run(_serve_stdio, settings)


async def _serve_stdio(settings: Settings) -> None:
    # Opened before the transport starts, so a bad --db fails at once, not at the first request.
    store = await open_configured_store(settings)
    session_loop = build_server(settings, store)._lowlevel_server  # the SDK's own stdio reader drops bad lines
    async with stdio_transport() as (read_stream, write_stream):
        await session_loop.run(read_stream, write_stream, session_loop.create_initialization_options())


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mcp-server-sessions")
    except PackageNotFoundError:
        return "0.0.0"
