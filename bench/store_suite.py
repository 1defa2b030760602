"""Store-level figures of our SQLite store (SPEC section 4), against the performance targets.

Everything here calls `SqliteStore` in process (no MCP, no server): what is timed is the public
store API (a user's handle, `store.for_user(user)`), one awaited call at a time, on a store opened
fresh after its fixture was built.

1. Append: one realistic run (`bench.ours.realistic_run`: user message, one tool call with its
   tool message, assistant reply) through `append_run`, on a session already holding L runs, as a
   ratio to the append at L=10 of the same suite run. Each append is followed by the read of the
   next turn's context (item 2), exactly like `bench.ours`, so the per-length detail table is
   `bench.peers.markdown_table`'s. The lengths are sampled in rotation (one turn at each L in
   turn), so background load on the machine falls on all of them alike; the load average at the
   start and end of the suite is printed with the figures.
2. Reads at each L: the last 3 runs (`get_chat_history(last_n_runs=3, include_tool_messages=True)`)
   and a page of 50 messages in the middle of the session (`get_chat_history(limit=50,
   cursor=...)`, the cursor got by paging to the middle with the public API).
3. One page of 20 sessions (updated_at desc) of a user holding 10,000 sessions: the first page
   and a page 90% of the way down, reached with a cursor.
4. Search over 1,000,000 messages in 10,000 sessions of 20 users (~50,000 messages per user): user
   and assistant messages of seeded pseudo-words drawn with Zipf-like frequencies (weight 1/rank)
   from a 50,000-word vocabulary, so a few words are in most messages and the tail words in a
   handful. `store.for_user(user).search(query)` for a common word, a mid-frequency word, a rare word, and
   two two-word queries, each over many queries that vary the user and the words. If building the
   corpus takes longer than `build_budget_s` (180 s), it stops adding sessions and the output
   says REDUCED with the size actually built.
5. Bytes on disk per run (db + wal after a checkpoint) at the largest L, split by table.

The session fixtures and the search corpus are built with `SqliteStore.import_runs` (the store's
bulk import: thousands of runs per transaction); it is never timed. Only the calls above are
measured. Statistics of the files (bytes per table, how many messages a query matches) are read
with sqlite3 on the closed or open file, beside the store, never through it.
Run: ``python -m bench.store_suite [--quick] [--json PATH] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import pathlib
import platform
import random
import sqlite3
import statistics
import string
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import closing
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from mcp_server_sessions.store import NewMessage, NewRun, SqliteStore, UserSessions

from .ours import realistic_run
from .peers import REPLY_CHARS, SESSION_ID, USER_CHARS, USER_ID, Sampler, TextGen, _stats, markdown_table

# Targets (SPEC section 4 and the performance brief).
APPEND_RATIO_TARGET = 1.5  # append at the largest length / append at 10 runs
APPEND_MS_TARGET = 0.5  # median in-process append_run
SEARCH_P50_MS_TARGET = 20.0  # over 1,000,000 messages
SEARCH_P99_MS_TARGET = 100.0
SEARCH_TARGET_MESSAGES = 1_000_000


@dataclass(frozen=True)
class Config:
    mode: str
    lengths: tuple[int, ...]
    samples: int  # timed appends (each followed by a last-3-runs read) and middle pages per length
    budget_s: float  # sampling time per length (bench.peers.Sampler); `samples` normally ends it first
    list_sessions: int
    search_users: int
    search_sessions: int
    runs_per_session: int  # each run is a user and an assistant message
    queries: int  # timed searches per query kind
    build_budget_s: float  # the search corpus build stops adding sessions after this


FULL = Config(
    mode="full",
    lengths=(10, 1_000, 10_000, 100_000),
    samples=300,
    budget_s=240.0,
    list_sessions=10_000,
    search_users=20,
    search_sessions=10_000,
    runs_per_session=50,
    queries=200,
    build_budget_s=180.0,
)
QUICK = Config(
    mode="quick",
    lengths=(10, 1_000),
    samples=200,
    budget_s=20.0,
    list_sessions=1_000,
    search_users=20,
    search_sessions=200,
    runs_per_session=50,
    queries=200,
    build_budget_s=20.0,
)
LIST_USER = "list-user"
PAGE = 50  # messages per middle page
SESSIONS_PAGE = 20


# -- text for the search corpus -------------------------------------------------------------------


def _zipf_vocabulary(size: int, seed: int = 1) -> list[str]:
    """Distinct seeded pseudo-words (TextGen's idea, a larger vocabulary); list position = frequency rank."""
    rng = random.Random(seed)
    words: dict[str, None] = {}
    while len(words) < size:
        words.setdefault("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 11))))
    return list(words)


class ZipfText(TextGen):
    """TextGen whose words are drawn with weight 1/rank from `VOCAB` (rank 1 first)."""

    VOCAB: ClassVar[list[str]] = _zipf_vocabulary(50_000)
    _CUM_WEIGHTS: ClassVar[list[float]] = list(itertools.accumulate(1.0 / rank for rank in range(1, len(VOCAB) + 1)))

    def text(self, chars: int) -> str:
        out = ""
        while len(out) < chars:
            words = self.rng.choices(self.VOCAB, cum_weights=self._CUM_WEIGHTS, k=chars // 6 + 4)
            out = f"{out} {' '.join(words)}" if out else " ".join(words)
        return out[:chars]


# Query kinds: (description, vocabulary rank ranges of the words, one range per word).
QUERY_KINDS: dict[str, tuple[str, tuple[tuple[int, int], ...]]] = {
    "common": ("one word of rank 1-20", ((0, 20),)),
    "mid": ("one word of rank 200-2,000", ((200, 2_000),)),
    "rare": ("one word of rank 20,000-50,000", ((20_000, 50_000),)),
    "common+rare": ("rank 1-20 word + rank 20,000-50,000 word", ((0, 20), (20_000, 50_000))),
    "mid+mid": ("two words of rank 200-2,000", ((200, 2_000), (200, 2_000))),
}


def _corpus(cfg: Config, seed: int, deadline: float) -> Iterator[tuple[str, str, NewRun]]:
    """Sessions in creation order, each with its runs in a row; session i belongs to user i % users."""
    gen = ZipfText(seed)
    for i in range(cfg.search_sessions):
        if time.perf_counter() > deadline:
            return
        user_id, session_id = _search_user(i % cfg.search_users), f"s-{i:05d}"
        for _ in range(cfg.runs_per_session):
            user, reply = gen.text(USER_CHARS), gen.text(REPLY_CHARS)
            messages = [NewMessage(role="user", content=user), NewMessage(role="assistant", content=reply)]
            yield user_id, session_id, NewRun(run_id=gen.uid(), input=user, content=reply, messages=messages)


def _search_user(i: int) -> str:
    return f"user-{i:02d}"


# -- measurements ----------------------------------------------------------------------------------


def _percentiles(values_ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values_ms, n=100, method="inclusive")
    return {**_stats(values_ms), "p50": q[49], "p99": q[98]}


def _unlink_db(path: pathlib.Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _read_only(path: pathlib.Path) -> sqlite3.Connection:
    """A connection of the bench's own that only reads the store's file (for statistics, never timed)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _bytes_by_table(path: pathlib.Path) -> dict[str, int]:
    """Bytes of pages per table with its indexes (dbstat); the FTS5 shadow tables count as search_index."""
    with closing(_read_only(path)) as raw:
        owners = {r[0]: r[1] for r in raw.execute("SELECT name, tbl_name FROM sqlite_schema")}
        out: dict[str, int] = defaultdict(int)
        for name, size in raw.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            table = owners.get(name, name)
            out["search_index" if table.startswith("search_index") else table] += size
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


async def _warm_up(workdir: pathlib.Path, cfg: Config) -> None:
    """Untimed turns on a throwaway file, so that the first length measured (L=10, the base of the
    ratios) does not also pay for the process's first calls (imports, first pydantic validations)."""
    path = workdir / "warm-up.db"
    _unlink_db(path)
    store = await SqliteStore.open(path)
    sessions = store.for_user(USER_ID)
    gen = TextGen(1)
    for _ in range(cfg.samples):
        await sessions.append_run(SESSION_ID, realistic_run(gen))
        await sessions.get_chat_history(SESSION_ID, last_n_runs=3, include_tool_messages=True)
    await store.close()
    _unlink_db(path)


async def build_length(workdir: pathlib.Path, length: int) -> tuple[pathlib.Path, float]:
    """A fresh db file holding one session of `length` realistic runs (fixture, untimed)."""
    path = workdir / f"session-{length}.db"
    _unlink_db(path)
    t_build = time.perf_counter()
    builder = await SqliteStore.open(path)
    gen = TextGen(length)
    await builder.import_runs((USER_ID, SESSION_ID, realistic_run(gen)) for _ in range(length))
    await builder.close()  # checkpoints the WAL: part of the build
    return path, time.perf_counter() - t_build


async def measure_lengths(workdir: pathlib.Path, cfg: Config, keep: bool) -> dict[str, dict[str, Any]]:
    """Items 1, 2 and 5: every length on its own db file, the lengths measured in turn.

    The timed turns rotate over the lengths (one turn at L=10, one at L=1,000, ...), so whatever
    else the machine does while the suite runs falls on every length alike and the ratios to
    L=10 stay fair.
    """
    lengths = sorted(cfg.lengths)
    built = {n: await build_length(workdir, n) for n in lengths}
    stores: dict[int, SqliteStore] = {}
    sessions: dict[int, UserSessions] = {}
    gens: dict[int, TextGen] = {}
    cold_load_s: dict[int, float] = {}
    for n in lengths:
        stores[n] = await SqliteStore.open(built[n][0])
        sessions[n] = stores[n].for_user(USER_ID)
        gens[n] = TextGen(10**7 + n)
        t0 = time.perf_counter()
        context = await sessions[n].get_chat_history(SESSION_ID, last_n_runs=3, include_tool_messages=True)
        cold_load_s[n] = time.perf_counter() - t0
        assert len(context.messages) == 9, "built session did not load back"

    # One turn = append_run (timed: persist) + the next turn's context read (timed: load).
    t_sampling = time.perf_counter()
    samplers = {n: Sampler(cfg.samples, cfg.budget_s, start=t_sampling) for n in lengths}
    while not all(sampler.done() for sampler in samplers.values()):
        for n in lengths:
            if samplers[n].done():
                continue
            run = realistic_run(gens[n])
            t0 = time.perf_counter()
            await sessions[n].append_run(SESSION_ID, run)
            t1 = time.perf_counter()
            context = await sessions[n].get_chat_history(SESSION_ID, last_n_runs=3, include_tool_messages=True)
            samplers[n].add(t0, t1, time.perf_counter())
            assert context.messages[-1].run_id == run.run_id, "the new run is not in the next context"
    runs = {n: n + len(samplers[n].persist_ms) for n in lengths}

    # A page of 50 messages in the middle: the session has 2 non-tool messages per run, so paging
    # past `runs` of them (one call, untimed) gives the cursor of the middle.
    cursors: dict[int, str] = {}
    for n in lengths:
        assert (await sessions[n].get_session(SESSION_ID)).run_count == runs[n]
        middle = await sessions[n].get_chat_history(SESSION_ID, limit=runs[n])
        assert middle.next_cursor is not None
        cursors[n] = middle.next_cursor
    middle_ms: dict[int, list[float]] = {n: [] for n in lengths}
    for _ in range(cfg.samples):
        for n in lengths:
            t0 = time.perf_counter()
            page = await sessions[n].get_chat_history(SESSION_ID, limit=PAGE, cursor=cursors[n])
            middle_ms[n].append((time.perf_counter() - t0) * 1000)
            assert len(page.messages) == PAGE and page.next_cursor is not None

    out: dict[str, dict[str, Any]] = {}
    for n in lengths:
        await stores[n].close()  # checkpoints the WAL into the file, so the bytes below are all in it
        build_s = built[n][1]
        result = samplers[n].result((build_s, build_s), cold_load_s[n], built[n][0], runs[n])
        result["middle_page_ms"] = _stats(middle_ms[n])
        if n == lengths[-1]:
            by_table = _bytes_by_table(built[n][0])
            result["bytes_per_run_by_table"] = {name: round(size / runs[n]) for name, size in by_table.items()}
        if not keep:
            _unlink_db(built[n][0])
        out[str(n)] = result
    return out


async def measure_list_sessions(workdir: pathlib.Path, cfg: Config, keep: bool) -> dict[str, Any]:
    """Item 3: a page of 20 sessions of a user with `cfg.list_sessions` sessions (updated_at desc)."""
    path = workdir / "sessions.db"
    _unlink_db(path)
    t_build = time.perf_counter()
    builder = await SqliteStore.open(path)
    for i in range(cfg.list_sessions):  # start_session itself: cheap enough, one transaction each
        await builder.for_user(LIST_USER).start_session(f"s-{i:05d}", name=f"session {i}", metadata={"n": i})
    await builder.close()
    build_s = time.perf_counter() - t_build

    store = await SqliteStore.open(path)
    sessions = store.for_user(LIST_USER)
    deep_at = cfg.list_sessions * 9 // 10
    deep_cursor = (await sessions.list_sessions(limit=deep_at)).next_cursor  # untimed paging
    assert deep_cursor is not None
    out: dict[str, Any] = {"sessions": cfg.list_sessions, "deep_at": deep_at, "build_s": round(build_s, 3)}
    for name, cursor in (("first_page_ms", None), ("deep_page_ms", deep_cursor)):
        times: list[float] = []
        for _ in range(cfg.samples):
            t0 = time.perf_counter()
            page = await sessions.list_sessions(limit=SESSIONS_PAGE, cursor=cursor)
            times.append((time.perf_counter() - t0) * 1000)
            assert len(page.sessions) == SESSIONS_PAGE and page.total == cfg.list_sessions
        out[name] = _stats(times)
    expected_first = f"s-{cfg.list_sessions - deep_at - 1:05d}"
    assert page.sessions[0].session_id == expected_first, "the deep page is not where it should be"
    await store.close()
    if not keep:
        _unlink_db(path)
    return out


def _match_counts(path: pathlib.Path, user_id: str, words: list[str]) -> tuple[int, int]:
    """Fixture statistics (untimed): messages of the user matching all words, and any word."""
    with closing(_read_only(path)) as raw:
        user_pk = raw.execute("SELECT pk FROM users WHERE user_id = ?", (user_id,)).fetchone()[0]
        quoted = [f'"{word}"' for word in words]
        counts = []
        for joiner in (" AND ", " OR "):
            match = f'owner : "{user_pk}" AND body : ({joiner.join(quoted)})'
            counts.append(
                int(raw.execute("SELECT count(*) FROM search_index WHERE search_index MATCH ?", (match,)).fetchone()[0])
            )
    return counts[0], counts[1]


async def measure_search(workdir: pathlib.Path, cfg: Config, keep: bool) -> dict[str, Any]:
    """Item 4: `store.search` over the Zipf corpus, per query kind."""
    path = workdir / "search.db"
    _unlink_db(path)
    t_build = time.perf_counter()
    builder = await SqliteStore.open(path)
    runs = await builder.import_runs(_corpus(cfg, seed=4, deadline=t_build + cfg.build_budget_s))
    await builder.close()
    build_s = time.perf_counter() - t_build
    sessions = runs // cfg.runs_per_session
    messages = 2 * runs
    corpus: dict[str, Any] = {
        "messages": messages,
        "sessions": sessions,
        "users": cfg.search_users,
        "messages_per_user": messages // cfg.search_users,
        "vocabulary": len(ZipfText.VOCAB),
        "message_chars": [USER_CHARS, REPLY_CHARS],
        "build_s": round(build_s, 1),
        "db_bytes": path.stat().st_size,
    }
    if sessions < cfg.search_sessions:
        corpus["reduced"] = (
            f"build budget {cfg.build_budget_s:g}s reached: {sessions:,} of {cfg.search_sessions:,} sessions built"
        )

    store = await SqliteStore.open(path)
    out = {"corpus": corpus, **await time_searches(store, path, cfg)}
    await store.close()
    if not keep:
        _unlink_db(path)
    return out


async def time_searches(store: SqliteStore, path: pathlib.Path, cfg: Config) -> dict[str, Any]:
    """The timed part of item 4, on a store holding the corpus (also usable on a kept search.db)."""
    rng = random.Random(7)

    def pick(kind: str) -> tuple[str, list[str]]:
        user = _search_user(rng.randrange(cfg.search_users))
        words: list[str] = []
        for lo, hi in QUERY_KINDS[kind][1]:
            word = ZipfText.VOCAB[rng.randrange(lo, hi)]
            while word in words:
                word = ZipfText.VOCAB[rng.randrange(lo, hi)]
            words.append(word)
        return user, words

    user, words = pick("mid")
    sessions = store.for_user(user)
    t0 = time.perf_counter()
    await sessions.search(" ".join(words))  # the first query on a fresh store, reported on its own
    out: dict[str, Any] = {"first_query_ms": (time.perf_counter() - t0) * 1000, "kinds": {}}
    for kind, (description, _) in QUERY_KINDS.items():
        times: list[float] = []
        hits: list[int] = []
        for _ in range(cfg.queries):
            user, words = pick(kind)
            sessions = store.for_user(user)
            t0 = time.perf_counter()
            found = await sessions.search(" ".join(words))
            times.append((time.perf_counter() - t0) * 1000)
            hits.append(len(found))
        counts = [_match_counts(path, *pick(kind)) for _ in range(20)]
        out["kinds"][kind] = {
            "description": description,
            "queries": cfg.queries,
            "ms": _percentiles(times),
            "mean_hits": statistics.mean(hits),
            "matching_all_median": statistics.median(c[0] for c in counts),
            "matching_any_median": statistics.median(c[1] for c in counts),
        }
    return out


# -- suite ----------------------------------------------------------------------------------------


def _verdict(ok: bool, applies: bool = True) -> str:
    return ("met" if ok else "MISSED") if applies else ("(met)" if ok else "(missed)") + " n/a at this size"


def _targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    lengths = result["lengths"]
    largest = str(max(int(n) for n in lengths))
    targets = [
        {
            "figure": f"append at L={int(largest):,} / append at L=10",
            "target": f"<= {APPEND_RATIO_TARGET}x",
            "value": lengths[largest]["append_ratio_to_10"],
            "met": lengths[largest]["append_ratio_to_10"] <= APPEND_RATIO_TARGET,
            "applies": largest == "100000",
        }
    ]
    for n, r in lengths.items():
        targets.append(
            {
                "figure": f"append median at L={int(n):,} (ms)",
                "target": f"<= {APPEND_MS_TARGET}",
                "value": r["persist_ms"]["median"],
                "met": r["persist_ms"]["median"] <= APPEND_MS_TARGET,
                "applies": True,
            }
        )
    search = result["search"]
    applies = search["corpus"]["messages"] >= SEARCH_TARGET_MESSAGES
    for kind, r in search["kinds"].items():
        for q, limit in (("p50", SEARCH_P50_MS_TARGET), ("p99", SEARCH_P99_MS_TARGET)):
            targets.append(
                {
                    "figure": f"search {kind} {q} (ms)",
                    "target": f"<= {limit:g} at 1M messages",
                    "value": r["ms"][q],
                    "met": r["ms"][q] <= limit,
                    "applies": applies,
                }
            )
    return targets


def figures_table(result: dict[str, Any]) -> str:
    """All figures of one suite run as one markdown table (ms unless said otherwise)."""
    rows = [
        "| figure | at | samples | median | min - max | p50 / p99 | vs L=10 | target |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]

    def ms(s: dict[str, float]) -> tuple[str, str]:
        return f"{s['median']:.3f}", f"{s['min']:.3f} - {s['max']:.3f}"

    for n, r in result["lengths"].items():
        median, span = ms(r["persist_ms"])
        verdict = "<= 0.5 ms: " + _verdict(r["persist_ms"]["median"] <= APPEND_MS_TARGET)
        if int(n) == max(int(x) for x in result["lengths"]):
            ok = r["append_ratio_to_10"] <= APPEND_RATIO_TARGET
            verdict += f"; <= 1.5x L=10: {_verdict(ok, n == '100000')}"
        rows.append(
            f"| append_run (1 realistic run) | L={int(n):,} | {r['samples']} | {median} | {span} | "
            f"| {r['append_ratio_to_10']:.2f}x | {verdict} |"
        )
    for n, r in result["lengths"].items():
        median, span = ms(r["load_ms"])
        rows.append(f"| last 3 runs (with tool messages) | L={int(n):,} | {r['samples']} | {median} | {span} | | | |")
    for n, r in result["lengths"].items():
        median, span = ms(r["middle_page_ms"])
        rows.append(
            f"| page of {PAGE} messages, middle of session | L={int(n):,} | {r['samples']} | {median} | {span} | | | |"
        )
    ls = result["list_sessions"]
    for name, label in (("first_page_ms", "first page"), ("deep_page_ms", f"page at {ls['deep_at']:,} (cursor)")):
        median, span = ms(ls[name])
        rows.append(
            f"| list_sessions, {SESSIONS_PAGE} by updated_at desc, {label} | {ls['sessions']:,} sessions "
            f"| {result['config']['samples']} | {median} | {span} | | | |"
        )
    search = result["search"]
    corpus = search["corpus"]
    applies = corpus["messages"] >= SEARCH_TARGET_MESSAGES
    for kind, r in search["kinds"].items():
        median, span = ms(r["ms"])
        ok = r["ms"]["p50"] <= SEARCH_P50_MS_TARGET and r["ms"]["p99"] <= SEARCH_P99_MS_TARGET
        rows.append(
            f"| search {kind} ({r['description']}; matches all/any: {r['matching_all_median']:,.0f}"
            f"/{r['matching_any_median']:,.0f}) | {corpus['messages']:,} msgs, {corpus['messages_per_user']:,}/user "
            f"| {r['queries']} | {median} | {span} | {r['ms']['p50']:.2f} / {r['ms']['p99']:.2f} | "
            f"| p50 <= 20, p99 <= 100: {_verdict(ok, applies)} |"
        )
    largest = str(max(int(n) for n in result["lengths"]))
    big = result["lengths"][largest]
    rows.append(
        f"| bytes on disk per run (db + wal after checkpoint) | L={int(largest):,} | | {big['bytes_per_run']:,.0f} "
        "| | | | |"
    )
    split = ", ".join(f"{k} {v:,}" for k, v in big.get("bytes_per_run_by_table", {}).items())
    return "\n".join(rows) + f"\n\nbytes per run by table (with its indexes) at L={int(largest):,}: {split}"


async def _run_suite(workdir: pathlib.Path, cfg: Config, keep: bool) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {
        "config": asdict(cfg),
        "sqlite": sqlite3.sqlite_version,
        "python": platform.python_version(),
        "lengths": {},
        "section_s": {},
        "load_average_at_start": os.getloadavg(),
    }
    t0 = time.perf_counter()
    await _warm_up(workdir, cfg)
    result["section_s"]["warm_up"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    result["lengths"] = await measure_lengths(workdir, cfg, keep)
    result["section_s"]["lengths"] = round(time.perf_counter() - t0, 1)
    base = result["lengths"][str(min(cfg.lengths))]["persist_ms"]["median"]
    for r in result["lengths"].values():
        r["append_ratio_to_10"] = r["persist_ms"]["median"] / base
    t0 = time.perf_counter()
    result["list_sessions"] = await measure_list_sessions(workdir, cfg, keep)
    result["section_s"]["list_sessions"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    result["search"] = await measure_search(workdir, cfg, keep)
    result["section_s"]["search"] = round(time.perf_counter() - t0, 1)
    result["targets"] = _targets(result)
    result["total_s"] = round(time.perf_counter() - started, 1)
    result["load_average_at_end"] = os.getloadavg()
    return result


def run_suite(workdir: pathlib.Path, quick: bool, keep: bool = False) -> dict[str, Any]:
    """Run every measurement in `workdir`, print the figures, return them (JSON-serialisable).

    The db files are deleted after each section unless `keep` (to profile against them later).
    """
    cfg = QUICK if quick else FULL
    assert min(cfg.lengths) == 10, "ratios are to the append at 10 runs"
    result = asyncio.run(_run_suite(workdir, cfg, keep))
    print(figures_table(result))
    print()
    print(markdown_table([{"peer": "ours", "lengths": result["lengths"]}]))
    corpus = result["search"]["corpus"]
    print(
        f"\nsearch corpus: {corpus['messages']:,} messages in {corpus['sessions']:,} sessions of {corpus['users']} "
        f"users, built in {corpus['build_s']}s ({corpus['db_bytes'] / 1e9:.2f} GB)"
        + (f"; REDUCED: {corpus['reduced']}" if "reduced" in corpus else "")
    )
    loads = f"{_loads(result['load_average_at_start'])} at start, {_loads(result['load_average_at_end'])} at end"
    print(f"sections (s): {result['section_s']}; total {result['total_s']}s ({cfg.mode} mode)")
    print(f"load average (1/5/15 min): {loads}")
    return result


def _loads(loads: tuple[float, ...]) -> str:
    return "/".join(f"{x:.2f}" for x in loads)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: finishes in well under a minute")
    parser.add_argument("--json", type=pathlib.Path, help="write the full results here")
    parser.add_argument("--workdir", type=pathlib.Path, help="keep the db files here (default: a temporary dir)")
    args = parser.parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = run_suite(args.workdir, args.quick, keep=True)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
            result = run_suite(pathlib.Path(tmp), args.quick)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
