"""Per-turn cost of our SQLite store, measured exactly like the peers in `bench.peers`.

One turn = persist one realistic run (`append_run`: the user message, one tool call with its
tool message, the assistant reply, committed in one transaction) + load the context for the next
turn (`get_chat_history(last_n_runs=3, include_tool_messages=True)`: what an agent run puts in
the model's context by default). The L-run session is built with `append_run` itself.
Run: ``python -m bench.ours --lengths 10,10000 --samples 200``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import tempfile
import time
from typing import Any

from mcp_server_sessions.store import NewRun, NewToolCall, SqliteStore

from .peers import DEFAULT_BUDGET_S, SESSION_ID, USER_ID, Sampler, TextGen, _drive, markdown_table


def realistic_run(gen: TextGen) -> NewRun:
    """A recorded turn: the user's message, one tool call with its tool message, the assistant's reply."""
    r = gen.run()
    call = NewToolCall(tool_name="search", arguments=r["args"], result=r["result"], tool_call_id=r["call_id"])
    return NewRun.recorded(r["user"], r["reply"], [call], run_id=gen.uid())


async def build_session(db: pathlib.Path, length: int) -> None:
    """A session of `length` realistic runs, written through `append_run`."""
    store = await SqliteStore.open(db)
    sessions = store.for_user(USER_ID)
    gen = TextGen(length)
    for _ in range(length):
        await sessions.append_run(SESSION_ID, realistic_run(gen))
    await store.close()


def ours_turns(
    workdir: pathlib.Path, lengths: list[int], samples: int, budget_s: float = DEFAULT_BUDGET_S
) -> dict[str, Any]:
    async def measure_async(length: int, path: pathlib.Path) -> dict[str, Any]:
        gen = TextGen(length)
        t_build = time.perf_counter()
        builder = await SqliteStore.open(path)
        t_runs = time.perf_counter()
        for _ in range(length):
            await builder.for_user(USER_ID).append_run(SESSION_ID, realistic_run(gen))
        await builder.close()
        build = (time.perf_counter() - t_build, time.perf_counter() - t_runs)

        store = await SqliteStore.open(path)
        sessions = store.for_user(USER_ID)
        t0 = time.perf_counter()
        context = await sessions.get_chat_history(SESSION_ID, last_n_runs=3, include_tool_messages=True)
        cold_load_s = time.perf_counter() - t0
        assert len(context.messages) == 9, "built session did not load back"
        sampler = Sampler(samples, budget_s, start=t_build)
        while not sampler.done():
            run = realistic_run(gen)
            t0 = time.perf_counter()
            await sessions.append_run(SESSION_ID, run)
            t1 = time.perf_counter()
            context = await sessions.get_chat_history(SESSION_ID, last_n_runs=3, include_tool_messages=True)
            sampler.add(t0, t1, time.perf_counter())
            assert context.messages[-1].run_id == run.run_id, "the new run is not in the next context"
        runs = length + len(sampler.persist_ms)
        assert (await sessions.get_session(SESSION_ID)).run_count == runs
        result = sampler.result(build, cold_load_s, path, runs)
        await store.close()
        return result

    return _drive("ours", workdir, lengths, budget_s, lambda n, p: asyncio.run(measure_async(n, p)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="10,10000", help="comma-separated session lengths (runs)")
    parser.add_argument("--samples", type=int, default=200, help="timed turns per length")
    parser.add_argument("--budget-s", type=float, default=120.0, help="seconds per length, build included")
    parser.add_argument("--json", type=pathlib.Path, help="write the full results here")
    args = parser.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-ours-") as tmp:
        result = ours_turns(pathlib.Path(tmp), lengths, args.samples, args.budget_s)
    print(markdown_table([result]))
    medians = {n: r["persist_ms"]["median"] for n, r in result["lengths"].items() if "persist_ms" in r}
    base = min(medians)
    for n, ms in sorted(medians.items()):
        print(f"append at {n:>7} runs: {ms:.3f} ms median, {ms / medians[base]:.2f}x the append at {base} runs")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
