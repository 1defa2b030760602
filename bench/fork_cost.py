"""What `fork_session` costs: forking sessions of 10, 1,000 and 10,000 realistic runs (and 100,000 on
SQLite in the full run), on SQLite and PostgreSQL, as the median time of one fork and as a ratio to the
median `append_run` of one realistic run measured on the same store in the same run. A fork copies at
most MAX_FORK_RUNS (1,000) runs, so the longer sessions are forked up to their 1,000th run: what that
costs shows whether a fork's price depends on the source's length or only on what it copies.

Each length gets its own fixture: one session of L realistic runs (`bench.ours.realistic_run`: user
message, one tool call with its tool message, assistant reply), built with the store's bulk import
(untimed), then a fresh store on it. Timed: the public store API, one awaited call at a time; forks
(each into a new session id, of every run or of the first 1,000) alternate with appends of one run to a
separate session, so whatever else the machine does falls on both alike. Each fork is checked to hold what it copied.
On SQLite a fork is one write transaction from start to end, so its time is how long it holds the
file's write lock (other writers wait for it).

Run: ``python -m bench.fork_cost [--quick] [--sqlite-only] [--json PATH]`` (also part of ``python -m bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from mcp_server_sessions.store.limits import MAX_FORK_RUNS

from . import postgres_cluster
from .ours import realistic_run
from .peers import SESSION_ID, USER_ID, TextGen, _stats
from .store_suite import Backend, PostgresBackend, SqliteBackend

BASELINE_SESSION = "append-baseline"


@dataclass(frozen=True)
class Plan:
    forks: dict[int, int]  # session length -> timed forks
    pg_lengths: tuple[int, ...]
    appends: int  # timed appends per length


FULL = Plan(forks={10: 30, 1_000: 10, 10_000: 5, 100_000: 3}, pg_lengths=(10, 1_000, 10_000), appends=30)
QUICK = Plan(forks={10: 3, 1_000: 2}, pg_lengths=(10,), appends=5)


async def measure_length(backend: Backend, length: int, forks: int, appends: int) -> dict[str, Any]:
    """Fork and append timings on a fixture of one session of `length` runs."""
    where = await backend.fresh(f"fork-{length}")
    started = time.perf_counter()
    builder = await backend.open(where)
    gen = TextGen(length)
    numbered = (realistic_run(gen).model_copy(update={"run_id": f"r{n}"}) for n in range(1, length + 1))
    await backend.import_runs(builder, ((USER_ID, SESSION_ID, run) for run in numbered))
    await builder.close()
    await backend.settle(where)
    build_s = time.perf_counter() - started

    store = await backend.open(where)
    sessions = store.for_user(USER_ID)
    await sessions.append_run(BASELINE_SESSION, realistic_run(gen))  # untimed: the first calls' own costs
    copied = min(length, MAX_FORK_RUNS)
    await sessions.fork_session(SESSION_ID, "fork-warm-up", up_to_run_id=f"r{copied}")
    fork_ms: list[float] = []
    append_ms: list[float] = []
    for i in range(max(forks, appends)):
        if i < forks:
            t0 = time.perf_counter()
            fork = await sessions.fork_session(SESSION_ID, f"fork-{i}", up_to_run_id=f"r{copied}")
            fork_ms.append((time.perf_counter() - t0) * 1000)
            assert fork.run_count == copied, "the fork does not hold the runs it copied"
        if i < appends:
            run = realistic_run(gen)
            t0 = time.perf_counter()
            await sessions.append_run(BASELINE_SESSION, run)
            append_ms.append((time.perf_counter() - t0) * 1000)
    await store.close()
    await backend.discard(where)
    fork, append = _stats(fork_ms), _stats(append_ms)
    return {
        "runs": length,
        "copied": copied,
        "build_s": round(build_s, 2),
        "fork_ms": fork,
        "append_ms": append,
        "ratio": fork["median"] / append["median"],
        "fork_ms_per_1000_runs": fork["median"] / copied * 1000,
    }


async def measure(backend: Backend, lengths: list[int], plan: Plan) -> dict[str, Any]:
    return {str(n): await measure_length(backend, n, plan.forks[n], plan.appends) for n in lengths}


async def main_async(
    quick: bool, workdir: pathlib.Path, cluster: postgres_cluster.Cluster | None, pg_skipped: str
) -> dict[str, Any]:
    """Figures per backend and length; PostgreSQL's replaced by why it was skipped when it was."""
    plan = QUICK if quick else FULL
    out: dict[str, Any] = {"sqlite": await measure(SqliteBackend(workdir, keep=False), sorted(plan.forks), plan)}
    if cluster is None:
        out["postgresql"] = {"skipped": pg_skipped}
    else:
        out["postgresql"] = await measure(PostgresBackend(cluster), list(plan.pg_lengths), plan)
    return out


def markdown(results: dict[str, Any]) -> str:
    rows = [
        "| store | runs in the session | runs copied | fork ms (median, min-max) | ms per 1,000 runs copied "
        "| append_run ms (median) | fork / append |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, name in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        figures = results.get(key, {})
        if "skipped" in figures:
            rows.append(f"| {name} | skipped: {figures['skipped']} | | | | | |")
            continue
        for r in figures.values():
            fork = r["fork_ms"]
            rows.append(
                f"| {name} | {r['runs']:,} | {r['copied']:,} "
                f"| {fork['median']:.1f} ({fork['min']:.1f}-{fork['max']:.1f}) | {r['fork_ms_per_1000_runs']:.1f} "
                f"| {r['append_ms']['median']:.2f} | {r['ratio']:.0f}x |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 and 1,000 runs (PostgreSQL 10), a few forks each")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--json", type=pathlib.Path, help="also write every figure here")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="bench-fork-") as tmp,
        postgres_cluster.bench_cluster(skip=args.sqlite_only) as (cluster, pg_skipped),
    ):
        results = asyncio.run(main_async(args.quick, pathlib.Path(tmp), cluster, pg_skipped))
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
