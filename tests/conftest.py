"""Shared fixtures: a real SQLite file per test, the server driven through a real MCP client."""

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from anthropic_double import MessagesDouble
from mcp import Client
from mcp.types import CallToolResult

from mcp_server_sessions.server.app import build_server
from mcp_server_sessions.server.settings import Settings
from mcp_server_sessions.store import SqliteStore

STORE_TOOLS = (
    "start_session",
    "record_run",
    "get_chat_history",
    "get_tool_call_history",
    "search_previous_sessions",
    "list_sessions",
    "get_session",
    "update_session",
    "delete_session",
)
READ_TOOLS = {"get_chat_history", "get_tool_call_history", "search_previous_sessions", "list_sessions", "get_session"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sessions.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    """The store under contract test; a PostgreSQL backend joins as another parameter here."""
    opened = await SqliteStore.open(db_path)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def client(db_path: Path) -> AsyncIterator[Client]:
    """An MCP client connected in-process to a server whose default user is 'alice'."""
    async with Client(build_server(Settings(db=str(db_path), user="alice"))) as connected:
        yield connected


async def call_ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured content."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.content and result.content[0].type == "text"
    return result.structured_content


async def call_error(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail cleanly; its one-sentence error message."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return error_text(result)


def error_text(result: CallToolResult) -> str:
    assert len(result.content) == 1 and result.content[0].type == "text"
    text = result.content[0].text
    assert "\n" not in text and "Traceback" not in text and "sqlite" not in text.lower(), text
    return text


def table_counts(path: Path) -> dict[str, int]:
    """Row counts of every table, to prove a failed call changed nothing."""
    with closing(sqlite3.connect(path)) as conn:
        tables = ["users", "sessions", "runs", "messages", "tool_calls", "search_index"]
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


@pytest.fixture
def double(monkeypatch: pytest.MonkeyPatch) -> Iterator[MessagesDouble]:
    """The Messages API test double, reached by the real anthropic SDK through ANTHROPIC_BASE_URL."""
    with MessagesDouble() as started:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", started.base_url)
        yield started


@pytest.fixture
async def agent_client(db_path: Path, double: MessagesDouble) -> AsyncIterator[Client]:
    """An in-process client whose server calls the test double (one SDK retry, 2 s timeout)."""
    settings = Settings(db=str(db_path), user="alice", model="claude-test", model_timeout_s=2.0, model_max_retries=1)
    async with Client(build_server(settings)) as connected:
        yield connected
