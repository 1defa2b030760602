"""Store-level figures of our two stores, SQLite and PostgreSQL, side by side in one run, against
the performance targets (SPEC section 4 and the PostgreSQL issue).

Everything here calls the store in process (no MCP, no server): `SqliteStore` on a file, and
`PostgresStore` on a database of one throwaway PostgreSQL cluster on this machine
(bench/postgres_cluster.py, its settings there). What is timed is the public store API (a user's
handle, `store.for_user(user)`), one awaited call at a time, on a store opened fresh after its
fixture was built. The same suite runs on each store in turn, SQLite first: a `Backend` opens the
store on a fresh file or database per fixture, imports into it, and reads its statistics.

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
   corpus takes longer than its store's build budget (SQLite 180 s; PostgreSQL, whose import is
   several times slower, 1,200 s), it stops adding sessions and the output says REDUCED with the
   size actually built.
5. Bytes per run at the largest L, split by table: on SQLite the file (db + wal after a
   checkpoint), on PostgreSQL the tables' pg_total_relation_size (heap, TOAST and indexes).

The session fixtures and the search corpus are built with the store's bulk import, `import_runs`
(SQLite: thousands of runs per transaction; PostgreSQL: batches of 2,000 runs, one transaction
each, then VACUUM ANALYZE, as autovacuum would have done long before a database grew this big);
it is never timed. Only the calls above are measured. Statistics (bytes per table, how many
messages a query matches) are read beside the store, never through it: with sqlite3 on the file,
with a connection of the bench's own on the PostgreSQL database.
Without PostgreSQL's server binaries the PostgreSQL half is skipped with one line saying so (under
CI the bench fails instead).
Run: ``python -m bench.store_suite [--quick] [--json PATH] [--workdir DIR] [--sqlite-only]``.
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
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

from mcp_server_sessions.store import NewMessage, NewRun, SessionStore, SqliteStore, UserSessions

from . import postgres_cluster
from .ours import realistic_run
from .peers import REPLY_CHARS, SESSION_ID, USER_CHARS, USER_ID, Sampler, TextGen, _stats, markdown_table

# Targets (SPEC section 4, the performance brief and the PostgreSQL issue).
APPEND_RATIO_TARGET = 1.5  # append at the largest length / append at 10 runs
APPEND_MS_TARGET = 0.5  # median in-process append_run (SQLite's target: PostgreSQL's are round trips)
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
    build_budget_s: float  # the SQLite search corpus build stops adding sessions after this
    pg_build_budget_s: float  # the same for PostgreSQL, whose import_runs is several times slower


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
    pg_build_budget_s=1200.0,
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
    pg_build_budget_s=30.0,
)
LIST_USER = "list-user"
PAGE = 50  # messages per middle page
SESSIONS_PAGE = 20
PG_IMPORT_BATCH = 2_000
"""Runs per PostgresStore.import_runs call: each call is one transaction."""
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


# -- the two stores ---------------------------------------------------------------------------------


class Backend:
    """Where the suite's fixtures live and how they are opened, imported into and measured.

    A fixture is named (`fresh(name)` makes it empty) and reached by `where`: a file path on SQLite,
    a database URL on PostgreSQL.
    """

    key: ClassVar[str]
    name: ClassVar[str]

    def build_budget_s(self, cfg: Config) -> float:
        raise NotImplementedError

    async def fresh(self, fixture: str) -> str:
        raise NotImplementedError

    async def open(self, where: str) -> SessionStore:
        raise NotImplementedError

    async def import_runs(self, store: Any, runs: Iterable[tuple[str, str, NewRun]]) -> int:
        raise NotImplementedError

    async def settle(self, where: str) -> None:
        """After a fixture is built and its store closed, before the fresh store is timed."""

    async def sizes(self, where: str) -> tuple[int, int]:
        """(bytes, second bytes) of the closed fixture: SQLite (db, wal); PostgreSQL (its tables, 0)."""
        raise NotImplementedError

    async def bytes_by_table(self, where: str) -> dict[str, int]:
        raise NotImplementedError

    async def match_counts(self, where: str, user_id: str, words: list[str]) -> tuple[int, int]:
        """Fixture statistics (untimed): messages of the user matching all words, and any word."""
        raise NotImplementedError

    async def discard(self, where: str) -> None:
        raise NotImplementedError

    async def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    async def explain_search(self, where: str, user_id: str, words: list[str]) -> list[dict[str, Any]] | None:
        """The plans (with actual times) of the statements one search runs, where the store can tell."""
        return None


class SqliteBackend(Backend):
    key, name = "sqlite", "SQLite"

    def __init__(self, workdir: pathlib.Path, keep: bool) -> None:
        self.workdir, self.keep = workdir, keep

    def build_budget_s(self, cfg: Config) -> float:
        return cfg.build_budget_s

    async def fresh(self, fixture: str) -> str:
        path = self.workdir / f"{fixture}.db"
        _unlink_db(path)
        return str(path)

    async def open(self, where: str) -> SqliteStore:
        return await SqliteStore.open(where)

    async def import_runs(self, store: Any, runs: Iterable[tuple[str, str, NewRun]]) -> int:
        written: int = await store.import_runs(runs)  # batches of its own, the next made while one is written
        return written

    async def sizes(self, where: str) -> tuple[int, int]:
        path = pathlib.Path(where)
        wal = path.with_name(path.name + "-wal")
        return path.stat().st_size, wal.stat().st_size if wal.exists() else 0

    async def bytes_by_table(self, where: str) -> dict[str, int]:
        """Bytes of pages per table with its indexes (dbstat); the FTS5 shadow tables count as search_index."""
        with closing(_read_only(pathlib.Path(where))) as raw:
            owners = {r[0]: r[1] for r in raw.execute("SELECT name, tbl_name FROM sqlite_schema")}
            out: dict[str, int] = defaultdict(int)
            for name, size in raw.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
                table = owners.get(name, name)
                out["search_index" if table.startswith("search_index") else table] += size
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    async def match_counts(self, where: str, user_id: str, words: list[str]) -> tuple[int, int]:
        with closing(_read_only(pathlib.Path(where))) as raw:
            user_pk = raw.execute("SELECT pk FROM users WHERE user_id = ?", (user_id,)).fetchone()[0]
            quoted = [f'"{word}"' for word in words]
            counts = []
            for joiner in (" AND ", " OR "):
                match = f'owner : "{user_pk}" AND body : ({joiner.join(quoted)})'
                row = raw.execute("SELECT count(*) FROM search_index WHERE search_index MATCH ?", (match,)).fetchone()
                counts.append(int(row[0]))
        return counts[0], counts[1]

    async def discard(self, where: str) -> None:
        if not self.keep:
            _unlink_db(pathlib.Path(where))

    async def describe(self) -> dict[str, Any]:
        return {"sqlite": sqlite3.sqlite_version}


class PostgresBackend(Backend):
    """Each fixture is a database of the one bench cluster, dropped after its section."""

    key, name = "postgresql", "PostgreSQL"

    def __init__(self, cluster: postgres_cluster.Cluster) -> None:
        self.cluster = cluster

    def build_budget_s(self, cfg: Config) -> float:
        return cfg.pg_build_budget_s

    async def fresh(self, fixture: str) -> str:
        return await self.cluster.create_database(fixture.replace("-", "_"))

    async def open(self, where: str) -> SessionStore:
        from mcp_server_sessions.store.postgres import PostgresStore

        return await PostgresStore.open(where)

    async def import_runs(self, store: Any, runs: Iterable[tuple[str, str, NewRun]]) -> int:
        written = 0
        pending = iter(runs)
        while batch := list(itertools.islice(pending, PG_IMPORT_BATCH)):
            written += await store.import_runs(batch)
        return written

    async def settle(self, where: str) -> None:
        await postgres_cluster.vacuum_analyze(where)

    async def sizes(self, where: str) -> tuple[int, int]:
        return sum((await postgres_cluster.bytes_by_table(where)).values()), 0

    async def bytes_by_table(self, where: str) -> dict[str, int]:
        return await postgres_cluster.bytes_by_table(where)

    async def match_counts(self, where: str, user_id: str, words: list[str]) -> tuple[int, int]:
        import asyncpg

        conn = await asyncpg.connect(where)
        try:
            user_pk = await conn.fetchval("SELECT pk FROM users WHERE user_id = $1", user_id)
            counts = []
            for joiner in (" && ", " || "):
                query = joiner.join(f"plainto_tsquery('sessions_english', ${2 + i})" for i in range(len(words)))
                sql = f"SELECT count(*) FROM messages WHERE user_pk = $1 AND search @@ ({query})"
                counts.append(int(await conn.fetchval(sql, user_pk, *words)))
        finally:
            await conn.close()
        return counts[0], counts[1]

    async def discard(self, where: str) -> None:
        await self.cluster.drop_database(where.rsplit("/", 1)[1])

    async def describe(self) -> dict[str, Any]:
        return {"postgresql": await postgres_cluster.server_version(self.cluster), **postgres_cluster.described()}

    async def explain_search(self, where: str, user_id: str, words: list[str]) -> list[dict[str, Any]] | None:
        """EXPLAIN (ANALYZE, BUFFERS) of every statement of one search, through auto_explain on a
        connection of the bench's own running the store's search function (untimed, diagnostics only)."""
        import asyncpg

        from mcp_server_sessions.store.limits import SEARCH_RESULTS
        from mcp_server_sessions.store.postgres_search import search_user

        conn = await asyncpg.connect(where, server_settings={"timezone": "UTC"})
        plans: list[dict[str, Any]] = []

        def noticed(_: Any, message: Any) -> None:  # the driver's own type introspection left out
            text = str(message.message)
            if text.startswith("duration:") and "typeinfo_tree" not in text and "set_config(" not in text:
                duration, _, plan = text.partition("\n")
                plans.append({"duration": duration.split("  ")[0], "plan": plan.strip("\n")})

        conn.add_log_listener(noticed)
        try:
            for setting in (
                "LOAD 'auto_explain'",
                "SET auto_explain.log_min_duration = 0",
                "SET auto_explain.log_analyze = on",
                "SET auto_explain.log_buffers = on",
                "SET auto_explain.log_level = notice",
            ):
                await conn.execute(setting)
            user_pk = await conn.fetchval("SELECT pk FROM users WHERE user_id = $1", user_id)
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                await search_user(conn, user_pk, words, None, None, SEARCH_RESULTS)
            await asyncio.sleep(0.05)  # notices arrive with the statements; let the last callbacks run
        finally:
            await conn.close()
        return plans


def _unlink_db(path: pathlib.Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _read_only(path: pathlib.Path) -> sqlite3.Connection:
    """A connection of the bench's own that only reads the store's file (for statistics, never timed)."""
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


# -- measurements ----------------------------------------------------------------------------------


async def _warm_up(backend: Backend, cfg: Config) -> None:
    """Untimed turns on a throwaway fixture, so that the first length measured (L=10, the base of the
    ratios) does not also pay for the process's first calls (imports, first pydantic validations)."""
    where = await backend.fresh("warm-up")
    store = await backend.open(where)
    sessions = store.for_user(USER_ID)
    gen = TextGen(1)
    for _ in range(cfg.samples):
        await sessions.append_run(SESSION_ID, realistic_run(gen))
        await sessions.get_chat_history(SESSION_ID, last_n_runs=3, include_tool_messages=True)
    await store.close()
    await backend.discard(where)


async def build_length(backend: Backend, length: int) -> tuple[str, float]:
    """A fresh fixture holding one session of `length` realistic runs (untimed)."""
    where = await backend.fresh(f"session-{length}")
    t_build = time.perf_counter()
    builder = await backend.open(where)
    gen = TextGen(length)
    await backend.import_runs(builder, ((USER_ID, SESSION_ID, realistic_run(gen)) for _ in range(length)))
    await builder.close()  # SQLite: checkpoints the WAL, part of the build
    await backend.settle(where)
    return where, time.perf_counter() - t_build


async def measure_lengths(backend: Backend, cfg: Config) -> dict[str, dict[str, Any]]:
    """Items 1, 2 and 5: every length on its own fixture, the lengths measured in turn.

    The timed turns rotate over the lengths (one turn at L=10, one at L=1,000, ...), so whatever
    else the machine does while the suite runs falls on every length alike and the ratios to
    L=10 stay fair.
    """
    lengths = sorted(cfg.lengths)
    built = {n: await build_length(backend, n) for n in lengths}
    stores: dict[int, SessionStore] = {}
    sessions: dict[int, UserSessions] = {}
    gens: dict[int, TextGen] = {}
    cold_load_s: dict[int, float] = {}
    for n in lengths:
        stores[n] = await backend.open(built[n][0])
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
        await stores[n].close()  # SQLite: checkpoints the WAL into the file, so the bytes below are all in it
        where, build_s = built[n]
        result = samplers[n].result((build_s, build_s), cold_load_s[n], await backend.sizes(where), runs[n])
        result["middle_page_ms"] = _stats(middle_ms[n])
        if n == lengths[-1]:
            by_table = await backend.bytes_by_table(where)
            result["bytes_per_run_by_table"] = {name: round(size / runs[n]) for name, size in by_table.items()}
        await backend.discard(where)
        out[str(n)] = result
    return out


async def measure_list_sessions(backend: Backend, cfg: Config) -> dict[str, Any]:
    """Item 3: a page of 20 sessions of a user with `cfg.list_sessions` sessions (updated_at desc)."""
    where = await backend.fresh("sessions")
    t_build = time.perf_counter()
    builder = await backend.open(where)
    for i in range(cfg.list_sessions):  # start_session itself: cheap enough, one transaction each
        await builder.for_user(LIST_USER).start_session(f"s-{i:05d}", name=f"session {i}", metadata={"n": i})
    await builder.close()
    await backend.settle(where)
    build_s = time.perf_counter() - t_build

    store = await backend.open(where)
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
    await backend.discard(where)
    return out


async def measure_search(backend: Backend, cfg: Config) -> dict[str, Any]:
    """Item 4: `store.search` over the Zipf corpus, per query kind."""
    where = await backend.fresh("search")
    budget_s = backend.build_budget_s(cfg)
    t_build = time.perf_counter()
    builder = await backend.open(where)
    runs = await backend.import_runs(builder, _corpus(cfg, seed=4, deadline=t_build + budget_s))
    await builder.close()
    import_s = time.perf_counter() - t_build
    await backend.settle(where)
    build_s = time.perf_counter() - t_build
    sessions = runs // cfg.runs_per_session
    messages = 2 * runs
    db_bytes, wal_bytes = await backend.sizes(where)
    corpus: dict[str, Any] = {
        "messages": messages,
        "sessions": sessions,
        "users": cfg.search_users,
        "messages_per_user": messages // cfg.search_users,
        "vocabulary": len(ZipfText.VOCAB),
        "message_chars": [USER_CHARS, REPLY_CHARS],
        "build_budget_s": budget_s,
        "import_s": round(import_s, 1),
        "import_runs_per_s": round(runs / import_s),
        "build_s": round(build_s, 1),
        "db_bytes": db_bytes + wal_bytes,
    }
    if sessions < cfg.search_sessions:
        corpus["reduced"] = (
            f"build budget {budget_s:g}s reached: {sessions:,} of {cfg.search_sessions:,} sessions built"
        )

    store = await backend.open(where)
    out = {"corpus": corpus, **await time_searches(store, backend, where, cfg)}
    await store.close()
    await backend.discard(where)
    return out


async def time_searches(store: SessionStore, backend: Backend, where: str, cfg: Config) -> dict[str, Any]:
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
        slowest: tuple[float, str, list[str]] = (0.0, "", [])
        for _ in range(cfg.queries):
            user, words = pick(kind)
            sessions = store.for_user(user)
            t0 = time.perf_counter()
            found = await sessions.search(" ".join(words))
            times.append((time.perf_counter() - t0) * 1000)
            hits.append(len(found))
            slowest = max(slowest, (times[-1], user, words))
        counts = [await backend.match_counts(where, *pick(kind)) for _ in range(20)]
        out["kinds"][kind] = {
            "description": description,
            "queries": cfg.queries,
            "ms": _percentiles(times),
            "mean_hits": statistics.mean(hits),
            "matching_all_median": statistics.median(c[0] for c in counts),
            "matching_any_median": statistics.median(c[1] for c in counts),
        }
        plans = await backend.explain_search(where, slowest[1], slowest[2])
        if plans is not None:  # the slowest query of the kind, run again with its plans
            out["kinds"][kind]["slowest"] = {"ms": slowest[0], "user": slowest[1], "words": slowest[2], "plans": plans}
    return out


# -- suite ----------------------------------------------------------------------------------------


def _verdict(ok: bool, applies: bool = True, why: str = "at this size") -> str:
    return ("met" if ok else "MISSED") if applies else ("(met)" if ok else "(missed)") + f" n/a {why}"


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
                "target": f"<= {APPEND_MS_TARGET} (SQLite in process)",
                "value": r["persist_ms"]["median"],
                "met": r["persist_ms"]["median"] <= APPEND_MS_TARGET,
                "applies": result["backend"] == "sqlite",
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


def _span(s: dict[str, float]) -> str:
    return f"{s['median']:.3f} ({s['min']:.3f} - {s['max']:.3f})"


class _Row:
    """One figure of the side-by-side table: per store, its cell, its sample count and its verdict."""

    def __init__(self, figure: str, at: str, target: str = "") -> None:
        self.figure, self.at, self.target = figure, at, target
        self.cells: dict[str, tuple[str, str, str]] = {}

    def markdown(self, keys: list[str]) -> str:
        cells = [self.cells.get(key, ("", "", "")) for key in keys]
        samples = " / ".join(c[1] for c in cells) if any(c[1] for c in cells) else ""
        values = " | ".join(c[0] for c in cells)
        verdicts = " | ".join(c[2] for c in cells)
        return f"| {self.figure} | {self.at} | {samples} | {values} | {self.target} | {verdicts} |"


def figures_table(suite: dict[str, Any]) -> str:
    """The figures of both stores side by side as one markdown table (ms unless said otherwise), then
    the corpus each store was measured on and its bytes per table."""
    ran = {key: r for key, r in suite.items() if isinstance(r, dict) and "lengths" in r}
    keys = ["sqlite", "postgresql"]
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    rows: dict[str, _Row] = {}

    def row(key: str, figure: str, at: str, target: str = "") -> _Row:
        return rows.setdefault(key, _Row(figure, at, target))

    for key, result in ran.items():
        lengths = result["lengths"]
        largest = max(int(n) for n in lengths)
        for n, r in lengths.items():
            at = f"L={int(n):,}"
            target = f"median <= {APPEND_MS_TARGET} ms (SQLite)"
            verdicts = []
            if key == "sqlite":
                verdicts.append(f"<= {APPEND_MS_TARGET} ms: " + _verdict(r["persist_ms"]["median"] <= APPEND_MS_TARGET))
            if int(n) == largest:
                target += f"; <= {APPEND_RATIO_TARGET}x L=10 at L=100,000"
                ok = r["append_ratio_to_10"] <= APPEND_RATIO_TARGET
                verdicts.append(f"<= {APPEND_RATIO_TARGET}x L=10: {_verdict(ok, int(n) == 100_000)}")
            cell = f"{_span(r['persist_ms'])}, **{r['append_ratio_to_10']:.2f}x** L=10"
            row(f"append {n}", "append_run (1 realistic run)", at, target).cells[key] = (
                cell,
                str(r["samples"]),
                "; ".join(verdicts),
            )
        for n, r in lengths.items():
            row(f"last3 {n}", "last 3 runs (with tool messages)", f"L={int(n):,}").cells[key] = (
                _span(r["load_ms"]),
                str(r["samples"]),
                "",
            )
        for n, r in lengths.items():
            row(f"middle {n}", f"page of {PAGE} messages, middle of session", f"L={int(n):,}").cells[key] = (
                _span(r["middle_page_ms"]),
                str(result["config"]["samples"]),
                "",
            )
        ls = result["list_sessions"]
        for name, label in (("first_page_ms", "first page"), ("deep_page_ms", f"page at {ls['deep_at']:,} (cursor)")):
            figure = f"list_sessions, {SESSIONS_PAGE} by updated_at desc, {label}"
            row(f"list {name}", figure, f"{ls['sessions']:,} sessions").cells[key] = (
                _span(ls[name]),
                str(result["config"]["samples"]),
                "",
            )
        search = result["search"]
        corpus = search["corpus"]
        applies = corpus["messages"] >= SEARCH_TARGET_MESSAGES
        for kind, r in search["kinds"].items():
            ok = r["ms"]["p50"] <= SEARCH_P50_MS_TARGET and r["ms"]["p99"] <= SEARCH_P99_MS_TARGET
            figure = (
                f"search {kind} ({r['description']}; matches all/any: {r['matching_all_median']:,.0f}"
                f"/{r['matching_any_median']:,.0f})"
            )
            target = f"p50 <= {SEARCH_P50_MS_TARGET:g}, p99 <= {SEARCH_P99_MS_TARGET:g} at 1M msgs"
            corpus_at = f"{corpus['messages']:,} msgs, {corpus['messages_per_user']:,}/user"
            search_row = row(f"search {kind}", figure, corpus_at, target)
            if corpus_at not in search_row.at:  # PostgreSQL's corpus was cut by its build budget
                search_row.at += f" ({names[key]}: {corpus_at})"
            search_row.cells[key] = (
                f"p50 **{r['ms']['p50']:.2f}** / p99 **{r['ms']['p99']:.2f}** (max {r['ms']['max']:.1f})",
                str(r["queries"]),
                _verdict(ok, applies),
            )
        big = lengths[str(largest)]
        figure = "bytes per run (SQLite: db + wal after checkpoint; PostgreSQL: pg_total_relation_size of its tables)"
        row("bytes", figure, f"L={largest:,}").cells[key] = (f"{big['bytes_per_run']:,.0f}", "", "")

    header = " | ".join(names[k] for k in keys)
    verdict_header = " | ".join(f"{names[k]} verdict" for k in keys)
    lines = [
        f"| figure (ms unless said) | at | samples ({' / '.join(names[k] for k in keys)}) | {header} | target "
        f"| {verdict_header} |",
        "|---|---|---:|" + "---:|" * len(keys) + "---|" + "---|" * len(keys),
    ]
    lines += [r.markdown(keys) for r in rows.values()]
    lines.append("")
    lines.append(
        "Cells: median (min - max) ms; search: p50 / p99 (max). Appends are each followed by the last-3-runs read "
        "(one agent turn); the lengths are sampled in rotation."
    )
    for key in keys:
        result = suite.get(key)
        if not isinstance(result, dict) or "lengths" not in result:
            why = result.get("skipped", "not run") if isinstance(result, dict) else "not run"
            lines.append(f"\n{names[key]}: skipped ({why}).")
            continue
        lines.append(f"\n{names[key]}: " + _notes(result))
        if slowest := slowest_searches(result):
            lines.append(f"\nThe slowest {names[key]} search of each kind, run again under auto_explain:\n\n{slowest}")
    return "\n".join(lines)


def _notes(result: dict[str, Any]) -> str:
    corpus = result["search"]["corpus"]
    largest = str(max(int(n) for n in result["lengths"]))
    split = ", ".join(f"{k} {v:,}" for k, v in result["lengths"][largest].get("bytes_per_run_by_table", {}).items())
    version = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    return (
        f"{version}. Search corpus {corpus['messages']:,} messages in {corpus['sessions']:,} sessions of "
        f"{corpus['users']} users, imported in {corpus['import_s']} s ({corpus['import_runs_per_s']:,} runs/s, "
        f"build budget {corpus['build_budget_s']:g} s), {corpus['db_bytes'] / 1e9:.2f} GB"
        + (f"; **REDUCED**: {corpus['reduced']}" if "reduced" in corpus else "")
        + f". Bytes per run by table (with its indexes) at L={int(largest):,}: {split}. "
        f"Sections (s): {result['section_s']}; total {result['total_s']} s; load average "
        f"{_loads(result['load_average_at_start'])} at start, {_loads(result['load_average_at_end'])} at end."
    )


def slowest_searches(result: dict[str, Any]) -> str:
    """Per query kind, the slowest timed search re-run with its statements' plans: the costliest
    statement's time and the top lines of its plan."""
    lines = []
    for kind, r in result["search"]["kinds"].items():
        slowest = r.get("slowest")
        if not slowest or not slowest["plans"]:
            continue
        costliest = max(slowest["plans"], key=lambda p: float(p["duration"].split()[1]))
        plan = [line.strip() for line in costliest["plan"].splitlines() if not line.startswith("Query Text:")]
        top = " / ".join(plan[:3])
        lines.append(
            f"- {kind} ({' '.join(slowest['words'])}, {slowest['user']}): {slowest['ms']:.1f} ms timed; "
            f"re-run: {len(slowest['plans'])} statements, costliest {costliest['duration']}: {top}"
        )
    return "\n".join(lines)


def backend_table(result: dict[str, Any]) -> str:
    """One store's per-length turn table (bench.peers' layout)."""
    return markdown_table([{"peer": result["backend"], "lengths": result["lengths"]}])


async def _run_suite(backend: Backend, cfg: Config) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {
        "backend": backend.key,
        "config": asdict(cfg),
        "versions": await backend.describe(),
        "python": platform.python_version(),
        "lengths": {},
        "section_s": {},
        "load_average_at_start": os.getloadavg(),
    }
    t0 = time.perf_counter()
    await _warm_up(backend, cfg)
    result["section_s"]["warm_up"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    result["lengths"] = await measure_lengths(backend, cfg)
    result["section_s"]["lengths"] = round(time.perf_counter() - t0, 1)
    base = result["lengths"][str(min(cfg.lengths))]["persist_ms"]["median"]
    for r in result["lengths"].values():
        r["append_ratio_to_10"] = r["persist_ms"]["median"] / base
    t0 = time.perf_counter()
    result["list_sessions"] = await measure_list_sessions(backend, cfg)
    result["section_s"]["list_sessions"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    result["search"] = await measure_search(backend, cfg)
    result["section_s"]["search"] = round(time.perf_counter() - t0, 1)
    result["targets"] = _targets(result)
    result["total_s"] = round(time.perf_counter() - started, 1)
    result["load_average_at_end"] = os.getloadavg()
    return result


def run_suite(
    workdir: pathlib.Path,
    quick: bool,
    keep: bool = False,
    cluster: postgres_cluster.Cluster | None = None,
    pg_skipped: str = "no PostgreSQL cluster given",
    cfg: Config | None = None,
) -> dict[str, Any]:
    """Run every measurement on SQLite (files in `workdir`), then on PostgreSQL (databases of
    `cluster`, unless None: then `pg_skipped` says why), print the figures, return them
    (JSON-serialisable) as {"sqlite": ..., "postgresql": ...}.

    The SQLite files are deleted after each section unless `keep` (to profile against them later);
    the PostgreSQL databases are always dropped.
    """
    cfg = cfg or (QUICK if quick else FULL)
    assert min(cfg.lengths) == 10, "ratios are to the append at 10 runs"
    backends: list[Backend] = [SqliteBackend(workdir, keep)]
    if cluster is not None:
        backends.append(PostgresBackend(cluster))
    suite: dict[str, Any] = {"postgresql": {"skipped": pg_skipped}}
    for backend in backends:
        suite[backend.key] = result = asyncio.run(_run_suite(backend, cfg))
        print(f"\n{backend.name}, per-length turns:\n{backend_table(result)}", flush=True)
    suite = {"sqlite": suite["sqlite"], "postgresql": suite["postgresql"]}
    print()
    print(figures_table(suite))
    print(f"({cfg.mode} mode)")
    return suite


def _loads(loads: tuple[float, ...]) -> str:
    return "/".join(f"{x:.2f}" for x in loads)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: finishes in about a minute")
    parser.add_argument("--json", type=pathlib.Path, help="write the full results here")
    parser.add_argument("--workdir", type=pathlib.Path, help="keep the SQLite files here (default: a temporary dir)")
    parser.add_argument("--sqlite-only", action="store_true", help="skip the PostgreSQL half")
    parser.add_argument("--pg-build-budget-s", type=float, help="PostgreSQL search corpus build budget (seconds)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    if args.pg_build_budget_s is not None:
        cfg = replace(cfg, pg_build_budget_s=args.pg_build_budget_s)
    with postgres_cluster.bench_cluster(skip=args.sqlite_only) as (cluster, skipped):
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=True)
            result = run_suite(args.workdir, args.quick, True, cluster, skipped, cfg)
        else:
            with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
                result = run_suite(pathlib.Path(tmp), args.quick, False, cluster, skipped, cfg)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
