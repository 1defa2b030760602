"""Per-turn cost of two peer session stores, driven the way their own frameworks drive them.

One *turn* = persist one finished run + load the context for the next run, at a session that
already holds L runs. A *realistic run* is a ~200-char user message, one tool call (~100-char
arguments, ~500-char result) and a ~800-char assistant reply, as seeded random words.

Agno 3.x (``agno.db.sqlite.SqliteDb``, sync). We call the framework's own functions:
  * persist: ``agno.agent._run.cleanup_and_store(agent, run_response=run, session=session)``,
    which every finished ``Agent.run`` calls. Through ``persist_run_in_session`` it appends the
    run to the in-memory ``AgentSession``, updates the session metrics, upserts the session row
    (``SqliteDb.upsert_session``: 3.x writes no runs there) and the one run row
    (``SqliteDb.upsert_run``): two write transactions (the approvals update is a no-op without an
    approvals table). Its O(L) part is in memory (``AgentSession.upsert_run``, ``resolve_run_index``).
  * load: ``agno.agent._storage.read_or_create_session(agent, session_id=, user_id=)``, which
    ``run_dispatch`` calls before every run. With the default ``cache_session=False`` it reads
    the whole session (``SqliteDb.get_session``, ``runs_limit=None``): every run row's JSON text is
    fetched, and runs whose text is unchanged are served from the adapter's per-process
    ``SessionRunObjectCache`` instead of being parsed again. So we report the warm, same-process
    load per turn and, once per length, the first (cold) load on a fresh adapter.
  The L-run session is built by upserting the session row and bulk-inserting the rows Agno's own
  ``build_run_rows_for_session`` makes (the rows ``upsert_run`` writes, in one transaction).

OpenAI Agents SDK (``agents.memory.SQLiteSession``, async): the non-streamed ``Runner`` reads
``get_items()`` with no limit (default ``SessionSettings``) before the run and calls ``add_items``
three times for a one-tool run: the user input before the first model call, the function call
with its output after the tool turn, and the final assistant message. We make the same calls
with items made by the SDK's own converters (Responses-API item dicts). The L-run session is
built with one ``add_items`` call holding all 4L items. One ``asyncio.run`` per length.

Each length gets a fresh db file; the building store is closed (so its WAL is checkpointed)
before a fresh store instance is timed. Sampling a length stops once the length (build included)
has used ``budget_s`` seconds; a length whose build or single turn, extrapolated linearly from
the previous length, would exceed ``budget_s`` is skipped.
Run: ``python -m bench.peers --lengths 10,1000 --samples 20 --json out.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import pathlib
import random
import statistics
import string
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

os.environ.setdefault("AGNO_TELEMETRY", "false")

USER_CHARS, ARGS_CHARS, RESULT_CHARS, REPLY_CHARS = 200, 100, 500, 800
DEFAULT_BUDGET_S = 20.0
SESSION_ID, USER_ID, AGENT_ID = "bench-session", "bench-user", "bench-agent"
IDS = {"session_id": SESSION_ID, "user_id": USER_ID, "agent_id": AGENT_ID}
_VOCAB_RNG = random.Random(0)
_VOCAB = ["".join(_VOCAB_RNG.choices(string.ascii_lowercase, k=_VOCAB_RNG.randint(2, 11))) for _ in range(8000)]


class TextGen:
    """Deterministic text of exact sizes from seeded random pseudo-words (not trivially compressible)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def text(self, chars: int) -> str:
        words: list[str] = []
        size = 0
        while size < chars:
            words.append(self.rng.choice(_VOCAB))
            size += len(words[-1]) + 1
        return " ".join(words)[:chars]

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128)))

    def run(self) -> dict[str, Any]:
        """One realistic run's contents, shared by both peers."""
        args = {"query": self.text(ARGS_CHARS - len('{"query": ""}'))}
        return {
            "user": self.text(USER_CHARS),
            "args": args,
            "call_id": "call_" + self.uid().replace("-", "")[:24],
            "result": self.text(RESULT_CHARS),
            "reply": self.text(REPLY_CHARS),
        }


def _stats(values_ms: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values_ms), "min": min(values_ms), "max": max(values_ms)}


def _file_sizes(path: pathlib.Path) -> tuple[int, int]:
    wal = path.with_name(path.name + "-wal")
    return path.stat().st_size, wal.stat().st_size if wal.exists() else 0


class Sampler:
    """Collects (persist, load) timings until `samples` are taken or the length has used `budget_s`.

    `start` is when work on the length began (its build), so build + sampling share the budget;
    at least one sample is always taken.
    """

    def __init__(self, samples: int, budget_s: float, start: float) -> None:
        self.samples, self.budget_s, self.start = samples, budget_s, start
        self.persist_ms: list[float] = []
        self.load_ms: list[float] = []

    def done(self) -> bool:
        n = len(self.persist_ms)
        return n >= self.samples or (n > 0 and time.perf_counter() - self.start > self.budget_s)

    def add(self, t0: float, t1: float, t2: float) -> None:
        self.persist_ms.append((t1 - t0) * 1000)
        self.load_ms.append((t2 - t1) * 1000)

    def result(
        self, build: tuple[float, float], cold_load_s: float, path: pathlib.Path | tuple[int, int], runs: int
    ) -> dict:
        """`path`: the SQLite file, or (db bytes, wal bytes) measured by the caller (a PostgreSQL database)."""
        db_bytes, wal_bytes = _file_sizes(path) if isinstance(path, pathlib.Path) else path
        turns = [p + load for p, load in zip(self.persist_ms, self.load_ms, strict=True)]
        return {
            "samples": len(turns),
            "requested_samples": self.samples,
            "stopped_by_budget": len(turns) < self.samples,
            "length_s": round(time.perf_counter() - self.start, 3),
            "build_s": round(build[0], 3),
            "build_s_per_run": build[1] / (runs - len(turns)),
            "cold_load_ms": cold_load_s * 1000,
            "persist_ms": _stats(self.persist_ms),
            "load_ms": _stats(self.load_ms),
            "turn_ms": _stats(turns),
            "db_bytes": db_bytes,
            "wal_bytes": wal_bytes,
            "runs_stored": runs,
            "bytes_per_run": (db_bytes + wal_bytes) / runs,
        }


def _drive(
    peer: str,
    workdir: pathlib.Path,
    lengths: list[int],
    budget_s: float,
    measure: Callable[[int, pathlib.Path], dict[str, Any]],
) -> dict[str, Any]:
    """Run `measure` per length (ascending), skipping lengths extrapolated to blow the budget."""
    out: dict[int, dict[str, Any]] = {}
    prev: tuple[int, float, float] | None = None  # (length, build s per run, median turn s)
    for length in sorted(set(lengths)):
        if prev is not None:
            est_build, est_turn = prev[1] * length, prev[2] * length / prev[0]
            if est_build > budget_s or est_turn > budget_s:
                out[length] = {
                    "skipped": f"estimated build {est_build:.1f}s / one turn {est_turn:.1f}s "
                    f"(linear from L={prev[0]}) exceeds budget {budget_s:g}s"
                }
                continue
        path = workdir / f"{peer}-{length}.db"
        path.unlink(missing_ok=True)
        res = measure(length, path)
        out[length] = res
        prev = (length, res["build_s_per_run"], res["turn_ms"]["median"] / 1000)
    return {"peer": peer, "budget_s": budget_s, "lengths": out}


def agno_turns(
    workdir: pathlib.Path, lengths: list[int], samples: int, budget_s: float = DEFAULT_BUDGET_S
) -> dict[str, Any]:
    """Agno 3.x SqliteDb: persist = cleanup_and_store, load = read_or_create_session (full session)."""
    from agno.agent import Agent
    from agno.agent._run import cleanup_and_store
    from agno.agent._storage import read_or_create_session
    from agno.db.sqlite import SqliteDb
    from agno.db.utils import build_run_rows_for_session
    from agno.metrics import RunMetrics
    from agno.models.message import Message
    from agno.models.response import ToolExecution
    from agno.run.agent import RunInput, RunOutput
    from agno.run.base import RunStatus
    from agno.session import AgentSession
    from sqlalchemy.dialects.sqlite import insert

    def make_run(gen: TextGen) -> RunOutput:
        r = gen.run()
        cid, fn = r["call_id"], {"name": "search", "arguments": json.dumps(r["args"])}
        messages = [
            Message(role="user", content=r["user"]),
            Message(role="assistant", tool_calls=[{"id": cid, "type": "function", "function": fn}]),
            Message(role="tool", tool_call_id=cid, tool_name="search", content=r["result"]),
            Message(role="assistant", content=r["reply"]),
        ]
        tool = ToolExecution(tool_call_id=cid, tool_name="search", tool_args=r["args"], result=r["result"])
        metrics = RunMetrics(input_tokens=900, output_tokens=300, total_tokens=1200)
        return RunOutput(
            run_id=gen.uid(),
            agent_name="bench",
            input=RunInput(input_content=r["user"]),
            content=r["reply"],
            model="gpt-4o",
            model_provider="OpenAI",
            status=RunStatus.completed,
            metrics=metrics,
            messages=messages,
            tools=[tool],
            **IDS,
        )

    def measure(length: int, path: pathlib.Path) -> dict[str, Any]:
        gen = TextGen(length)
        t_build = time.perf_counter()
        db = SqliteDb(db_file=str(path))
        session = AgentSession(session_data={}, created_at=int(time.time()), **IDS)
        db.upsert_session(session)
        runs_table = db._get_table("runs", create_table_if_not_found=True)
        t_runs = time.perf_counter()  # from here on, the cost grows with the length
        session.runs = [make_run(gen) for _ in range(length)]
        with db.Session() as sess, sess.begin():
            sess.execute(insert(runs_table), build_run_rows_for_session(session))
        db.close()  # checkpoints the WAL into the db file: part of the build
        build = (time.perf_counter() - t_build, time.perf_counter() - t_runs)

        db = SqliteDb(db_file=str(path))
        agent = Agent(db=db, id=AGENT_ID, name="bench")
        t0 = time.perf_counter()
        session = read_or_create_session(agent, session_id=SESSION_ID, user_id=USER_ID)
        cold_load_s = time.perf_counter() - t0
        assert len(session.runs or []) == length, "built session did not load back"
        sampler = Sampler(samples, budget_s, start=t_build)
        while not sampler.done():
            run = make_run(gen)
            t0 = time.perf_counter()
            cleanup_and_store(agent, run_response=run, session=session)
            t1 = time.perf_counter()
            session = read_or_create_session(agent, session_id=SESSION_ID, user_id=USER_ID)
            sampler.add(t0, t1, time.perf_counter())
        runs = length + len(sampler.persist_ms)
        assert len(session.runs or []) == runs, "a run is missing (agno logs and swallows write errors)"
        result = sampler.result(build, cold_load_s, path, runs)
        db.close()
        return result

    return _drive("agno", workdir, lengths, budget_s, measure)


def agents_sdk_turns(
    workdir: pathlib.Path, lengths: list[int], samples: int, budget_s: float = DEFAULT_BUDGET_S
) -> dict[str, Any]:
    """Agents SDK SQLiteSession: persist = the Runner's 3 add_items calls, load = get_items()."""
    from agents import Agent, ItemHelpers
    from agents.items import MessageOutputItem, ToolCallItem, ToolCallOutputItem
    from agents.memory import SQLiteSession
    from agents.run_internal.items import ensure_input_item_format, run_item_to_input_item
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    agent = Agent(name="bench")

    def make_run(gen: TextGen) -> list[list[Any]]:
        """The run's items in the batches the Runner saves them: input, tool turn, final output."""
        r = gen.run()
        call = ResponseFunctionToolCall(
            id="fc_" + gen.uid().replace("-", ""),
            call_id=r["call_id"],
            name="search",
            arguments=json.dumps(r["args"]),
            type="function_call",
            status="completed",
        )
        text = ResponseOutputText(text=r["reply"], type="output_text", annotations=[], logprobs=[])
        msg = ResponseOutputMessage(
            id="msg_" + gen.uid().replace("-", ""),
            role="assistant",
            status="completed",
            type="message",
            content=[text],
        )
        output = ItemHelpers.tool_call_output_item(call, r["result"])
        run_items = [
            ToolCallItem(agent=agent, raw_item=call),
            ToolCallOutputItem(agent=agent, raw_item=output, output=r["result"]),
            MessageOutputItem(agent=agent, raw_item=msg),
        ]
        tool_call, tool_output, reply = (ensure_input_item_format(run_item_to_input_item(i)) for i in run_items)
        return [ItemHelpers.input_to_new_input_list(r["user"]), [tool_call, tool_output], [reply]]

    async def measure_async(length: int, path: pathlib.Path) -> dict[str, Any]:
        gen = TextGen(length)
        t_build = time.perf_counter()
        builder = SQLiteSession(SESSION_ID, path)
        t_runs = time.perf_counter()  # from here on, the cost grows with the length
        await builder.add_items([item for _ in range(length) for batch in make_run(gen) for item in batch])
        builder.close()
        build = (time.perf_counter() - t_build, time.perf_counter() - t_runs)

        session = SQLiteSession(SESSION_ID, path)
        t0 = time.perf_counter()
        history = await session.get_items()
        cold_load_s = time.perf_counter() - t0
        assert len(history) == 4 * length, "built session did not load back"
        sampler = Sampler(samples, budget_s, start=t_build)
        while not sampler.done():
            batches = make_run(gen)
            t0 = time.perf_counter()
            for batch in batches:
                await session.add_items(batch)
            t1 = time.perf_counter()
            history = await session.get_items()
            sampler.add(t0, t1, time.perf_counter())
        runs = length + len(sampler.persist_ms)
        assert len(history) == 4 * runs, "a persisted item is missing"
        result = sampler.result(build, cold_load_s, path, runs)
        session.close()
        return result

    return _drive("agents_sdk", workdir, lengths, budget_s, lambda n, p: asyncio.run(measure_async(n, p)))


def markdown_table(results: list[dict[str, Any]]) -> str:
    rows = [
        "| peer | L | samples | persist ms (median) | load ms (median) | turn ms median (min-max) "
        "| cold load ms | build s | bytes/run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        for length, r in res["lengths"].items():
            if "skipped" in r:
                rows.append(f"| {res['peer']} | {length} | skipped: {r['skipped']} | | | | | | |")
                continue
            t = r["turn_ms"]
            n = f"{r['samples']}/{r['requested_samples']}" + (" (budget)" if r["stopped_by_budget"] else "")
            rows.append(
                f"| {res['peer']} | {length} | {n} | {r['persist_ms']['median']:.2f} "
                f"| {r['load_ms']['median']:.2f} "
                f"| {t['median']:.2f} ({t['min']:.2f}-{t['max']:.2f}) | {r['cold_load_ms']:.1f} "
                f"| {r['build_s']:.2f} | {r['bytes_per_run']:.0f} |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="10,1000", help="comma-separated session lengths (runs)")
    parser.add_argument("--samples", type=int, default=20, help="timed turns per length")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="seconds per length, build included")
    parser.add_argument("--peers", default="agno,agents_sdk", help="subset of agno,agents_sdk")
    parser.add_argument("--workdir", type=pathlib.Path, help="parent dir for the temporary db files")
    parser.add_argument("--json", type=pathlib.Path, help="write the full results here")
    args = parser.parse_args(argv)
    lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
    runners = {"agno": agno_turns, "agents_sdk": agents_sdk_turns}
    results = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-peers-") as tmp:
        for peer in args.peers.split(","):
            results.append(runners[peer.strip()](pathlib.Path(tmp), lengths, args.samples, args.budget_s))
    print(markdown_table(results))
    print(f"\ntotal {time.perf_counter() - started:.1f}s")
    if args.json:
        versions = {p: importlib.metadata.version(p) for p in ("agno", "openai-agents", "sqlalchemy")}
        payload = {"versions": versions, "samples": args.samples, "results": {r["peer"]: r for r in results}}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
