"""Round trips over a real stdio subprocess, as ratios to a bare MCPServer no-op tool.

Both servers run at once; each timed call of ours is paired with a no-op call made right before
it, and the ratio is taken pair by pair, so machine noise hits both sides alike. Our server
works on a session already holding `--length` runs. Cold start (spawn to initialized) is timed
alternately for both servers.
Run: ``python -m bench.mcp_roundtrip --length 10000 --calls 200``.
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
from collections.abc import Awaitable, Callable
from typing import Any

from mcp import Client, StdioServerParameters

from .ours import build_session, realistic_run
from .peers import SESSION_ID, USER_ID, TextGen

BARE = StdioServerParameters(command=sys.executable, args=["-m", "bench.bare_server"], cwd=os.getcwd())


def ours(db: pathlib.Path) -> StdioServerParameters:
    env = {**os.environ, "MCP_SESSIONS_DB": str(db), "MCP_SESSIONS_USER": USER_ID}
    return StdioServerParameters(command=sys.executable, args=["-m", "mcp_server_sessions.server"], env=env)


async def timed(call: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    result = await call()
    elapsed = (time.perf_counter() - t0) * 1000
    assert not getattr(result, "is_error", False), result
    return elapsed


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def round_trips(db: pathlib.Path, calls: int) -> dict[str, Any]:
    gen = TextGen(7)
    tool_turn = realistic_run(gen)
    async with Client(BARE) as bare, Client(ours(db)) as server:

        def record_arguments() -> dict[str, Any]:
            run = realistic_run(gen)
            call = tool_turn.tool_calls[0]
            return {
                "session_id": SESSION_ID,
                "input": run.input,
                "output": run.content,
                "tool_calls": [{"tool_name": call.tool_name, "arguments": call.arguments, "result": call.result}],
            }

        def record() -> Awaitable[Any]:
            return server.call_tool("record_run", record_arguments())

        def echo() -> Awaitable[Any]:
            return bare.call_tool("record_echo", record_arguments())

        ops: dict[str, Callable[[], Awaitable[Any]]] = {
            "record_run": record,
            "record_echo (record_run's payload, no store; bare server)": echo,
            "get_chat_history(last_n_runs=3)": lambda: server.call_tool(
                "get_chat_history", {"session_id": SESSION_ID, "last_n_runs": 3}
            ),
            "history_echo (same shape and sizes, no store; bare server)": lambda: bare.call_tool(
                "history_echo", {"session_id": SESSION_ID, "last_n_runs": 3}
            ),
            "search_previous_sessions": lambda: server.call_tool(
                "search_previous_sessions", {"query": tool_turn.input.split()[3]}
            ),
        }
        for _ in range(20):  # warm both servers up
            await bare.call_tool("noop", {})
            for op in ops.values():
                await op()
        samples: dict[str, dict[str, list[float]]] = {name: {"ours": [], "noop": [], "ratio": []} for name in ops}
        for _ in range(calls):
            for name, op in ops.items():
                noop_ms = await timed(lambda: bare.call_tool("noop", {}))
                ours_ms = await timed(op)
                samples[name]["noop"].append(noop_ms)
                samples[name]["ours"].append(ours_ms)
                samples[name]["ratio"].append(ours_ms / noop_ms)
    return {name: {k: summary(v) for k, v in s.items()} for name, s in samples.items()}


async def cold_starts(db: pathlib.Path, repeats: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {"ours": [], "bare": [], "ratio": []}
    for _ in range(repeats):
        pair = {}
        for name, params in (("bare", BARE), ("ours", ours(db))):
            t0 = time.perf_counter()
            async with Client(params):
                pair[name] = (time.perf_counter() - t0) * 1000
        times["ours"].append(pair["ours"])
        times["bare"].append(pair["bare"])
        times["ratio"].append(pair["ours"] / pair["bare"])
    return {k: summary(v) for k, v in times.items()}


def markdown(length: int, trips: dict[str, Any], cold: dict[str, Any]) -> str:
    rows = [
        f"| stdio call (session of {length:,} runs) | ours ms median (min-max) | bare no-op ms median "
        "| ratio, median of pairs (min-max) |",
        "|---|---:|---:|---:|",
    ]
    for name, s in [*trips.items(), ("cold start (spawn to initialized)", cold)]:
        o, b, r = s["ours"], s.get("noop", s.get("bare")), s["ratio"]
        rows.append(
            f"| {name} | {o['median']:.2f} ({o['min']:.2f}-{o['max']:.2f}) | {b['median']:.2f} "
            f"| {r['median']:.2f}x ({r['min']:.2f}-{r['max']:.2f}) |"
        )
    return "\n".join(rows)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp:
        db = pathlib.Path(tmp) / "sessions.db"
        await build_session(db, args.length)
        trips = await round_trips(db, args.calls)
        cold = await cold_starts(db, args.starts)
    return {"length": args.length, "calls": args.calls, "round_trips": trips, "cold_start": cold}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=10_000, help="runs in the session before timing")
    parser.add_argument("--calls", type=int, default=200, help="timed calls per operation")
    parser.add_argument("--starts", type=int, default=7, help="cold starts per server")
    parser.add_argument("--json", type=pathlib.Path, help="write the full results here")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args))
    print(markdown(args.length, result["round_trips"], result["cold_start"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
