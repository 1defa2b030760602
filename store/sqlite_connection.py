"""Running whole transactions on a SQLite connection owned by one worker thread.

Each store operation is one plain function of a `sqlite3.Connection`, run whole, either in a
single hop to the connection's own worker thread or inline (below): a transaction can never
interleave with another coroutine's statements. On the worker, the function runs to its end
whatever happens to the caller, so a cancelled caller still lets its transaction commit or roll
back as a whole; only the answer is dropped.

The worker is a one-thread `ThreadPoolExecutor`: it starts with the connection, ends once the
connection is closed, and the interpreter ends it at exit (after the work in hand), so it never
keeps the process alive.

Short, bounded work may instead run `inline`, on the event loop's own thread, on a second
connection that never waits for a lock: the hop to a worker thread and back costs more than
such work itself (under load about 1 ms of CPU, several times a small write). Reads in WAL mode
do not wait for writers; a small write takes the lock when it is free. If SQLite answers "busy"
(another process holds the lock), the inline attempt gives up at once and the work goes to the
worker thread, which waits for the lock there, never on the event loop. A writer connection's
operations take turns (an asyncio lock), so an inline write never collides with this process's
own write in flight on the worker. Inline connections do not autocheckpoint; every
CHECKPOINT_EVERY inline writes, the writer that made the last one runs a PASSIVE checkpoint on
the worker thread while its turn still holds off this process's other writes, as SQLite's own
autocheckpoint runs in the writer that crossed its threshold (readers and other processes may
still keep a checkpoint from finishing; the next one catches up, and the WAL stays a few MB).
"""

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .errors import StoreBusy, StoreError, StoreUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5_000
BUSY_ATTEMPTS = 4
CHECKPOINT_EVERY = 50
"""Writes made on the event loop (where autocheckpoint is off) between two checkpoints on the worker:
about as many WAL pages as SQLite's own autocheckpoint lets grow (1,000) for runs of a few KB."""
_UNAVAILABLE = (
    "The session database could not complete the operation (disk full, permissions or a damaged file); "
    "check the server log and the --db path."
)
_CLOSED = "The session store is closed; restart the server."


class _Locked(Exception):
    """An inline attempt found the database locked; the worker thread must do it."""


class Connection:
    """One SQLite connection whose work runs as whole functions on its own worker thread."""

    def __init__(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        self._raw: sqlite3.Connection | None = None  # made, used and closed on the worker thread only
        self._inline: sqlite3.Connection | None = None
        self._inline_writes = 0
        self._checkpoint_due = False
        self._turns: asyncio.Lock | None = None
        """A writer's operations one at a time, in order: a turn ends when its work is done on either
        thread, even if its caller was cancelled while the worker had it."""
        self._closed = False

    @classmethod
    async def open(cls, database: str, *, inline: bool = False, writer: bool = False) -> "Connection":
        connection = cls()
        if writer:
            connection._turns = asyncio.Lock()
        try:
            try:
                await connection._hop(functools.partial(connection._connect, database))
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"Cannot open the session database {database!r}: check --db.") from exc
            await connection.run(_configure)
            if inline and database != ":memory:":
                connection._inline = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
                _configure(connection._inline)
                connection._inline.execute("PRAGMA busy_timeout = 0")
                # A checkpoint takes milliseconds: the worker thread makes them, never the event loop.
                connection._inline.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            await connection.close()
            raise
        return connection

    async def close(self) -> None:
        """Close the connections once the work already handed to the thread is done; the thread then ends."""
        if self._closed:
            return
        self._closed = True
        if self._inline is not None:
            self._inline.close()
        try:
            await self._hop(self._disconnect)
        finally:
            self._worker.shutdown(wait=False)  # the close above still runs if this caller is cancelled

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, inline: bool = False) -> T:
        """Run `fn` (inline if asked and the database is free, else on the worker thread,
        retrying it while other writers hold the lock)."""
        if self._closed:
            raise StoreUnavailable(_CLOSED)
        try:
            if self._turns is not None:
                await self._turns.acquire()  # released by _attempt, or by the worker once it is done
                if self._closed:  # closed while this call waited for its turn
                    self._end_turn()
                    raise StoreUnavailable(_CLOSED)
            result, suspended = await self._attempt(fn, inline)
            if not suspended:
                await asyncio.sleep(0)  # done without suspending: let others run before the next call
            return result
        except StoreError:
            raise
        except sqlite3.Error as exc:
            if _is_busy(exc):
                raise StoreBusy("The session database stayed locked by another process; retry the call.") from exc
            logger.error("SQLite error: %r", exc)
            raise StoreUnavailable(_UNAVAILABLE) from exc

    async def _attempt(self, fn: Callable[[sqlite3.Connection], T], inline: bool) -> tuple[T, bool]:
        """`fn`'s result, and whether getting it suspended this coroutine (a hop to the worker)."""
        if inline and self._inline is not None:
            try:
                result = self._run_inline(self._inline, fn)
            except _Locked:
                pass
            except BaseException:
                self._end_turn()
                raise
            else:
                if not self._checkpoint_due:
                    self._end_turn()
                    return result, False
                await self._hop(self._checkpoint, ends_turn=True)  # as SQLite's autocheckpoint: after a write
                return result, True
        return await self._hop(functools.partial(self._with_retry, fn), ends_turn=True), True

    def _end_turn(self) -> None:
        if self._turns is not None:
            self._turns.release()

    async def _hop(self, call: Callable[[], T], *, ends_turn: bool = False) -> T:
        """`call()` on the worker thread, awaited here; if this caller is cancelled it still runs to its end
        (and, with `ends_turn`, the writer's turn ends only then)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        done = self._end_turn if ends_turn else _nothing
        try:
            self._worker.submit(_answer, loop, answer, call, done)
        except RuntimeError:  # the worker is shut down: the store was closed, or the interpreter is exiting
            done()
            raise StoreUnavailable(_CLOSED) from None
        return await answer

    def _connect(self, database: str) -> None:
        self._raw = sqlite3.connect(database, isolation_level=None)

    def _disconnect(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None

    def _run_inline(self, raw: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        changes = raw.total_changes
        try:
            result = fn(raw)
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise _Locked from exc
            raise
        finally:
            if raw.in_transaction:
                raw.execute("ROLLBACK")
        if raw.total_changes != changes:
            self._inline_writes += 1
            self._checkpoint_due = self._inline_writes % CHECKPOINT_EVERY == 0
        return result

    def _checkpoint(self) -> None:
        """On the worker thread: move the WAL's pages into the database, waiting for no one (PASSIVE)."""
        try:
            if self._raw is not None:
                self._raw.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # the next one, or another connection's, will do it
            logger.warning("WAL checkpoint failed: %r", exc)
        finally:
            self._checkpoint_due = False

    def _with_retry(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raw = self._raw
        if raw is None:  # queued behind the close
            raise StoreUnavailable(_CLOSED)
        for attempt in range(BUSY_ATTEMPTS):
            try:
                return fn(raw)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt == BUSY_ATTEMPTS - 1:
                    raise
                logger.info("database busy, retrying (attempt %d)", attempt + 1)
                time.sleep(0.01 * 2**attempt)
            finally:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
        raise AssertionError("unreachable")


def _answer(
    loop: asyncio.AbstractEventLoop, answer: "asyncio.Future[T]", call: Callable[[], T], done: Callable[[], None]
) -> None:
    """On the worker thread: run `call` whole, then hand its outcome to the waiting coroutine, if any,
    and call `done` on the event loop."""
    try:
        outcome = functools.partial(_resolve, answer, call())
    except BaseException as exc:
        outcome = functools.partial(_reject, answer, exc)
    with contextlib.suppress(RuntimeError):  # the event loop has closed: nobody is waiting any more
        loop.call_soon_threadsafe(outcome)
        loop.call_soon_threadsafe(done)


def _nothing() -> None:
    pass


def _resolve(answer: "asyncio.Future[T]", result: T) -> None:
    if not answer.done():  # done: the caller was cancelled, and its work is done all the same
        answer.set_result(result)


def _reject(answer: "asyncio.Future[T]", error: BaseException) -> None:
    if not answer.done():
        answer.set_exception(error)


def write(fn: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    """`fn` inside BEGIN IMMEDIATE ... COMMIT: the write lock is taken up front, so the
    transaction never fails half-way on a lock upgrade, and commits entirely or not at all."""
    return functools.partial(_transaction, "BEGIN IMMEDIATE", fn)


def read(fn: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    """`fn` inside one read transaction, so all its queries see the same snapshot."""
    return functools.partial(_transaction, "BEGIN", fn)


def _transaction(begin: str, fn: Callable[[sqlite3.Connection], T], raw: sqlite3.Connection) -> T:
    raw.execute(begin)
    result = fn(raw)
    raw.execute("COMMIT")
    return result


def _configure(raw: sqlite3.Connection) -> None:
    raw.row_factory = sqlite3.Row
    raw.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    raw.execute("PRAGMA foreign_keys = ON")
    mode = raw.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() not in ("wal", "memory"):
        logger.warning("SQLite journal mode is %s, not WAL; concurrent servers will wait on each other", mode)
    # In WAL mode NORMAL loses no committed transaction when the process dies; only a power
    # cut can drop the last few, and the file stays consistent either way.
    raw.execute("PRAGMA synchronous = NORMAL")


def _is_busy(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    message = str(exc).lower()
    return "locked" in message or "busy" in message
