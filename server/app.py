"""Building the server: the store opens once in the lifespan and reaches tools through the context."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from mcp.server.mcpserver import MCPServer

from mcp_server_sessions.store import SessionStore, SqliteStore

from .errors import SessionsServer
from .settings import Settings
from .tools import register_tools

INSTRUCTIONS = (
    "Persistent conversation sessions. Start or continue a session with start_session, record each "
    "turn you ran with record_run, read it back with get_chat_history and get_tool_call_history, "
    "find earlier conversations with search_previous_sessions, and manage sessions with "
    "list_sessions, get_session, update_session and delete_session."
)


@dataclass(frozen=True)
class AppContext:
    store: SessionStore
    settings: Settings


def build_server(settings: Settings) -> MCPServer[Any]:
    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[AppContext]:
        store = await SqliteStore.open(settings.db_path)
        try:
            yield AppContext(store=store, settings=settings)
        finally:
            await store.close()

    server = SessionsServer(
        "mcp-server-sessions",
        instructions=INSTRUCTIONS,
        version=_version(),
        lifespan=lifespan,
        log_level=settings.log_level,  # type: ignore[arg-type]
    )
    register_tools(server)
    return server


def serve(settings: Settings) -> None:
    build_server(settings).run("stdio")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mcp-server-sessions")
    except PackageNotFoundError:
        return "0.0.0"
