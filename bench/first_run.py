"""Does the first `run` stall other calls? `get_session` latency while a fresh server's first run goes on.

A stdio server subprocess starts with a model key set (the model is the Messages API test double
of tests/ on 127.0.0.1). Right after `initialize`, one task sends the first `run` while another
sends `get_session` back to back until that run has answered; those latencies are compared with
the same call on the same server once everything is warm (the baseline, measured in the same run).
Before the SDK import moved off the event loop, the first run held every other call ~1.1-1.6 s.
Run: ``python -m bench.first_run --rounds 5``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from tests.anthropic_double import MessagesDouble, text


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": statistics.median(values),
        "p99": _percentile(values, 0.99),
        "max": max(values),
        "n": len(values),
    }


async def one_round(db: pathlib.Path, double: MessagesDouble) -> tuple[list[float], list[float]]:
    env = {**os.environ, "ANTHROPIC_API_KEY": "bench", "ANTHROPIC_BASE_URL": double.base_url}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "mcp_server_sessions.server", "--db", str(db), "--user", "bench", "--log-level", "WARNING"],
        env=env,
    )
    during: list[float] = []
    warm: list[float] = []
    double.script(text("The first answer of this server."))
    async with Client(params) as client:
        await client.call_tool("start_session", {"session_id": "s"})
        finished = anyio.Event()

        async def first_run() -> None:
            result = await client.call_tool("run", {"session_id": "s", "message": "hello"})
            assert not result.is_error, result.content
            finished.set()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(first_run)
            while not finished.is_set():
                t0 = time.perf_counter()
                await client.call_tool("get_session", {"session_id": "s"})
                during.append((time.perf_counter() - t0) * 1000)
        for _ in range(200):
            t0 = time.perf_counter()
            await client.call_tool("get_session", {"session_id": "s"})
            warm.append((time.perf_counter() - t0) * 1000)
    return during, warm


async def measure(rounds: int) -> dict[str, Any]:
    during: list[float] = []
    warm: list[float] = []
    with MessagesDouble() as double, tempfile.TemporaryDirectory(prefix="bench-first-run-") as tmp:
        for index in range(rounds):
            d, w = await one_round(pathlib.Path(tmp) / f"r{index}.db", double)
            during += d
            warm += w
    result = {"during_first_run_ms": _summary(during), "warm_ms": _summary(warm), "rounds": rounds}
    result["p99_ratio"] = result["during_first_run_ms"]["p99"] / result["warm_ms"]["p99"]
    return result


def markdown(result: dict[str, Any]) -> str:
    d, w = result["during_first_run_ms"], result["warm_ms"]
    return "\n".join(
        [
            "| `get_session` over stdio | p50 ms | p99 ms | max ms | calls |",
            "|---|---:|---:|---:|---:|",
            f"| during a fresh server's first `run` | {d['p50']:.2f} | {d['p99']:.2f} | {d['max']:.2f} | {d['n']} |",
            f"| warm (baseline) | {w['p50']:.2f} | {w['p99']:.2f} | {w['max']:.2f} | {w['n']} |",
            f"| p99 ratio | | {result['p99_ratio']:.2f}x | | |",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.rounds))
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
