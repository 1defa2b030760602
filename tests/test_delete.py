"""Deleting a session: it vanishes at once; its rows are purged in short batches that let other writers in."""

import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import anyio
import pytest

from mcp_server_sessions.store import NewMessage, NewRun, NewToolCall, SessionNotFound, SqliteStore
from mcp_server_sessions.store.sqlite_purge import BATCH_BYTES, BATCH_ROWS, PURGING_USER, purge_step
from tests.test_concurrency import child_env, integrity, reap

pytestmark = pytest.mark.anyio

_SPELLING = random.Random(0)
# Many distinct words, as in real text: what a search index delete costs grows with them.
WORDS = ["".join(_SPELLING.choices("abcdefghijklmnopqrstuvwxyz", k=_SPELLING.randint(3, 10))) for _ in range(20_000)]


def text(rng: random.Random, chars: int, word: str = "") -> str:
    out = word
    while len(out) < chars:
        out += " " + rng.choice(WORDS)
    return out[:chars] if chars >= len(word) else word


def turn(rng: random.Random, run_id: str, word: str = "", size: int = 200, lead: str = "") -> NewRun:
    """A run like a real turn: user, tool and assistant messages and one tool call (about 1,600 characters
    at the default size), `word` in each searchable text, each message text starting with `lead`."""
    question, reply = lead + text(rng, size, word), lead + text(rng, 4 * size, word)
    call = NewToolCall(
        tool_name=f"{word or 'search'}_tool", arguments={"q": text(rng, size // 2)}, result=text(rng, 2 * size)
    )
    messages = [
        NewMessage(role="user", content=question),
        NewMessage(role="tool", content=f"search -> {call.result}", is_tool=True),
        NewMessage(role="assistant", content=reply),
    ]
    return NewRun(run_id=run_id, input=question, content=reply, messages=messages, tool_calls=[call])


async def fill(
    db: Path, user_id: str, session_id: str, runs: int, word: str = "", size: int = 200, lead: str = ""
) -> None:
    """A session of `runs` runs, imported in bulk (thousands in a second)."""
    rng = random.Random(f"{user_id}/{session_id}")
    store = await SqliteStore.open(db)
    try:
        await store.import_runs((user_id, session_id, turn(rng, f"r{i}", word, size, lead)) for i in range(runs))
    finally:
        await store.close()


def session_rows(db: Path, session_pk: int) -> dict[str, int]:
    with closing(sqlite3.connect(db)) as conn:
        return {
            table: conn.execute(f"SELECT count(*) FROM {table} WHERE session_pk = ?", (session_pk,)).fetchone()[0]
            for table in ("runs", "messages", "tool_calls", "search_index")
        }


NOTHING_LEFT = {"runs": 0, "messages": 0, "tool_calls": 0, "search_index": 0}


def session_pk_of(db: Path, user_id: str, session_id: str) -> int:
    with closing(sqlite3.connect(db)) as conn:
        row = conn.execute(
            "SELECT s.pk FROM sessions s JOIN users u ON u.pk = s.user_pk WHERE u.user_id = ? AND s.session_id = ?",
            (user_id, session_id),
        ).fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def write_lock(db: Path) -> Iterator[None]:
    """Hold the database's write lock, as another process would: the purge cannot take a step meanwhile."""
    with closing(sqlite3.connect(db, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")


class OtherProcessWriter:
    """Writes in a loop on its own connection with a short busy timeout, as another server would."""

    def __init__(self, db: Path, busy_timeout_s: float) -> None:
        self._db, self._busy_timeout_s = db, busy_timeout_s
        self.writes = 0
        self.errors: list[str] = []
        self.started = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        with closing(sqlite3.connect(self._db, timeout=self._busy_timeout_s, isolation_level=None)) as conn:
            while not self.stop.is_set():
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute("INSERT INTO users (user_id) VALUES (?)", (f"other-{self.writes}",))
                    conn.execute("COMMIT")
                    self.writes += 1
                except sqlite3.OperationalError as exc:
                    self.errors.append(str(exc))
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                self.started.set()
                self.stop.wait(0.002)  # a few hundred writes a second, like a busy server's record_run


async def test_another_process_keeps_writing_while_a_large_session_is_deleted(db_path: Path) -> None:
    """Deleting 8,000 runs in one transaction held the write lock for over two seconds; another
    process's writes, which wait at most a second for it, failed with "database is locked"."""
    await fill(db_path, "alice", "big", 8_000)
    await fill(db_path, "alice", "kept", 3)
    big_pk = session_pk_of(db_path, "alice", "big")
    other = OtherProcessWriter(db_path, busy_timeout_s=1.0)
    store = await SqliteStore.open(db_path)
    writing = threading.Thread(target=other.run)
    writing.start()
    try:
        with anyio.fail_after(60):
            await anyio.to_thread.run_sync(other.started.wait, abandon_on_cancel=True)
            await store.for_user("alice").delete_session("big")
            assert session_rows(db_path, big_pk)["runs"] > 0  # the rest is purged in the background
            writes_before_purge = other.writes
            await store.purge_pending()
    finally:
        other.stop.set()
        writing.join(timeout=30)
        await store.close()
    assert other.errors == []
    assert other.writes > writes_before_purge
    assert session_rows(db_path, big_pk) == NOTHING_LEFT
    integrity(db_path)


def orphaned_index_rows(conn: sqlite3.Connection, session_pk: int) -> int:
    return int(
        conn.execute(
            "SELECT count(*) FROM search_index i WHERE i.session_pk = ? "
            "AND NOT EXISTS (SELECT 1 FROM messages m WHERE i.rowid % 2 = 0 AND m.pk = i.rowid / 2) "
            "AND NOT EXISTS (SELECT 1 FROM tool_calls t WHERE i.rowid % 2 = 1 AND t.pk = i.rowid / 2)",
            (session_pk,),
        ).fetchone()[0]
    )


def purged_rows(before: dict[str, int], after: dict[str, int]) -> int:
    return sum(before[table] - after[table] for table in ("runs", "messages", "tool_calls"))


@pytest.mark.parametrize(
    ("runs", "size", "lead"),
    [(300, 200, ""), (6, 150_000, ""), (6, 150_000, "\x00")],
    ids=["many-runs", "large-texts", "large-texts-behind-a-nul"],
)
async def test_each_purge_batch_is_its_own_transaction_of_bounded_rows_and_text(
    db_path: Path, runs: int, size: int, lead: str
) -> None:
    await fill(db_path, "alice", "big", runs, size=size, lead=lead)
    await fill(db_path, "alice", "kept", 2)
    big_pk = session_pk_of(db_path, "alice", "big")
    store = await SqliteStore.open(db_path)
    await store.for_user("alice").delete_session("big")
    await store.close()  # the purge stops here, after the batch that ran with the delete

    batches = 0
    with (
        closing(sqlite3.connect(db_path, isolation_level=None)) as purger,
        closing(sqlite3.connect(db_path, timeout=0, isolation_level=None)) as other,
    ):
        purger.execute("PRAGMA foreign_keys = ON")
        done = False
        while not done:
            before = session_rows(db_path, big_pk)
            text_before = purger.execute(
                "SELECT coalesce(sum(length(CAST(content AS BLOB))), 0) FROM messages WHERE session_pk = ?", (big_pk,)
            ).fetchone()[0]
            purger.execute("BEGIN IMMEDIATE")
            done = purge_step(purger, big_pk)
            purger.execute("COMMIT")
            batches += 1
            after = session_rows(db_path, big_pk)
            assert 0 < purged_rows(before, after) <= BATCH_ROWS or done
            text_after = purger.execute(
                "SELECT coalesce(sum(length(CAST(content AS BLOB))), 0) FROM messages WHERE session_pk = ?", (big_pk,)
            ).fetchone()[0]
            assert text_before - text_after <= max(BATCH_BYTES, 5 * size)  # 5 * size: the largest single text
            assert orphaned_index_rows(purger, big_pk) == 0  # index rows go in the same batch as their rows
            # the lock is free between batches: a writer that does not wait at all gets in
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO users (user_id) VALUES (?)", (f"between-{batches}",))
            other.execute("COMMIT")
        assert purger.execute("SELECT count(*) FROM session_purges").fetchone()[0] == 0
        assert purger.execute("SELECT count(*) FROM sessions WHERE pk = ?", (big_pk,)).fetchone()[0] == 0
    assert batches > 1
    assert session_rows(db_path, big_pk) == NOTHING_LEFT
    integrity(db_path)


async def test_a_deleted_session_vanishes_at_once_and_its_id_is_free_again(db_path: Path) -> None:
    await fill(db_path, "alice", "big", 600, word="zebra")
    await fill(db_path, "alice", "kept", 2, word="zebra")
    await fill(db_path, "bob", "big", 2, word="zebra")
    big_pk = session_pk_of(db_path, "alice", "big")
    store = await SqliteStore.open(db_path)
    alice, bob = store.for_user("alice"), store.for_user("bob")
    try:
        bob_before = await bob.get_chat_history("big", include_tool_messages=True)
        kept_before = await alice.get_chat_history("kept", include_tool_messages=True)
        await alice.delete_session("big")
        with write_lock(db_path), anyio.fail_after(30):  # the purge is held mid-way while we look
            assert session_rows(db_path, big_pk)["search_index"] > 0
            for query in ("zebra", "zebra_tool"):
                assert {hit.session_id for hit in await alice.search(query, limit=50)} == {"kept"}
            for read in (
                alice.get_session("big"),
                alice.get_chat_history("big"),
                alice.get_tool_calls("big"),
            ):
                with pytest.raises(SessionNotFound):
                    await read
            listed = await alice.list_sessions()
            assert (listed.total, [s.session_id for s in listed.sessions]) == (1, ["kept"])
            assert {hit.session_id for hit in await bob.search("zebra", limit=50)} == {"big"}

        for write in (alice.update_session("big", name="x"), alice.delete_session("big")):
            with pytest.raises(SessionNotFound):
                await write
        again, created = await alice.start_session("big")
        assert created and again.run_count == 0
        assert (await alice.get_chat_history("big")).messages == []
        assert (await alice.get_tool_calls("big")).tool_calls == []
        assert {hit.session_id for hit in await alice.search("zebra", limit=50)} == {"kept"}
        await alice.append_run("big", turn(random.Random(1), "fresh", word="okapi"))
        assert {hit.session_id for hit in await alice.search("okapi")} == {"big"}

        with anyio.fail_after(60):
            await store.purge_pending()
        assert session_rows(db_path, big_pk) == NOTHING_LEFT
        assert await bob.get_chat_history("big", include_tool_messages=True) == bob_before
        assert await alice.get_chat_history("kept", include_tool_messages=True) == kept_before
        assert (await alice.get_session("big")).run_count == 1
    finally:
        await store.close()
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("SELECT count(*) FROM session_purges").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM search_index").fetchone()[0] == 3 * (2 + 2 + 1)
    integrity(db_path)


async def reopen_and_see_the_purge_finish(db_path: Path, big_pk: int) -> None:
    """The next store on the file keeps alice's "big" hidden and purges it; her "kept" (2 runs) stays whole."""
    store = await SqliteStore.open(db_path)
    try:
        with pytest.raises(SessionNotFound):
            await store.for_user("alice").get_session("big")
        with anyio.fail_after(60):
            await store.purge_pending()
        assert session_rows(db_path, big_pk) == NOTHING_LEFT
        assert (await store.for_user("alice").get_session("kept")).run_count == 2
    finally:
        await store.close()
    integrity(db_path)


async def test_a_purge_stopped_by_closing_the_store_finishes_at_the_next_open(db_path: Path) -> None:
    await fill(db_path, "alice", "big", 600)
    await fill(db_path, "alice", "kept", 2)
    big_pk = session_pk_of(db_path, "alice", "big")
    store = await SqliteStore.open(db_path)
    await store.for_user("alice").delete_session("big")
    await store.close()
    assert session_rows(db_path, big_pk)["runs"] > 0

    await reopen_and_see_the_purge_finish(db_path, big_pk)


DELETE_AND_HANG = """
import asyncio, sys
from mcp_server_sessions.store import SqliteStore

async def main() -> None:
    store = await SqliteStore.open(sys.argv[1])
    await store.for_user("alice").delete_session("big")
    print("deleted", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # purging until killed

asyncio.run(main())
"""


async def test_a_purge_cut_short_by_kill_9_finishes_at_the_next_open(tmp_path: Path, db_path: Path) -> None:
    await fill(db_path, "alice", "big", 1_500)
    await fill(db_path, "alice", "kept", 2)
    big_pk = session_pk_of(db_path, "alice", "big")
    child = subprocess.Popen(
        [sys.executable, "-c", DELETE_AND_HANG, str(db_path)],
        env=child_env(tmp_path, db_path),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        with anyio.fail_after(30):
            line = await anyio.to_thread.run_sync(child.stdout.readline, abandon_on_cancel=True)
        assert line == b"deleted\n"
        with write_lock(db_path):  # no batch is half done when the kill lands
            child.send_signal(signal.SIGKILL)
            assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        reap(child)
    left = session_rows(db_path, big_pk)
    assert left["runs"] > 0 and left["search_index"] > 0

    await reopen_and_see_the_purge_finish(db_path, big_pk)


async def test_two_stores_purging_the_same_session_at_once_leave_every_other_row(db_path: Path) -> None:
    await fill(db_path, "alice", "big", 600)
    await fill(db_path, "alice", "kept", 2)
    big_pk = session_pk_of(db_path, "alice", "big")
    first, second = await SqliteStore.open(db_path), await SqliteStore.open(db_path)
    try:
        kept = await first.for_user("alice").get_chat_history("kept", include_tool_messages=True)
        await first.for_user("alice").delete_session("big")
        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(first.purge_pending)
                group.start_soon(second.purge_pending)
        assert session_rows(db_path, big_pk) == NOTHING_LEFT
        assert await second.for_user("alice").get_chat_history("kept", include_tool_messages=True) == kept
    finally:
        await first.close()
        await second.close()
    integrity(db_path)


async def test_a_late_batch_never_touches_a_new_session_that_took_the_purged_pk(db_path: Path) -> None:
    await fill(db_path, "alice", "old", 2)
    old_pk = session_pk_of(db_path, "alice", "old")  # the newest session: its pk is the next to be reused
    store = await SqliteStore.open(db_path)
    try:
        await store.for_user("alice").delete_session("old")
        await store.for_user("alice").append_run("new", turn(random.Random(2), "r1"))
        assert session_pk_of(db_path, "alice", "new") == old_pk
    finally:
        await store.close()
    with closing(sqlite3.connect(db_path, isolation_level=None)) as late:  # a purger that looked up the pk before
        late.execute("PRAGMA foreign_keys = ON")
        late.execute("BEGIN IMMEDIATE")
        assert purge_step(late, old_pk) is True
        late.execute("COMMIT")
    assert session_rows(db_path, old_pk) == {"runs": 1, "messages": 3, "tool_calls": 1, "search_index": 3}


async def test_the_reserved_owner_of_deleted_sessions_is_no_user_at_all(db_path: Path) -> None:
    await fill(db_path, "alice", "big", 600, word="zebra")
    big_pk = session_pk_of(db_path, "alice", "big")
    store = await SqliteStore.open(db_path)
    try:
        await store.for_user("alice").delete_session("big")
        with write_lock(db_path), anyio.fail_after(30):  # the purge is held mid-way while we look
            tombstone = f"deleted-{big_pk}"
            purging = store.for_user(PURGING_USER)
            page = await purging.list_sessions()
            assert page.sessions == [] and page.total == 0
            for read in (purging.get_session, purging.get_chat_history, purging.get_tool_calls):
                with pytest.raises(SessionNotFound):
                    await read(tombstone)
            assert await purging.search("zebra") == []
    finally:
        await store.close()
