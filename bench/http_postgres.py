"""HTTP load on PostgreSQL: replicas of our server on one PostgreSQL database, two against one.

For each configuration (one replica, then two), a fresh database of the bench's throughput cluster
(bench/postgres_cluster.py) and N replicas of `serve --transport http --db postgresql://... --pool-max P
--tokens FILE`, each its own process on its own port, all on that database. N closed-loop clients
(`bench.http_load`'s load generator: its own keep-alive connections, user token and session each),
client i on replica i % N, each doing agent turns for `seconds`: `record_run` (~200-char input,
~800-char output), then `get_chat_history(last_n_runs=3)` of the same session, which must hold the
run just recorded. Per call kind: throughput, p50 and p99 latency, errors; per turn: throughput;
CPU per turn of the replicas together and of the PostgreSQL cluster (every postgres process). After
the replicas stop, the runs in the database are counted against the acknowledged `record_run`
calls: each must be stored exactly once (0 lost, 0 duplicated).

Everything runs on this one machine, so the replicas, PostgreSQL and the load generator share its
cores: what a second replica adds here is what a core left idle by one replica can give, not what
a second machine would.
Run: ``python -m bench.http_postgres [--quick] [--clients 16 --seconds 60] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from . import postgres_cluster
from .http_load import (
    LEGACY,
    SEED_RUNS,
    TOKEN_USERS,
    TRANSPORTS,
    CallFailed,
    McpCaller,
    Server,
    compare_runs,
    launch,
    wait_ready,
    write_tokens,
)
from .peers import REPLY_CHARS, USER_CHARS, TextGen

RECORD, HISTORY = "record_run", "get_chat_history(last_n_runs=3)"
REPLICAS = (1, 2)
POOL_MAX = 16
"""--pool-max of every replica: enough connections for all the clients at once, so the pool never
queues a call in either configuration."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SIZES = {"quick": {"clients": 4, "seconds": 4.0}, "full": {"clients": 16, "seconds": 60.0}}


@contextlib.contextmanager
def replicas(workdir: pathlib.Path, tokens: pathlib.Path, url: str, count: int) -> Iterator[list[Server]]:
    """`count` replicas on the database at `url`, started at once; stopped (SIGTERM) on the way out."""
    args = ["-m", "mcp_server_sessions.server", "serve", "--transport", "http", "--db", url]
    args += ["--pool-max", str(POOL_MAX), "--tokens", str(tokens), "--log-level", "INFO"]
    started: list[Server] = []
    try:
        for i in range(count):
            started.append(launch(f"replica-{count}-{i}", args, workdir))
        for server in started:
            wait_ready(server)
        yield started
    finally:
        for server in started:
            server.stop()


def cluster_cpu_s(cluster: postgres_cluster.Cluster) -> float:
    """User + system CPU seconds of the whole cluster so far: the postmaster with its waited-for
    children (backends that exited), and every live child (backends, checkpointer, autovacuum...)."""
    postmaster = int((cluster.directory / "data" / "postmaster.pid").read_text().split()[0])
    ticks = 0
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile
        pid = int(stat.parent.name)
        if pid == postmaster:
            ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
        elif int(fields[1]) == postmaster:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


@dataclass
class Calls:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self, wall_s: float) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms) or [float("nan")]
        return {
            "calls": len(self.latencies_ms),
            "errors": len(self.errors),
            "first_errors": self.errors[:5],
            "calls_per_s": len(self.latencies_ms) / wall_s,
            "p50_ms": statistics.median(ordered),
            "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        }


class Turns:
    """N clients, client i on replica i % len(servers), each recording runs in its own session and
    reading its history back."""

    def __init__(self, servers: list[Server], tokens: list[str], n: int, client: str, protocol: str) -> None:
        accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        self.callers: dict[str, list[McpCaller]] = {}
        for name, tool in ((RECORD, "record_run"), (HISTORY, "get_chat_history")):
            method = {"Mcp-Method": "tools/call", "Mcp-Name": tool} if protocol != LEGACY else {}
            self.callers[name] = [
                McpCaller(
                    TRANSPORTS[client](
                        servers[i % len(servers)].port,
                        {**accept, "MCP-Protocol-Version": protocol, "Authorization": f"Bearer {tokens[i]}", **method},
                    ),
                    protocol,
                )
                for i in range(n)
            ]
        self.sessions = [f"bench-pg-{i:02d}" for i in range(n)]
        gen = TextGen(12)
        self.texts = [(gen.text(USER_CHARS), gen.text(REPLY_CHARS)) for _ in range(64)]
        self.next_text = itertools.count()
        self.acknowledged: list[str] = []
        self.calls = {RECORD: Calls(), HISTORY: Calls()}
        self.turn_ms: list[float] = []

    async def record(self, i: int) -> str:
        user, reply = self.texts[next(self.next_text) % len(self.texts)]
        arguments = {"session_id": self.sessions[i], "input": user, "output": reply}
        result = await self.callers[RECORD][i].call("record_run", arguments)
        run_id: str = result["structuredContent"]["run_id"]
        self.acknowledged.append(run_id)
        return run_id

    async def history(self, i: int, run_id: str) -> None:
        arguments = {"session_id": self.sessions[i], "last_n_runs": 3}
        result = await self.callers[HISTORY][i].call("get_chat_history", arguments)
        messages = result["structuredContent"]["messages"]
        if len(messages) != 6:
            raise CallFailed(f"{len(messages)} messages, not 3 runs' 6")
        if messages[-1].get("run_id") != run_id:
            raise CallFailed(f"the run just recorded ({run_id}) is not the last in the history")

    async def warm_up(self) -> None:
        """Connects every client and seeds each session with SEED_RUNS runs (so the history holds 3)."""
        for _ in range(SEED_RUNS):
            run_ids = await asyncio.gather(*(self.record(i) for i in range(len(self.sessions))))
        await asyncio.gather(*(self.history(i, run_ids[i]) for i in range(len(self.sessions))))

    async def run(self, seconds: float) -> float:
        """Every client does turns in a closed loop for `seconds` and finishes its last; the wall time."""

        async def client(i: int) -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    run_id = await self.record(i)
                except (CallFailed, OSError, EOFError, KeyError, ValueError, httpx.HTTPError) as exc:
                    self.calls[RECORD].errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                t1 = time.perf_counter()
                self.calls[RECORD].latencies_ms.append((t1 - t0) * 1000)
                try:
                    await self.history(i, run_id)
                except (CallFailed, OSError, EOFError, KeyError, ValueError, httpx.HTTPError) as exc:
                    self.calls[HISTORY].errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                t2 = time.perf_counter()
                self.calls[HISTORY].latencies_ms.append((t2 - t1) * 1000)
                self.turn_ms.append((t2 - t0) * 1000)

        t0 = time.perf_counter()
        deadline = t0 + seconds
        await asyncio.gather(*(client(i) for i in range(len(self.sessions))))
        return time.perf_counter() - t0

    async def close(self) -> None:
        for callers in self.callers.values():
            for caller in callers:
                await caller.transport.close()


async def stored_run_ids(url: str) -> list[str]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [row["run_id"] for row in await conn.fetch("SELECT run_id FROM runs")]
    finally:
        await conn.close()


async def measure_one(
    cluster: postgres_cluster.Cluster, count: int, clients: int, seconds: float, client: str, protocol: str
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-http-pg-") as tmp:
        workdir = pathlib.Path(tmp)
        name = f"http_{count}_replicas"
        url = await cluster.create_database(name)
        tokens_file = workdir / "tokens"
        tokens = write_tokens(tokens_file, max(TOKEN_USERS, clients))
        try:
            with replicas(workdir, tokens_file, url, count) as running:
                turns = Turns(running, tokens, clients, client, protocol)
                try:
                    await turns.warm_up()
                    server_cpu = [s.cpu_s() for s in running]
                    pg_cpu, client_cpu = cluster_cpu_s(cluster), time.process_time()
                    wall_s = await turns.run(seconds)
                    pg_cpu = cluster_cpu_s(cluster) - pg_cpu
                    client_cpu = time.process_time() - client_cpu
                    server_cpu = [s.cpu_s() - before for s, before in zip(running, server_cpu, strict=True)]
                finally:
                    await turns.close()
            stored = compare_runs(await stored_run_ids(url), turns.acknowledged)
        finally:
            await cluster.drop_database(name)
    done = len(turns.turn_ms)
    calls = {name: c.summary(wall_s) for name, c in turns.calls.items()}
    per_turn = 1000 / done if done else float("nan")
    return {
        "replicas": count,
        "wall_s": wall_s,
        "turns": done,
        "turns_per_s": done / wall_s,
        "calls_per_s": sum(c["calls_per_s"] for c in calls.values()),
        "turn_p50_ms": statistics.median(turns.turn_ms) if done else float("nan"),
        "calls": calls,
        "errors": sum(c["errors"] for c in calls.values()),
        "stored": stored,
        "lost": stored["acknowledged_not_stored"],
        "replica_cpu_s": server_cpu,
        "replica_cpu_ms_per_turn": sum(server_cpu) * per_turn,
        "postgres_cpu_ms_per_turn": pg_cpu * per_turn,
        "client_cpu_ms_per_turn": client_cpu * per_turn,
        "cpu_busy_cores": (sum(server_cpu) + pg_cpu + client_cpu) / wall_s,
    }


async def measure(
    cluster: postgres_cluster.Cluster,
    clients: int,
    seconds: float,
    client: str = "raw",
    protocol: str = LEGACY,
    counts: tuple[int, ...] = REPLICAS,
) -> dict[str, Any]:
    configs = {}
    for count in counts:
        configs[str(count)] = await measure_one(cluster, count, clients, seconds, client, protocol)
    result: dict[str, Any] = {
        "clients": clients,
        "seconds": seconds,
        "pool_max": POOL_MAX,
        "client": client,
        "protocol": protocol,
        "postgresql": await postgres_cluster.server_version(cluster),
        "settings": postgres_cluster.described()["settings"],
        "configs": configs,
        "errors": sum(c["errors"] for c in configs.values()),
        "lost": sum(c["lost"] for c in configs.values()),
    }
    if "1" in configs and "2" in configs and configs["1"]["turns_per_s"]:
        result["two_over_one_throughput"] = configs["2"]["turns_per_s"] / configs["1"]["turns_per_s"]
    return result


def problems(result: dict[str, Any]) -> list[str]:
    """What the run got wrong (not its speed): errors, or acknowledged runs not stored exactly once."""
    found = []
    for count, c in result.get("configs", {}).items():
        if c["errors"]:
            first = [e for calls in c["calls"].values() for e in calls["first_errors"]][:3]
            found.append(f"HTTP load on PostgreSQL, {count} replica(s): {c['errors']} calls failed, e.g. {first}")
        if not c["stored"]["exactly_once"]:
            found.append(
                f"HTTP load on PostgreSQL, {count} replica(s): acknowledged runs not stored exactly once: {c['stored']}"
            )
    return found


def markdown(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return f"Skipped: {result['skipped']}."
    rows = [
        f"| replicas on one PostgreSQL ({result['clients']} clients, {result['seconds']:g} s) | turns/s "
        "| record_run p50 / p99 ms | get_chat_history p50 / p99 ms | turn p50 ms | errors "
        "| acknowledged / stored runs | lost | replicas CPU ms/turn | PostgreSQL CPU ms/turn | cores busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for count, c in result["configs"].items():
        record, history = c["calls"][RECORD], c["calls"][HISTORY]
        stored = c["stored"]
        once = "" if stored["exactly_once"] else " **NOT exactly once**"
        rows.append(
            f"| {count} replica{'s' if count != '1' else ''} | **{c['turns_per_s']:.0f}** "
            f"({c['calls_per_s']:.0f} calls/s) | {record['p50_ms']:.2f} / {record['p99_ms']:.2f} "
            f"| {history['p50_ms']:.2f} / {history['p99_ms']:.2f} | {c['turn_p50_ms']:.2f} | {c['errors']} "
            f"| {stored['acknowledged']:,} / {stored['rows']:,}{once} | {c['lost']} "
            f"| {c['replica_cpu_ms_per_turn']:.2f} | {c['postgres_cpu_ms_per_turn']:.2f} | {c['cpu_busy_cores']:.2f} |"
        )
    rows.append("")
    if "two_over_one_throughput" in result:
        rows.append(f"Two replicas: **{result['two_over_one_throughput']:.2f}x** the turns per second of one. ")
    rows.append(
        f"A turn = `record_run` (~{USER_CHARS}-char input, ~{REPLY_CHARS}-char output), then "
        "`get_chat_history(last_n_runs=3)` of the same session, checked to end with the run just recorded; "
        f"client i on replica i mod N, its own user and session. Each replica: `serve --transport http --db "
        f"postgresql://... --pool-max {result['pool_max']}`, {result['protocol']} (stateless streamable HTTP), "
        f"`{result['client']}` load generator. PostgreSQL {result['postgresql']} on the same machine "
        f"(settings: {', '.join(f'{k}={v}' for k, v in result['settings'].items())}): replicas, database and "
        "load generator share its cores ('cores busy' counts all three). 'lost' = acknowledged record_run "
        "calls whose run is not in the database after the replicas stopped."
    )
    return "\n".join(rows)


async def main_async(quick: bool, cluster: postgres_cluster.Cluster | None, skipped: str = "") -> dict[str, Any]:
    if cluster is None:
        return {"skipped": skipped or "no PostgreSQL cluster"}
    size = SIZES["quick" if quick else "full"]
    return await measure(cluster, size["clients"], size["seconds"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 clients, 4 s per configuration: checks it runs")
    parser.add_argument("--clients", type=int, help="concurrent clients (default 16)")
    parser.add_argument("--seconds", type=float, help="load seconds per configuration (default 60)")
    parser.add_argument("--replicas", default="1,2", help="configurations, comma-separated replica counts")
    parser.add_argument("--client", choices=sorted(TRANSPORTS), default="raw", help="load generator HTTP client")
    parser.add_argument("--json", type=pathlib.Path, help="write the full results here")
    args = parser.parse_args(argv)
    size = SIZES["quick" if args.quick else "full"]
    counts = tuple(int(x) for x in args.replicas.split(","))
    with postgres_cluster.bench_cluster() as (cluster, skipped):
        if cluster is None:
            result: dict[str, Any] = {"skipped": skipped}
        else:
            clients, seconds = args.clients or size["clients"], args.seconds or size["seconds"]
            result = asyncio.run(measure(cluster, clients, seconds, args.client, counts=counts))
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if found := problems(result):
        sys.exit("\n".join(found))


if __name__ == "__main__":
    main()
