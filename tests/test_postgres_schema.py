"""The PostgreSQL groundwork on a real, throwaway cluster (tests/postgres_cluster.py): opening a pool
from a URL with each way of failing told in one sentence, versioned migrations under an advisory lock,
and the text search configuration that stems word forms and ignores case and accents."""

import itertools
from collections.abc import AsyncIterator, Iterator

import anyio
import asyncpg
import pytest

from mcp_server_sessions.store import MigrationFailed, SchemaTooNew, StoreUnavailable
from mcp_server_sessions.store.postgres_pool import open_pool
from mcp_server_sessions.store.postgres_schema import (
    LATEST_VERSION,
    MIGRATION_LOCK,
    MIGRATIONS,
    PgMigration,
    migrate,
)
from tests.http_server import free_port
from tests.postgres_cluster import Cluster, start_cluster

pytestmark = pytest.mark.anyio
_names = itertools.count()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    yield from start_cluster()


@pytest.fixture
async def database(cluster: Cluster) -> AsyncIterator[str]:
    """The URL of a new, empty database of the cluster, dropped afterwards."""
    name = f"test_{next(_names)}"
    yield await cluster.create_database(name)
    await cluster.drop_database(name)


async def test_a_new_database_is_migrated_to_the_latest_version_once(database: str) -> None:
    pool = await open_pool(database)
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == LATEST_VERSION
            tables = {
                r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
            }
            assert {"users", "sessions", "runs", "messages", "tool_calls", "secrets", "schema_migrations"} <= tables
            assert len(await conn.fetchval("SELECT value FROM secrets WHERE name = 'cursor'")) == 32
            assert await migrate(conn) == LATEST_VERSION  # again: nothing to do
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(MIGRATIONS)
    finally:
        await pool.close()


async def test_replicas_starting_at_once_migrate_once(database: str) -> None:
    pools: list[asyncpg.Pool] = []

    async def start() -> None:
        pools.append(await open_pool(database))

    try:
        async with anyio.create_task_group() as group:
            for _ in range(4):
                group.start_soon(start)
        assert len(pools) == 4
        async with pools[0].acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(MIGRATIONS)
            assert await conn.fetchval("SELECT count(*) FROM secrets") == 1
    finally:
        for pool in pools:
            await pool.close()


async def test_a_newer_schema_is_refused(database: str) -> None:
    pool = await open_pool(database)
    async with pool.acquire() as conn:
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, 'from the future')", 99)
    await pool.close()
    with pytest.raises(SchemaTooNew, match="newer than this server's"):
        await open_pool(database)


async def test_a_failing_migration_leaves_the_database_as_it_was(database: str) -> None:
    broken = (
        *MIGRATIONS,
        PgMigration(LATEST_VERSION + 1, "broken", ("CREATE TABLE half_done (x int)", "SELECT no_such_function()")),
    )
    pool = await open_pool(database)
    other = await asyncpg.connect(database)
    try:
        async with pool.acquire() as conn:
            broken_version = LATEST_VERSION + 1
            with pytest.raises(MigrationFailed, match=rf"schema migration {broken_version} \(broken\) .* rolled back"):
                await migrate(conn, broken)
            assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == LATEST_VERSION
            assert await conn.fetchval("SELECT to_regclass('half_done')") is None
            # The migration lock was let go while its connection lives on in the pool.
            assert await other.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK)
    finally:
        await other.close()
        await pool.close()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://sessions@127.0.0.1:{port}/postgres", "Cannot connect to PostgreSQL at 127.0.0.1:{port}"),
        ("postgresql://nobody@127.0.0.1:{cluster}/postgres", "refused the login"),
        ("postgresql://sessions@127.0.0.1:{cluster}/no_such_db", "does not exist"),
        ("postgresql://sessions:s3cret@127.0.0.1:{cluster}/db?sslmode=bogus", "not a usable PostgreSQL URL"),
    ],
    ids=["refused", "unknown user", "missing database", "bad parameter"],
)
async def test_each_way_of_failing_at_start_is_one_sentence(cluster: Cluster, url: str, says: str) -> None:
    closed = free_port()
    with pytest.raises(StoreUnavailable) as raised:
        await open_pool(url.format(port=closed, cluster=cluster.port))
    sentence = str(raised.value)
    assert says.format(port=closed) in sentence
    assert "\n" not in sentence and "s3cret" not in sentence and sentence.endswith(".")


async def test_search_configuration_stems_word_forms_and_ignores_case_and_accents(database: str) -> None:
    pool = await open_pool(database)
    try:
        async with pool.acquire() as conn:
            matches = """SELECT to_tsvector('sessions_english', $1) @@ plainto_tsquery('sessions_english', $2)"""
            assert await conn.fetchval(matches, "A kayak trip on the Fjords", "kayaking fjord")
            assert await conn.fetchval(matches, "Lunch at the CAFÉ in Zürich", "cafe zurich")
            assert not await conn.fetchval(matches, "A kayak trip on the fjords", "canoe")
    finally:
        await pool.close()
