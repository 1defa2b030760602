"""The server's own overhead per `run`: wall time of the tool call minus the model's time.

The model is the Messages API test double of tests/ on 127.0.0.1, answering at once with a
streamed ~800-char reply; the double records its own time per request, which is subtracted.
The session holds `L` realistic runs before timing (built with `append_run`); each timed run puts
the last 3 of them in context, as a default run does. The client is in process, so the figure is
what the server adds (context assembly, the SDK's request and stream parsing, the store writes).
Run: ``python -m bench.run_overhead --lengths 10,10000 --calls 100``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import statistics
import tempfile
import time
from typing import Any

from mcp import Client

from mcp_server_sessions.server.app import build_server
from mcp_server_sessions.server.cli import configure_logging
from mcp_server_sessions.server.settings import Settings
from tests.anthropic_double import MessagesDouble, text

from .ours import build_session
from .peers import REPLY_CHARS, SESSION_ID, USER_ID, TextGen


async def overhead(db: pathlib.Path, calls: int, double: MessagesDouble) -> dict[str, Any]:
    gen = TextGen(99)
    settings = Settings(db=str(db), user=USER_ID, model="claude-bench")
    samples: list[float] = []
    walls: list[float] = []
    async with Client(build_server(settings)) as client:
        for index in range(calls + 5):
            double.script(text(gen.text(REPLY_CHARS)))
            seen = len(double.request_seconds)
            t0 = time.perf_counter()
            result = await client.call_tool("run", {"message": gen.text(200), "session_id": SESSION_ID})
            wall = time.perf_counter() - t0
            assert not result.is_error, result.content
            model_s = sum(double.request_seconds[seen:])
            if index >= 5:  # the first calls import the SDK and warm the connection pool
                walls.append(wall * 1000)
                samples.append((wall - model_s) * 1000)
    return {
        "overhead_ms": {"median": statistics.median(samples), "min": min(samples), "max": max(samples)},
        "wall_ms": {"median": statistics.median(walls), "min": min(walls), "max": max(walls)},
        "calls": calls,
    }


async def main_async(lengths: list[int], calls: int) -> dict[int, Any]:
    results: dict[int, Any] = {}
    with MessagesDouble() as double, tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        os.environ["ANTHROPIC_API_KEY"] = "bench"
        os.environ["ANTHROPIC_BASE_URL"] = double.base_url
        for length in lengths:
            db = pathlib.Path(tmp) / f"run-{length}.db"
            await build_session(db, length)
            results[length] = await overhead(db, calls, double)
    return results


def markdown(results: dict[int, Any]) -> str:
    rows = ["| session length | server overhead per run, ms median (min-max) | wall ms median |", "|---:|---:|---:|"]
    for length, r in results.items():
        o = r["overhead_ms"]
        rows.append(
            f"| {length:,} | {o['median']:.2f} ({o['min']:.2f}-{o['max']:.2f}) | {r['wall_ms']['median']:.2f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="10,10000")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args(argv)
    configure_logging("WARNING")  # as the server logs in production, minus the INFO lines
    results = asyncio.run(main_async([int(x) for x in args.lengths.split(",")], args.calls))
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
