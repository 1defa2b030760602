"""The SQLite store's worker threads: a cancelled caller's transaction still ends whole, a closed
store says so, and no worker thread keeps the process alive."""

import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from mcp_server_sessions.store import NewRun, NewToolCall, SqliteStore, StoreUnavailable

pytestmark = pytest.mark.anyio

CLOSED = "The session store is closed; restart the server."


async def test_a_cancelled_caller_still_commits_its_whole_run(db_path: Path) -> None:
    store = await SqliteStore.open(db_path)
    alice = store.for_user("alice")
    run = NewRun.recorded("a question", "an answer", [NewToolCall(tool_name="lookup")], run_id="r1")
    try:
        with anyio.fail_after(30):
            with closing(sqlite3.connect(db_path, isolation_level=None)) as holder:
                holder.execute("BEGIN IMMEDIATE")  # the append waits on the worker thread for this lock
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as group:
                        group.start_soon(alice.append_run, "s1", run)
                        await anyio.wait_all_tasks_blocked()  # the append is on the worker thread now
                        scope.cancel()
                holder.execute("ROLLBACK")
            assert scope.cancelled_caught
            await alice.start_session("s2")  # queued behind the cancelled append on the same thread
            history = await alice.get_chat_history("s1", include_tool_messages=True)
        assert [m.content for m in history.messages] == ["a question", "lookup({}) -> null", "an answer"]
        assert [c.tool_name for c in (await alice.get_tool_calls("s1")).tool_calls] == ["lookup"]
        assert (await alice.get_session("s1")).run_count == 1
    finally:
        await store.close()


async def test_a_closed_store_says_so_for_reads_and_writes(db_path: Path) -> None:
    store = await SqliteStore.open(db_path)
    alice = store.for_user("alice")
    await alice.start_session("s1")
    await store.close()
    await store.close()  # closing twice is harmless
    calls = (
        lambda: alice.get_session("s1"),  # an inline read
        lambda: alice.search("anything"),  # a read on the worker thread
        lambda: alice.append_run("s1", NewRun.recorded("hi", "hello")),
    )
    for call in calls:
        with pytest.raises(StoreUnavailable) as refused:
            await call()
        assert str(refused.value) == CLOSED


async def test_closing_the_store_ends_its_worker_threads(db_path: Path) -> None:
    before = set(threading.enumerate())
    store = await SqliteStore.open(db_path)
    await store.for_user("alice").start_session("s1")
    workers = [thread for thread in set(threading.enumerate()) - before if thread.name.startswith("sqlite-store")]
    assert len(workers) == 2  # the writer's and the reader's
    await store.close()
    for worker in workers:
        worker.join(timeout=30)
        assert not worker.is_alive()


NEVER_CLOSED = """
import asyncio, sys
from mcp_server_sessions.store import SqliteStore

KEPT = []

async def main() -> None:
    store = await SqliteStore.open(sys.argv[1])
    KEPT.append(store)  # still referenced when the interpreter exits
    await store.for_user("alice").start_session("s1")
    print("started", flush=True)

asyncio.run(main())
"""


def test_a_store_never_closed_does_not_keep_the_process_alive(db_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", NEVER_CLOSED, str(db_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout) == (0, "started\n"), result.stderr


async def test_a_cancelled_close_still_closes_both_connections(db_path: Path) -> None:
    store = await SqliteStore.open(db_path)
    alice = store.for_user("alice")
    with anyio.CancelScope() as scope:
        scope.cancel()
        await store.close()  # cancelled at its first wait, inside the reader's close
    with pytest.raises(StoreUnavailable) as write:
        await alice.start_session("s1")
    with pytest.raises(StoreUnavailable) as read:
        await alice.get_session("s1")
    assert (str(write.value), str(read.value)) == (CLOSED, CLOSED)


async def test_small_writes_on_the_event_loop_still_checkpoint_the_wal(db_path: Path) -> None:
    """Small writes run inline with autocheckpoint off; the worker thread checkpoints after every
    CHECKPOINT_EVERY of them, so the WAL does not grow with the number of writes."""
    store = await SqliteStore.open(db_path)
    alice = store.for_user("alice")
    wal = db_path.with_name(db_path.name + "-wal")
    try:
        sizes = []
        for index in range(1_200):
            await alice.append_run("s1", NewRun.recorded(f"question {index} " * 20, f"answer {index} " * 40))
            if index % 300 == 299:
                sizes.append(wal.stat().st_size)
    finally:
        await store.close()
    # Without checkpoints the WAL grows with every write (about 20 MB more per 300 of these runs).
    assert max(sizes) < 8_000_000, sizes
    assert sizes[-1] <= sizes[0] * 1.5, sizes


async def test_a_small_write_that_finds_the_file_locked_waits_off_the_event_loop(db_path: Path) -> None:
    store = await SqliteStore.open(db_path)
    alice = store.for_user("alice")
    ticks, longest_stall, last = 0, 0.0, time.monotonic()

    async def ticking() -> None:
        nonlocal ticks, longest_stall, last
        while True:
            ticks += 1
            now = time.monotonic()
            longest_stall, last = max(longest_stall, now - last), now
            await anyio.sleep(0)

    try:
        with anyio.fail_after(30), closing(sqlite3.connect(db_path, isolation_level=None)) as holder:
            holder.execute("BEGIN IMMEDIATE")  # another process's write lock
            async with anyio.create_task_group() as group:
                group.start_soon(ticking)
                appending = anyio.Event()

                async def append() -> None:
                    await alice.append_run("s1", NewRun.recorded("a question", "an answer", run_id="r1"))
                    appending.set()

                group.start_soon(append)
                for _ in range(200):
                    await anyio.sleep(0)
                assert not appending.is_set()
                assert ticks >= 150  # the event loop kept running while the append waited for the lock
                assert longest_stall < 0.5, longest_stall
                holder.execute("COMMIT")
                await appending.wait()
                group.cancel_scope.cancel()
        assert (await alice.get_session("s1")).run_count == 1
    finally:
        await store.close()


async def test_a_write_waiting_for_its_turn_when_the_store_closes_is_told_it_closed(db_path: Path) -> None:
    store = await SqliteStore.open(db_path)
    alice = store.for_user("alice")
    outcomes: dict[str, BaseException | None] = {}

    async def append(run_id: str) -> None:
        try:
            await alice.append_run("s1", NewRun.recorded("q", "a", run_id=run_id))
            outcomes[run_id] = None
        except StoreUnavailable as exc:
            outcomes[run_id] = exc

    with anyio.fail_after(30), closing(sqlite3.connect(db_path, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")  # `first` goes to the worker and waits there, holding the turn
        async with anyio.create_task_group() as group:
            group.start_soon(append, "first")
            await anyio.wait_all_tasks_blocked()
            group.start_soon(append, "second")  # waits for the turn
            await anyio.wait_all_tasks_blocked()
            group.start_soon(store.close)
            await anyio.wait_all_tasks_blocked()
            holder.execute("ROLLBACK")
    assert outcomes["first"] is None
    assert str(outcomes["second"]) == CLOSED
