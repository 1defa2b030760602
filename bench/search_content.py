"""Search cost against hostile content and hostile queries, as a ratio to the same search on plain input.

1. Content: the same query ("fjord trip") over stores holding the same number of hits (`hits`)
   plus as many messages without the words, where the hits are:
   - short: one sentence (the baseline);
   - nul: `size` bytes of text with a NUL near its start (issue #7: 89 s per search at 960 KB);
   - control: `size` bytes with control characters (NUL, ESC, DEL, ...) between every few words;
   - late: `size` bytes whose only query words are at the very end;
   - repeated: `size` bytes of nothing but the query words. Not held to the target: bm25 counts
     every occurrence of the words in every matching text, inside FTS5, so this costs time in
     proportion to those occurrences (it is printed to keep that cost visible).
2. Query length: a query of 5,000 and one of 1,000,000 characters repeating the same two words
   (so the words searched for are the same), against the two-word query, on the short store.

Each store is built fresh in this run; the timed calls are `store.for_user(user).search` in process, taken in
rotation (one call on each store in turn) so background load falls on all of them alike. The target
is a p50 and p99 within 2x of the baseline.
Run: ``python -m bench.search_content [--quick] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

from mcp_server_sessions.server.cli import configure_logging
from mcp_server_sessions.store import NewMessage, NewRun, SqliteStore

USER_ID = "bench-user"
QUERY = "fjord trip"
TARGET_RATIO = 2.0
_FILLER = "kayak lake shore "
_CONTROLS = "\x00\x01\x1b[31m\x7f "


def _padded(head: str, unit: str, tail: str, size: int) -> str:
    return head + unit * ((size - len(head) - len(tail)) // len(unit)) + tail


HITS: dict[str, Callable[[int], str]] = {
    "short": lambda size: "the fjord trip we planned",
    "nul": lambda size: _padded("a\x00 the fjord trip ", _FILLER, "", size),
    "control": lambda size: _padded(_CONTROLS + "the fjord trip ", _FILLER + _CONTROLS, "", size),
    "late": lambda size: _padded("", _FILLER, "the fjord trip", size),
    "repeated": lambda size: _padded("", "fjord trip ", "", size),
}


async def build(path: pathlib.Path, text: str, hits: int) -> SqliteStore:
    store = await SqliteStore.open(path)
    for index in range(hits * 2):
        content = text if index % 2 else f"unrelated message number {index}"
        run = NewRun(run_id="r1", input="-", content="ok", messages=[NewMessage(role="user", content=content)])
        await store.for_user(USER_ID).append_run(f"s{index}", run)
    return store


def _percentiles(values_ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values_ms, n=100, method="inclusive")
    return {"p50": q[49], "p99": q[98]}


async def _time_in_rotation(calls: dict[str, Callable[[], Any]], samples: int) -> dict[str, dict[str, float]]:
    times: dict[str, list[float]] = {name: [] for name in calls}
    for index in range(samples + 3):
        for name, call in calls.items():
            started = time.perf_counter()
            hits = await call()
            elapsed = (time.perf_counter() - started) * 1000
            assert hits, f"{name}: the search found nothing"
            if index >= 3:  # warm-up: the first calls fill the page cache
                times[name].append(elapsed)
    return {name: _percentiles(values) for name, values in times.items()}


async def main_async(hits: int, size: int, samples: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        stores = {name: await build(pathlib.Path(tmp) / f"{name}.db", make(size), hits) for name, make in HITS.items()}
        try:
            short = stores["short"]
            content = {name: _search(store, QUERY, hits) for name, store in stores.items()}
            queries = {
                f"{chars:,} chars": _search(short, (f"{QUERY} " * chars)[:chars], hits) for chars in (5_000, 1_000_000)
            }
            timed = await _time_in_rotation({**content, "2 words": content["short"], **queries}, samples)
        finally:
            for store in stores.values():
                await store.close()
    return {"hits": hits, "size": size, "samples": samples, "ms": timed}


def _search(store: SqliteStore, query: str, hits: int) -> Callable[[], Any]:
    sessions = store.for_user(USER_ID)
    return lambda: sessions.search(query, limit=hits)


def markdown(result: dict[str, Any]) -> str:
    ms = result["ms"]
    rows = [
        f"{result['hits']} hits of {result['size']:,} bytes each, {result['samples']} searches per row; "
        f"target: within {TARGET_RATIO:.0f}x of the baseline.",
        "",
        "| search | p50 / p99 ms | vs baseline p50 / p99 | within target |",
        "|---|---:|---:|---|",
    ]
    groups = (("short", [name for name in HITS]), ("2 words", ["2 words", "5,000 chars", "1,000,000 chars"]))
    for baseline, names in groups:
        for name in names:
            label = f"hits are {name}" if name in HITS else f"query of {name}"
            ratios = (ms[name]["p50"] / ms[baseline]["p50"], ms[name]["p99"] / ms[baseline]["p99"])
            verdict = "baseline" if name == baseline else ("yes" if max(ratios) <= TARGET_RATIO else "NO")
            if name == "repeated":
                verdict = f"{verdict} (not a target: bm25 counts every occurrence)"
            rows.append(
                f"| {label} | {ms[name]['p50']:.2f} / {ms[name]['p99']:.2f} | "
                f"{ratios[0]:.2f}x / {ratios[1]:.2f}x | {verdict} |"
            )
    return "\n".join(rows)


def run(quick: bool) -> dict[str, Any]:
    hits, size, samples = (10, 120_000, 100) if quick else (20, 960_000, 100)
    return asyncio.run(main_async(hits, size, samples))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 hits of 120 KB instead of 20 of 960 KB")
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    result = run(args.quick)
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
