"""Shared fixtures: a real SQLite file per test, the server driven through a real MCP client."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mcp import Client

from mcp_server_sessions.server.app import build_server
from mcp_server_sessions.server.settings import Settings
from mcp_server_sessions.store import SqliteStore
from tests.anthropic_double import MessagesDouble


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
