"""The server on PostgreSQL as an operator starts it: `--db postgresql://...` over HTTP with the pool
flags and libpq URL parameters, behind-PgBouncer mode (no prepared-statement cache), and each way of
failing at start told in one sentence by the real command."""

import itertools
import subprocess

import anyio
import asyncpg
import pytest

from tests.helpers import call_ok
from tests.http_server import add_token, free_port, http_client, server_script, start_http_server
from tests.postgres_cluster import Cluster

pytestmark = pytest.mark.anyio
_names = itertools.count()


async def new_database(cluster: Cluster) -> str:
    return await cluster.create_database(f"cli_{next(_names)}")


@pytest.mark.parametrize("flags", [(), ("--no-statement-cache", "--pool-min", "1", "--pool-max", "2")])
async def test_http_server_on_postgresql_with_pool_flags_and_url_parameters(
    tmp_path: anyio.Path, postgres_cluster: Cluster, flags: tuple[str, ...]
) -> None:
    url = await new_database(postgres_cluster) + "?sslmode=disable&application_name=sessions-test"
    tokens = tmp_path / "tokens"
    token = add_token(tokens, "alice")
    server = start_http_server(tmp_path, url, "--tokens", str(tokens), *flags)  # type: ignore[arg-type]
    try:
        with anyio.fail_after(60):
            async with http_client(server.mcp_url, token) as client:
                await call_ok(client, "record_run", session_id="s1", input="kayaking on the fjords", output="Lovely.")
                hits = await call_ok(client, "search_previous_sessions", query="kayak fjord")
                again = await call_ok(client, "record_run", session_id="s1", input="more", output="Sure.")
        conn = await asyncpg.connect(url.split("?")[0])
        try:
            names = {r["application_name"] for r in await conn.fetch("SELECT application_name FROM pg_stat_activity")}
        finally:
            await conn.close()
    finally:
        server.stop()
    assert [h["snippet"] for h in hits["results"]] == ["**kayaking** on the **fjords**"]
    assert again["status"] == "completed"
    assert "sessions-test" in names  # the URL's libpq parameters reach the connections


def start_failure(db: str) -> subprocess.CompletedProcess[str]:
    """The stdio server started on `db` as a host starts it; it must exit at once with one line."""
    return subprocess.run(
        [server_script(), "--db", db], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


async def test_each_way_of_failing_at_start_is_one_sentence(postgres_cluster: Cluster) -> None:
    closed = f"postgresql://sessions:secret-password@127.0.0.1:{free_port()}/nothing"
    missing = postgres_cluster.url("no_such_database")
    no_ssl = postgres_cluster.url("postgres") + "?sslmode=require"
    for db, expected in [
        (closed, "Cannot connect to PostgreSQL at 127.0.0.1:"),
        (missing, "The database named in --db does not exist"),
        (no_ssl, "PostgreSQL at"),
        ("mysql://root@localhost/x", "takes a SQLite file path, :memory:, or a postgresql:// URL"),
    ]:
        done = await anyio.to_thread.run_sync(start_failure, db)
        lines = done.stderr.strip().splitlines()
        assert done.returncode in (1, 2) and len(lines) == 1, (db, done.stderr)
        assert expected in lines[0], (db, lines)
        assert "secret-password" not in done.stderr and "Traceback" not in done.stderr
