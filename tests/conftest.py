"""Shared fixtures: the store under test on each backend (a real SQLite file per test, and a database
on a throwaway PostgreSQL cluster), the server driven through a real MCP client.

A test that uses `store`, `client`, `agent_client` or `sessions_db` runs once per backend (ids
`[sqlite]`, `[postgres]`), unless it names `db_path` itself (it reads the SQLite file beside the
store) or is marked `sqlite_only`.
"""

import asyncio
import inspect
import os
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_server_sessions.server.app import build_server
from mcp_server_sessions.server.settings import Settings
from mcp_server_sessions.store import SessionStore, SqliteStore
from tests.anthropic_double import MessagesDouble
from tests.postgres_cluster import Cluster, start_cluster

BACKENDS = ("sqlite", "postgres")
_BACKEND_FIXTURES = {"store", "client", "agent_client", "sessions_db"}
_TABLES = "users, sessions, runs, messages, tool_calls, attachments"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: runs on the SQLite store only (it reads the file itself)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test fails the run: a test that needs a component (PostgreSQL, Node) must run there."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if os.environ.get("CI") and skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter is not None:
            reporter.write_line(f"CI is set and {len(skipped)} test(s) were skipped: failing the run.", red=True)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not _BACKEND_FIXTURES & set(metafunc.fixturenames):
        return
    own = inspect.signature(metafunc.function).parameters
    sqlite_only = "db_path" in own or metafunc.definition.get_closest_marker("sqlite_only") is not None
    metafunc.parametrize("backend", ["sqlite"] if sqlite_only else list(BACKENDS))


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """One cluster for the whole run, started the first time a test needs it."""
    yield from start_cluster()


def _in_thread(coroutine: Any) -> Any:
    """Run a coroutine to completion on its own loop in a thread (sync fixtures run beside the tests' loop)."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(coroutine)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@pytest.fixture(scope="session")
def postgres_url(postgres_cluster: Cluster) -> str:
    """A database of the cluster, migrated once; each test starts from it emptied (`sessions_db`)."""
    import asyncpg

    from mcp_server_sessions.store.postgres_pool import open_pool

    async def create() -> None:
        admin = await asyncpg.connect(postgres_cluster.url())
        try:
            await admin.execute("CREATE DATABASE contract")
        finally:
            await admin.close()
        pool = await open_pool(postgres_cluster.url("contract"))
        await pool.close()

    _in_thread(create())
    return postgres_cluster.url("contract")


def empty_postgres(url: str) -> None:
    """Every row of every user gone (the schema and the cursor secret stay)."""
    import asyncpg

    async def truncate() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("SET lock_timeout = '10s'")
            await conn.execute(f"TRUNCATE {_TABLES} RESTART IDENTITY")
        finally:
            await conn.close()

    _in_thread(truncate())


@pytest.fixture
def sessions_db(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What `--db` names for this test: a new SQLite file, or the emptied PostgreSQL database."""
    if backend == "sqlite":
        return str(tmp_path / "sessions.db")
    url: str = request.getfixturevalue("postgres_url")
    empty_postgres(url)
    return url


async def open_test_store(db: str, **options: Any) -> SessionStore:
    """The store `db` names, as the server opens it."""
    if "://" not in db:
        return await SqliteStore.open(db, **options)
    from mcp_server_sessions.store.postgres import PostgresStore

    return await PostgresStore.open(db, **options)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The SQLite file of a test that reads the file itself (such a test runs on SQLite only)."""
    return tmp_path / "sessions.db"


@pytest.fixture
async def store(sessions_db: str) -> AsyncIterator[SessionStore]:
    """The store under contract test, on each backend."""
    opened = await open_test_store(sessions_db)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def client(sessions_db: str) -> AsyncIterator[Client]:
    """An MCP client connected in-process to a server whose default user is 'alice'."""
    async with Client(build_server(Settings(db=sessions_db, user="alice"))) as connected:
        yield connected


@pytest.fixture
def double(monkeypatch: pytest.MonkeyPatch) -> Iterator[MessagesDouble]:
    """The Messages API test double, reached by the real anthropic SDK through ANTHROPIC_BASE_URL."""
    with MessagesDouble() as started:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", started.base_url)
        yield started


@pytest.fixture
async def agent_client(sessions_db: str, double: MessagesDouble) -> AsyncIterator[Client]:
    """An in-process client whose server calls the test double (one SDK retry, 2 s timeout)."""
    settings = Settings(db=sessions_db, user="alice", model="claude-test", model_timeout_s=2.0, model_max_retries=1)
    async with Client(build_server(settings)) as connected:
        yield connected
