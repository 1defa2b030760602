"""Every benchmark in one command: ``python -m bench`` (about 40 minutes on 2 cores, half of it
building PostgreSQL's fixtures) or ``python -m bench --quick`` (about two minutes, run by CI so the
benchmarks never rot).

Writes ``results.md`` (the tables) and ``results.json`` (every figure) to ``--out``. One throwaway
PostgreSQL cluster (bench/postgres_cluster.py) serves the whole run; without PostgreSQL's server
binaries its parts are skipped with one line saying so, except under CI, where the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import pathlib
import platform
import tempfile
import time
from typing import Any

from mcp_server_sessions.server.cli import configure_logging

from . import (
    delete_lock,
    export_import,
    first_run,
    fork_cost,
    http_load,
    http_postgres,
    mcp_roundtrip,
    postgres_cluster,
    result_size,
    run_overhead,
    search_content,
    token_verify,
    tools_list,
)
from .ours import ours_turns
from .peers import agents_sdk_turns, agno_turns, markdown_table
from .store_suite import figures_table, run_suite


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def turn_ratios(results: list[dict[str, Any]]) -> str:
    ours = next(r for r in results if r["peer"] == "ours")["lengths"]
    rows = ["| session length | peer | peer turn ms / our turn ms (median) |", "|---:|---|---:|"]
    for res in results:
        if res["peer"] == "ours":
            continue
        for length, r in res["lengths"].items():
            if "turn_ms" in r and "turn_ms" in ours.get(length, {}):
                ratio = r["turn_ms"]["median"] / ours[length]["turn_ms"]["median"]
                rows.append(f"| {length:,} | {res['peer']} | {ratio:.0f}x |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the benchmarks run")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("bench/results"))
    parser.add_argument("--sqlite-only", action="store_true", help="skip the PostgreSQL parts (never under CI)")
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    quick = args.quick
    started = time.perf_counter()
    sections: list[str] = [f"Machine: {machine()}. Mode: {'quick' if quick else 'full'}."]
    report: dict[str, Any] = {"machine": machine(), "quick": quick}
    with (
        tempfile.TemporaryDirectory(prefix="bench-") as tmp,
        postgres_cluster.bench_cluster(skip=args.sqlite_only) as (cluster, pg_skipped),
    ):
        workdir = pathlib.Path(tmp)
        suite = run_suite(workdir, quick, cluster=cluster, pg_skipped=pg_skipped)
        report["store"] = suite
        sections.append("## Store (ours, in process): SQLite and PostgreSQL\n\n" + figures_table(suite))

        hostile = search_content.run(quick)
        report["search_content"] = hostile
        sections.append("## Search over hostile content and long queries\n\n" + search_content.markdown(hostile))

        deleting = asyncio.run(delete_lock.main_async(quick, workdir))
        report["delete_lock"] = deleting
        sections.append("## Deleting a large session while another process writes\n\n" + delete_lock.markdown(deleting))

        forks = asyncio.run(fork_cost.main_async(quick, workdir, cluster, pg_skipped))
        report["fork_cost"] = forks
        sections.append("## Forking a session: fork_session next to append_run\n\n" + fork_cost.markdown(forks))

        lengths = [10, 300] if quick else [10, 1000, 3000]
        samples, budget = (5, 10.0) if quick else (30, 40.0)
        turns = [ours_turns(workdir, lengths, samples, budget)]
        for name, peer in (("agno", agno_turns), ("agents", agents_sdk_turns)):
            if importlib.util.find_spec(name):
                turns.append(peer(workdir, lengths, samples, budget))
        report["turns"] = turns
        sections.append(
            "## Per-turn store cost: persist a run + load the next context\n\n"
            + markdown_table(turns)
            + "\n\n"
            + turn_ratios(turns)
        )

        trip_args = argparse.Namespace(
            length=100 if quick else 10_000, calls=20 if quick else 400, starts=2 if quick else 11
        )
        trips = asyncio.run(mcp_roundtrip.main_async(trip_args))
        report["mcp"] = trips
        sections.append(
            "## MCP round trips over stdio\n\n"
            + mcp_roundtrip.markdown(trip_args.length, trips["round_trips"], trips["cold_start"])
        )

        load = asyncio.run(http_load.main_async(quick))
        report["http_load"] = load
        failures = http_load.problems(load)
        sections.append(
            "## MCP over streamable HTTP under load, next to a bare no-op MCPServer\n\n" + http_load.markdown(load)
        )

        replicated = asyncio.run(http_postgres.main_async(quick, cluster, pg_skipped))
        report["http_postgres"] = replicated
        failures += http_postgres.problems(replicated)
        sections.append(
            "## HTTP replicas on one PostgreSQL: two against one, under load\n\n" + http_postgres.markdown(replicated)
        )

        verifying = asyncio.run(token_verify.main_async(quick))
        report["token_verify"] = verifying
        sections.append("## Bearer-token verification per request\n\n" + token_verify.markdown(verifying))

        run_lengths = [10] if quick else [10, 10_000]
        overhead = asyncio.run(run_overhead.main_async(run_lengths, 10 if quick else 100))
        report["run_overhead"] = overhead
        sections.append("## Server overhead per `run` (test double as the model)\n\n" + run_overhead.markdown(overhead))

        first = asyncio.run(first_run.measure(1 if quick else 5))
        report["first_run"] = first
        sections.append("## Other calls during a fresh server's first `run`\n\n" + first_run.markdown(first))

        sizes = asyncio.run(result_size.main_async(quick))
        report["result_size"] = sizes
        sections.append("## Largest legal requests: bytes returned, server peak RSS\n\n" + result_size.markdown(sizes))
        failures += export_import.register(report, sections, quick, cluster, pg_skipped, workdir)

        tools = asyncio.run(tools_list.measure())  # the same in quick and full runs: it is a size, not a timing
        report["tools_list"] = tools
        sections.append("## What tools/list costs a host's context\n\n" + tools_list.markdown(tools))

    report["seconds"] = round(time.perf_counter() - started, 1)
    sections.append(f"Total time: {report['seconds']} s.")
    text = "\n\n".join(sections) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(text)
    if failures:  # wrong answers, not slow ones: reported above, then the run fails
        raise SystemExit("\n".join(failures))


if __name__ == "__main__":
    main()
