"""Export and import of many sessions through the real console script: runs per second each way, and the
command's peak memory, which must stay flat whatever the size (both commands stream, one session at a time).

A store is filled with N sessions of R runs each (full: 10,000 x 20 = 200,000 runs) through the store's own
`import_session`, one SessionRecord built here per session, never timed. Each run is a realistic turn: the
user's input (~200 characters), an answer of a few hundred characters, a tool call (arguments and a ~500
character result, with its tool message) on every third run, and metrics; sessions are spread over 100
users, some with a summary, an agent configuration, state and metadata.

Then, each as its own child process (`mcp-server-sessions`, the installed console script, found next to
this interpreter), timed from spawn to exit and reaped with `os.wait4` so its peak RSS (ru_maxrss) is that
command's alone:

1. `export --all-users -o FILE --db DB`: the filled store to a file (runs/s = runs / wall seconds);
2. `import FILE --db DB2` into an empty store;
3. `export --all-users -o FILE2 --db DB2` (not in the table): FILE2 must equal FILE byte for byte;
4. `list --limit 1 --json --db DB`: the baseline, what the interpreter and the store's opening cost.

The same is done at a tenth of the size (full: 1,000 x 20) in the same run: the ratio of peak memory at the
full size to the tenth's is close to 1.0 when memory is flat. Wall seconds include the interpreter's start
(the baseline's seconds show how much that is).

SQLite always; PostgreSQL on a throwaway cluster (bench/postgres_cluster.py) when its server binaries are
there, each store a database of that cluster, dropped after its section. PostgreSQL's full run is a tenth
of SQLite's (1,000 x 20, and 100 x 20 for its ratio): importing runs about 700 runs/s on 2 cores, so the
fill, the import and the two exports of 200,000 runs would take some 17 minutes on their own.
Run: ``python -m bench.export_import [--quick] [--out DIR] [--sqlite-only]`` (``--quick``: 100 x 5 and
10 x 5, a few seconds, as CI runs it); writes ``export_import.json`` to ``--out`` when given.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mcp_server_sessions.store import NewToolCall, SessionStore, SqliteStore
from mcp_server_sessions.store.models import (
    Session,
    SessionMetrics,
    SessionSummary,
    StoredAgentConfig,
    StoredRunMetrics,
    ToolCall,
)
from mcp_server_sessions.store.records import RecordedMessage, RunRecord, SessionRecord

from . import postgres_cluster
from .peers import TextGen

MB = 1_000_000
USERS = 100
TOOL_EVERY = 3  # a tool call on every third run
COMMAND_TIMEOUT_S = 1_800
EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Size:
    sessions: int
    runs_per_session: int

    @property
    def runs(self) -> int:
        return self.sessions * self.runs_per_session

    @property
    def label(self) -> str:
        return f"{self.sessions:,} x {self.runs_per_session}"


FULL = (Size(10_000, 20), Size(1_000, 20))
PG_FULL = (Size(1_000, 20), Size(100, 20))
QUICK = (Size(100, 5), Size(10, 5))
"""The measured size first, then its tenth."""
PG_REDUCED = (
    "PostgreSQL is measured at a tenth of the size (1,000 x 20, and 100 x 20 for its ratio): at about 700 runs/s "
    "imported on 2 cores, filling, importing and twice exporting 200,000 runs would take some 17 minutes alone"
)


# -- the records ------------------------------------------------------------------------------------------


class Texts:
    """Seeded pseudo-word text (bench.peers' vocabulary) cut from one long corpus at random offsets: each
    text differs, and making 200,000 runs' worth costs next to nothing."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.corpus = TextGen(seed).text(1_000_000)

    def text(self, chars: int) -> str:
        start = self.rng.randrange(len(self.corpus) - chars)
        start = self.corpus.find(" ", start) + 1  # from a word's start
        return self.corpus[start : start + chars].strip()

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128)))


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # as the store writes its own (store/clock.py)


def _run(texts: Texts, session_id: str, number: int, at: datetime) -> RunRecord:
    run_id = texts.uid()
    created = _ts(at)
    question = texts.text(texts.rng.randint(120, 300))
    answer = texts.text(texts.rng.randint(300, 700))
    calls: list[ToolCall] = []
    messages = [RecordedMessage(role="user", content=question)]
    if number % TOOL_EVERY == TOOL_EVERY - 1:
        call = NewToolCall(
            tool_name="search",
            arguments={"query": texts.text(60), "limit": 5},
            result={"hits": [texts.text(90) for _ in range(5)]},
            tool_call_id="call_" + texts.uid().replace("-", "")[:24],
            duration_ms=round(texts.rng.uniform(20, 900), 1),
        )
        calls.append(
            ToolCall(
                tool_call_id=call.tool_call_id or "",
                run_id=run_id,
                tool_name=call.tool_name,
                arguments=call.arguments,
                result=call.result,
                is_error=False,
                created_at=created,
                duration_ms=call.duration_ms,
            )
        )
        messages.append(RecordedMessage(role="tool", content=call.history_line(), is_tool=True))
    messages.append(RecordedMessage(role="assistant", content=answer))
    input_tokens = texts.rng.randint(400, 6_000)
    output_tokens = len(answer) // 4
    return RunRecord(
        run_id=run_id,
        session_id=session_id,
        status="completed",
        input=question,
        content=answer,
        tool_calls=calls,
        metrics=StoredRunMetrics(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
            cache_read_tokens=texts.rng.randint(0, input_tokens),
            cache_write_tokens=0,
            duration_ms=round(texts.rng.uniform(800, 20_000), 1),
            time_to_first_token_ms=round(texts.rng.uniform(200, 1_500), 1),
            model="claude-sonnet-4-5",
        ),
        created_at=created,
        messages=messages,
    )


def session_record(texts: Texts, number: int, runs: int) -> SessionRecord:
    """Session `number` of the store, with `runs` runs a minute apart."""
    session_id = texts.uid()
    started = EPOCH + timedelta(minutes=17 * number)
    records = [_run(texts, session_id, i, started + timedelta(minutes=i)) for i in range(runs)]
    updated = _ts(started + timedelta(minutes=runs))
    metrics = SessionMetrics(
        input_tokens=sum(r.metrics.input_tokens or 0 for r in records),
        output_tokens=sum(r.metrics.output_tokens or 0 for r in records),
        total_tokens=sum(r.metrics.total_tokens or 0 for r in records),
        cache_read_tokens=sum(r.metrics.cache_read_tokens or 0 for r in records),
        cache_write_tokens=0,
    )
    summary = None
    if number % 4 == 0:
        summary = SessionSummary(
            summary=texts.text(300), topics=[texts.text(12), texts.text(12)], run_count=runs, updated_at=updated
        )
    agent = StoredAgentConfig(model="claude-sonnet-4-5", system=texts.text(150)) if number % 5 == 0 else None
    session = Session(
        session_id=session_id,
        user_id=f"user-{number % USERS:03d}",
        name=texts.text(40),
        state={"step": number % 7, "notes": texts.text(80)},
        metadata={"source": "bench", "tags": [texts.text(10)]},
        agent=agent,
        summary=summary,
        run_count=runs,
        created_at=_ts(started),
        updated_at=updated,
        metrics=metrics,
    )
    return SessionRecord(session=session, runs=records)


async def fill(store: SessionStore, size: Size, seed: int) -> None:
    texts = Texts(seed)
    for number in range(size.sessions):
        await store.import_session(session_record(texts, number, size.runs_per_session))


# -- the stores -------------------------------------------------------------------------------------------


class Backend:
    name = ""

    async def fresh(self, label: str) -> str:
        """A new empty store's --db."""
        raise NotImplementedError

    async def open(self, db: str) -> SessionStore:
        raise NotImplementedError

    async def discard(self, db: str) -> None:
        raise NotImplementedError


class SqliteBackend(Backend):
    name = "SQLite"

    def __init__(self, workdir: pathlib.Path) -> None:
        self.workdir = workdir

    async def fresh(self, label: str) -> str:
        return str(self.workdir / f"{label}.db")  # not created: `import` makes it

    async def open(self, db: str) -> SessionStore:
        return await SqliteStore.open(db)

    async def discard(self, db: str) -> None:
        for suffix in ("", "-wal", "-shm"):
            pathlib.Path(db + suffix).unlink(missing_ok=True)


class PostgresBackend(Backend):
    name = "PostgreSQL"

    def __init__(self, cluster: postgres_cluster.Cluster) -> None:
        self.cluster = cluster

    async def fresh(self, label: str) -> str:
        return await self.cluster.create_database(f"bench_{label}".replace("-", "_"))

    async def open(self, db: str) -> SessionStore:
        from mcp_server_sessions.store.postgres import PostgresStore

        return await PostgresStore.open(db)

    async def discard(self, db: str) -> None:
        await self.cluster.drop_database(db.rsplit("/", 1)[1])


# -- the commands -----------------------------------------------------------------------------------------


def console_script() -> str:
    """The installed `mcp-server-sessions` beside this interpreter (not a version manager's shim, whose own
    processes would be timed with it), else the one on PATH."""
    beside = pathlib.Path(sys.executable).parent / "mcp-server-sessions"
    if beside.exists():
        return str(beside)
    found = shutil.which("mcp-server-sessions")
    if found is None:
        raise SystemExit("bench: mcp-server-sessions is not installed (pip install -e .)")
    return found


WRAPPER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
figures = {"seconds": seconds, "maxrss_kib": usage.ru_maxrss, "exit": os.waitstatus_to_exitcode(status)}
with open(sys.argv[1], "w") as out:
    json.dump(figures, out)
"""
"""Runs one command and writes its wall seconds, peak RSS and exit status to a file. A process spawned
by this bench directly would report the bench's own peak: Linux keeps the high-water mark of the memory a
process had before its exec, and a child forked (or vforked) from the bench starts with the bench's. This
small interpreter's is far below any command's."""


def measure(args: list[str], workdir: pathlib.Path) -> dict[str, float]:
    """Run `mcp-server-sessions ARGS` as the only child of a fresh small wrapper: its wall seconds (spawn
    to exit) and peak RSS in MB. A failure ends the bench with the command's stderr."""
    out_path, err_path, figures_path = (workdir / f"command.{name}" for name in ("out", "err", "json"))
    env = {key: value for key, value in os.environ.items() if not key.startswith("MCP_SESSIONS_")}  # --db decides
    with out_path.open("wb") as out, err_path.open("wb") as err:
        subprocess.run(
            [sys.executable, "-I", "-S", "-c", WRAPPER, str(figures_path), console_script(), *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    figures = json.loads(figures_path.read_text()) if figures_path.exists() else {"exit": "none: the wrapper failed"}
    figures_path.unlink(missing_ok=True)
    if figures["exit"] != 0:
        raise SystemExit(
            f"bench: `mcp-server-sessions {' '.join(args)}` exited {figures['exit']}:\n"
            f"{err_path.read_text(errors='replace')[-4000:]}"
        )
    return {"seconds": figures["seconds"], "peak_mb": figures["maxrss_kib"] * 1024 / MB}  # KiB on Linux


async def one_size(backend: Backend, size: Size, workdir: pathlib.Path, label: str) -> dict[str, Any]:
    source, target = await backend.fresh(f"{label}-source"), await backend.fresh(f"{label}-target")
    first, second = workdir / f"{label}-first.jsonl", workdir / f"{label}-second.jsonl"
    try:
        started = time.perf_counter()
        store = await backend.open(source)
        try:
            await fill(store, size, seed=1)
        finally:
            await store.close()
        fill_s = time.perf_counter() - started
        print(f"  {backend.name} {size.label}: filled in {fill_s:.1f} s; measuring", flush=True)
        figures = {
            "export": measure(["export", "--all-users", "-o", str(first), "--db", source], workdir),
            "import": measure(["import", str(first), "--db", target], workdir),
        }
        measure(["export", "--all-users", "-o", str(second), "--db", target], workdir)
        baseline = measure(["list", "--limit", "1", "--json", "--db", source], workdir)
        for figure in figures.values():
            figure["runs_per_s"] = size.runs / figure["seconds"]
        return {
            "sessions": size.sessions,
            "runs": size.runs,
            "fill_s": fill_s,
            "file_bytes": first.stat().st_size,
            "round_trip_equal": _same_bytes(first, second),
            "baseline": baseline,
            **figures,
        }
    finally:
        first.unlink(missing_ok=True)
        second.unlink(missing_ok=True)
        await backend.discard(source)
        await backend.discard(target)


def _same_bytes(a: pathlib.Path, b: pathlib.Path, chunk: int = 1 << 20) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while block := fa.read(chunk):
            if block != fb.read(chunk):
                return False
    return True


async def one_backend(backend: Backend, sizes: tuple[Size, ...], workdir: pathlib.Path) -> dict[str, Any]:
    results = {}
    for index, size in enumerate(sizes):
        results[size.label] = await one_size(backend, size, workdir, "full" if index == 0 else "tenth")
    full, tenth = results[sizes[0].label], results[sizes[1].label]
    for direction in ("export", "import"):
        full[direction]["ratio_to_tenth"] = full[direction]["peak_mb"] / tenth[direction]["peak_mb"]
    return {"backend": backend.name, "sizes": results}


async def main_async(
    quick: bool,
    cluster: postgres_cluster.Cluster | None = None,
    pg_skipped: str = "",
    workdir: pathlib.Path | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-export-import-", dir=workdir) as tmp:
        where = pathlib.Path(tmp)
        backends: list[tuple[Backend, tuple[Size, ...]]] = [(SqliteBackend(where), QUICK if quick else FULL)]
        if cluster is not None:
            backends.append((PostgresBackend(cluster), QUICK if quick else PG_FULL))
        results = []
        for backend, sizes in backends:
            started = time.perf_counter()
            results.append(await one_backend(backend, sizes, where))
            results[-1]["seconds"] = time.perf_counter() - started
    return {
        "quick": quick,
        "console_script": console_script(),
        "backends": results,
        "postgres_skipped": pg_skipped or None,
        "postgres_reduced": PG_REDUCED if cluster is not None and not quick else None,
    }


def markdown(report: dict[str, Any]) -> str:
    rows = [
        "| size (sessions x runs) | backend | direction | seconds | runs/s | peak MB | over baseline | full / tenth |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    notes = []
    for result in report["backends"]:
        for label, figures in result["sizes"].items():
            baseline = figures["baseline"]
            for direction in ("export", "import"):
                f = figures[direction]
                ratio = f"{f['ratio_to_tenth']:.2f}x" if "ratio_to_tenth" in f else ""
                rows.append(
                    f"| {label} | {result['backend']} | {direction} | {f['seconds']:.1f} | {f['runs_per_s']:,.0f} "
                    f"| {f['peak_mb']:.1f} | {f['peak_mb'] - baseline['peak_mb']:+.1f} | {ratio} |"
                )
            rows.append(
                f"| {label} | {result['backend']} | baseline: `list --limit 1 --json` | {baseline['seconds']:.1f} | "
                f"| {baseline['peak_mb']:.1f} | | |"
            )
            notes.append(
                f"{result['backend']} {label}: export file {figures['file_bytes'] / MB:,.1f} MB; "
                "export -> import -> export gives the same bytes: "
                + ("yes." if figures["round_trip_equal"] else "**NO**.")
            )
    if report["postgres_reduced"]:
        notes.append(f"{report['postgres_reduced']}.")
    if report["postgres_skipped"]:
        notes.append(f"PostgreSQL skipped: {report['postgres_skipped']}.")
    notes.append(
        "Peak MB is the command's peak RSS (ru_maxrss, via os.wait4); seconds are wall time from spawn to exit, "
        "interpreter start included; full / tenth is the peak at the size over the peak at a tenth of it. "
        "On PostgreSQL only the command's memory is counted, not the server's."
    )
    return "\n".join(rows) + "\n\n" + "\n".join(f"- {note}" for note in notes)


def problems(report: dict[str, Any]) -> list[str]:
    """Wrong answers, not slow ones: a round trip that changed bytes."""
    return [
        f"export_import: {result['backend']} {label}: export -> import -> export changed the bytes"
        for result in report["backends"]
        for label, figures in result["sizes"].items()
        if not figures["round_trip_equal"]
    ]


def register(
    report: dict[str, Any],
    sections: list[str],
    quick: bool,
    cluster: postgres_cluster.Cluster | None,
    pg_skipped: str,
    workdir: pathlib.Path,
) -> list[str]:
    """This bench's part of `python -m bench` in one call: measure, add the figures to `report` and the
    table to `sections`; the problems found."""
    result = asyncio.run(main_async(quick, cluster, pg_skipped, workdir))
    report["export_import"] = result
    sections.append("## Export and import through the console script: runs/s and peak memory\n\n" + markdown(result))
    return problems(result)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 x 5 and 10 x 5: checks the bench runs")
    parser.add_argument("--out", type=pathlib.Path, help="write export_import.json (every figure) here")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL (never under CI)")
    args = parser.parse_args(argv)
    with postgres_cluster.bench_cluster(skip=args.sqlite_only) as (cluster, pg_skipped):
        report = asyncio.run(main_async(args.quick, cluster, pg_skipped))
    print(markdown(report))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "export_import.json").write_text(json.dumps(report, indent=2) + "\n")
    if failures := problems(report):
        raise SystemExit("\n".join(failures))


if __name__ == "__main__":
    main()
