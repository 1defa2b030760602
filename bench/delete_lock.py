"""Deleting a large session while another process writes: nobody is locked out (issue #7, defect 4).

A session of `runs` realistic runs (`bench.ours.realistic_run`: user message, one tool call with
its tool message, assistant reply; built with `SqliteStore.import_runs`, not timed) is
deleted with `delete_session`, and its rows are purged (`purge_pending`), while ANOTHER PROCESS
(`python -m bench.delete_lock --writer DB`, its own `SqliteStore`) appends a realistic run every
10 ms into its own session, as a busy server's `record_run` would. Figures:

- the other process's append latency p50 / p99 / max and its error count while the delete and
  purge run, against the same appends with no delete running (the baseline: the seconds just
  before the delete, in the same run): the ratio is delete / baseline;
- the longest time any purge transaction held the write lock, the batches, the whole purge's
  duration, and how long the `delete_session` call itself took (the session vanishes then).

Run: ``python -m bench.delete_lock [--quick] [--runs N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from mcp_server_sessions.store import SqliteStore, StoreError

from .ours import realistic_run
from .peers import TextGen

USER_ID, SESSION_ID, WRITER_SESSION = "bench-user", "to-delete", "other-process"
WRITE_EVERY_S = 0.01
FULL_RUNS, QUICK_RUNS = 10_000, 500
FULL_BASELINE_S, QUICK_BASELINE_S = 5.0, 1.0
P99_TARGET_MS = 1_000.0


async def _write_loop(db: pathlib.Path) -> None:
    """The other process: append a run every WRITE_EVERY_S until stdin closes; print one JSON line per append."""
    store = await SqliteStore.open(db)
    sessions = store.for_user(USER_ID)
    stdin_closed = asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    gen = TextGen(7)
    try:
        print("ready", flush=True)
        while not stdin_closed.done():
            run = realistic_run(gen)
            started = time.monotonic()
            try:
                await sessions.append_run(WRITER_SESSION, run)
                error = None
            except StoreError as exc:
                error = str(exc)
            ended = time.monotonic()
            print(json.dumps({"at": started, "ms": (ended - started) * 1000, "error": error}), flush=True)
            await asyncio.sleep(max(0.0, WRITE_EVERY_S - (ended - started)))
    finally:
        await store.close()


def _latency(writes: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    window = [w for w in writes if start <= w["at"] < end]
    ms = sorted(w["ms"] for w in window if w["error"] is None)
    if not ms:
        return {"writes": len(window), "errors": len(window)}
    return {
        "writes": len(window),
        "errors": sum(1 for w in window if w["error"] is not None),
        "p50": statistics.median(ms),
        "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "max": ms[-1],
    }


async def measure(workdir: pathlib.Path, runs: int, baseline_s: float) -> dict[str, Any]:
    db = workdir / "delete-lock.db"
    store = await SqliteStore.open(db)
    gen = TextGen(3)
    t_build = time.perf_counter()
    await store.import_runs((USER_ID, SESSION_ID, realistic_run(gen)) for _ in range(runs))
    build_s = time.perf_counter() - t_build

    writer = subprocess.Popen(
        [sys.executable, "-m", "bench.delete_lock", "--writer", str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=pathlib.Path(__file__).parent.parent,
    )
    assert writer.stdin is not None and writer.stdout is not None
    try:
        assert writer.stdout.readline() == "ready\n"
        baseline_start = time.monotonic()
        await asyncio.sleep(baseline_s)  # the other process writes alone
        started = time.monotonic()
        await store.for_user(USER_ID).delete_session(SESSION_ID)
        vanished = time.monotonic()
        await store.purge_pending()
        purged = time.monotonic()
    finally:
        writer.stdin.close()
        output = writer.stdout.read()
        writer.wait(timeout=60)
        stats = store.purge_stats
        await store.close()
    writes = [json.loads(line) for line in output.splitlines()]
    during = _latency(writes, started, purged)
    baseline = _latency(writes, baseline_start, started)
    return {
        "runs": runs,
        "build_s": round(build_s, 1),
        "delete_call_ms": (vanished - started) * 1000,
        "purge_s": purged - started,
        "batches": stats.batches + 1,  # + the first, in delete_session's own transaction
        "longest_lock_ms": stats.longest_lock_s * 1000,
        "mean_lock_ms": stats.total_lock_s * 1000 / max(stats.batches, 1),
        "during": during,
        "baseline": baseline,
        "p99_ratio": during.get("p99", float("nan")) / baseline.get("p99", float("nan")),
    }


def markdown(result: dict[str, Any]) -> str:
    during, baseline = result["during"], result["baseline"]

    def row(name: str, s: dict[str, Any]) -> str:
        return f"| {name} | {s['writes']} | {s['errors']} | {s['p50']:.1f} | {s['p99']:.1f} | {s['max']:.1f} |"

    verdict = "met" if during["errors"] == 0 and during["p99"] <= P99_TARGET_MS else "MISSED"
    return "\n".join(
        [
            f"Session of {result['runs']:,} runs deleted while another process appends a run every "
            f"{WRITE_EVERY_S * 1000:.0f} ms. `delete_session` returned in {result['delete_call_ms']:.0f} ms "
            f"(the session is gone for its user from then on); the purge took {result['purge_s']:.1f} s in "
            f"{result['batches']} batches; a purge transaction held the write lock {result['mean_lock_ms']:.1f} ms "
            f"on average and {result['longest_lock_ms']:.1f} ms at the longest.",
            "",
            "| other process's appends | writes | errors | p50 ms | p99 ms | max ms |",
            "|---|---:|---:|---:|---:|---:|",
            row("while deleting", during),
            row("no delete (baseline)", baseline),
            "",
            f"p99 while deleting / baseline p99: {result['p99_ratio']:.1f}x; "
            f"target: no error and p99 <= {P99_TARGET_MS:.0f} ms ({verdict}).",
        ]
    )


async def main_async(quick: bool, workdir: pathlib.Path | None = None, runs: int | None = None) -> dict[str, Any]:
    runs = runs or (QUICK_RUNS if quick else FULL_RUNS)
    baseline_s = QUICK_BASELINE_S if quick else FULL_BASELINE_S
    if workdir is not None:
        return await measure(workdir, runs, baseline_s)
    with tempfile.TemporaryDirectory(prefix="bench-delete-") as tmp:
        return await measure(pathlib.Path(tmp), runs, baseline_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"a {QUICK_RUNS}-run session")
    parser.add_argument("--runs", type=int, help=f"session length (default {FULL_RUNS:,})")
    parser.add_argument("--writer", type=pathlib.Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer is not None:
        asyncio.run(_write_loop(args.writer))
        return
    print(markdown(asyncio.run(main_async(args.quick, runs=args.runs))))


if __name__ == "__main__":
    main()
