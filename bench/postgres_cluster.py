"""One throwaway PostgreSQL cluster for the whole bench, started with the tests' own logic
(tests/postgres_cluster.py: `initdb` + `pg_ctl` in a temporary directory, on a free port, as the
`postgres` account when run as root), then restarted with the bench's settings, and torn down at the end.
Its databases are made and dropped with the tests' `Cluster.create_database` and `drop_database`.

The tests run their cluster with fsync off; the bench does not. Its settings are PostgreSQL's
defaults except `synchronous_commit = off`, the durability of the SQLite store beside it (WAL with
`synchronous = NORMAL`: a commit returns before the WAL is flushed to disk; a crash may lose the last
commits but never leaves the database inconsistent), `shared_buffers` a quarter of the machine's
memory (PostgreSQL's usual sizing; at most 8GB), `track_io_timing = on` (plans show time spent
reading) and `max_connections = 200`.

Why not the default 128MB, or 1GB: PostgreSQL leans on the operating system's page cache for what
its buffers do not hold, and some machines keep little of it (this bench's VM runs DAMON with a
`pageout` scheme, which evicts cold page-cache pages). A first full run with 1GB of buffers and a
2.6GB search corpus then read ranked rows from disk: search p50 59 ms and p99 1 s, where the same
queries took under 20 ms with the pages in memory.

Without the server binaries the PostgreSQL part of the bench is skipped with one line saying so,
except when CI is set: then the bench fails, so CI cannot pass by not measuring PostgreSQL.
Run: ``python -m bench.postgres_cluster`` starts one and prints its URL until Ctrl-C (to profile by hand).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

from tests.postgres_cluster import INSTALL, Cluster, server_binaries, start_cluster


def _quarter_of_memory_mb() -> int:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(128, min(8192, memory // 4 // 2**20))


SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "200",
    "shared_buffers": f"{_quarter_of_memory_mb()}MB",
    "synchronous_commit": "off",
    "track_io_timing": "on",
}

__all__ = ["Cluster", "bench_cluster", "bytes_by_table", "vacuum_analyze"]


def _restart(cluster: Cluster) -> None:
    cluster.stop()
    options = f"-p {cluster.port} -k {cluster.directory} " + " ".join(f"-c {k}={v}" for k, v in SETTINGS.items())
    log = str(cluster.directory / "server.log")
    done = cluster.pg_ctl("-o", options, "-l", log, "-w", "-t", "60", "start")
    if done.returncode != 0:
        raise RuntimeError(f"pg_ctl start failed: {done.stderr}\n{cluster.log()}")


@contextlib.contextmanager
def bench_cluster(skip: bool = False) -> Iterator[tuple[Cluster | None, str]]:
    """(a running cluster with the bench's settings, "") or, without the server binaries or when
    `skip`, (None, why) after printing why in one line. Under CI missing binaries end the bench."""
    if skip:
        if os.environ.get("CI"):
            raise SystemExit("bench: the PostgreSQL benchmarks cannot be skipped in CI")
        yield None, "not asked for"
        return
    if server_binaries() is None:
        why = f"PostgreSQL server binaries (initdb, pg_ctl) not found: {INSTALL}"
        if os.environ.get("CI"):
            raise SystemExit(f"bench: the PostgreSQL benchmarks cannot be skipped in CI; {why}")
        print(f"PostgreSQL benchmarks skipped: {why}", flush=True)
        yield None, why
        return
    starting = start_cluster()
    cluster = next(starting)
    try:
        _restart(cluster)
        yield cluster, ""
    finally:
        starting.close()  # its finally stops the server (immediate) and removes the directory


def described() -> dict[str, Any]:
    return {"settings": dict(SETTINGS)}


async def _connect(url: str) -> Any:
    import asyncpg

    return await asyncpg.connect(url)


async def server_version(cluster: Cluster) -> str:
    conn = await _connect(cluster.url())
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


async def vacuum_analyze(url: str) -> None:
    """VACUUM (ANALYZE) the whole database: planner statistics, the visibility map, and GIN pending
    lists merged, as autovacuum leaves a database that has been in use."""
    conn = await _connect(url)
    try:
        await conn.execute("VACUUM (ANALYZE)")
    finally:
        await conn.close()


async def bytes_by_table(url: str) -> dict[str, int]:
    """pg_total_relation_size (heap, TOAST and indexes) of each table of the public schema, largest first."""
    conn = await _connect(url)
    try:
        rows = await conn.fetch(
            "SELECT c.relname, pg_total_relation_size(c.oid) AS size FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' "
            "ORDER BY size DESC"
        )
    finally:
        await conn.close()
    return {row["relname"]: int(row["size"]) for row in rows}


def main() -> None:
    with bench_cluster() as (cluster, _):
        if cluster is not None:
            print(cluster.url(), flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()


if __name__ == "__main__":
    main()
