"""Opening the SQLite file and running whole transactions on aiosqlite's connection thread.

Each store operation is one plain function of a `sqlite3.Connection`, run in a single hop to
the connection's worker thread: a transaction can never interleave with another coroutine's
statements, and a cancelled caller still lets it commit or roll back as a whole.

Short, bounded reads may instead run `inline`, on the event loop's own thread, on a second
connection that never waits for a lock: the hop to a worker thread and back costs more than
such a read itself. In WAL mode readers do not wait for writers; in the rare case SQLite still
answers "busy", the inline attempt gives up at once and the read goes to the worker thread.
Writes always go to the worker thread: an inline writer that never waits would starve writers
in other processes, which wait by polling.
"""

import logging
import os
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import aiosqlite

from .errors import StoreBusy, StoreError, StoreUnavailable

logger = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5_000
BUSY_ATTEMPTS = 4
_UNAVAILABLE = (
    "The session database could not complete the operation (disk full, permissions or a damaged file); "
    "check the server log and the --db path."
)


class _Locked(Exception):
    """An inline attempt found the database locked; the worker thread must do it."""


class Connection:
    """One aiosqlite connection whose work runs as whole functions on its own thread."""

    def __init__(self, connection: aiosqlite.Connection, inline: sqlite3.Connection | None = None) -> None:
        self._connection = connection
        self._inline = inline

    @classmethod
    async def open(cls, database: str, *, inline: bool = False) -> "Connection":
        try:
            connection = await aiosqlite.connect(database, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"Cannot open the session database {database!r}: check --db.") from exc
        wrapper = cls(connection)
        try:
            await wrapper.run(_configure)
            if inline and database != ":memory:":
                wrapper._inline = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
                _configure(wrapper._inline)
                wrapper._inline.execute("PRAGMA busy_timeout = 0")
        except BaseException:
            await wrapper.close()  # its worker thread would otherwise keep the process alive
            raise
        return wrapper

    async def close(self) -> None:
        if self._inline is not None:
            self._inline.close()
        await self._connection.close()

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, inline: bool = False) -> T:
        """Run `fn` (inline if asked and the database is free, else on the connection thread,
        retrying it while other writers hold the lock)."""
        try:
            if inline and self._inline is not None:
                try:
                    return self._run_inline(self._inline, fn)
                except _Locked:
                    pass
            # aiosqlite's own methods are built on `_execute`; using it directly turns a
            # transaction of many statements into one thread hop instead of one per statement.
            result: T = await self._connection._execute(self._with_retry, fn)  # type: ignore[no-untyped-call]
            return result
        except StoreError:
            raise
        except sqlite3.Error as exc:
            if _is_busy(exc):
                raise StoreBusy("The session database stayed locked by another process; retry the call.") from exc
            logger.error("SQLite error: %r", exc)
            raise StoreUnavailable(_UNAVAILABLE) from exc
        except ValueError as exc:
            if str(exc) != "Connection closed":  # aiosqlite's own word; any other ValueError is a bug
                raise
            raise StoreUnavailable("The session store is closed; restart the server.") from exc

    @staticmethod
    def _run_inline(raw: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return fn(raw)
        except sqlite3.OperationalError as exc:
            if _is_busy(exc):
                raise _Locked from exc
            raise
        finally:
            if raw.in_transaction:
                raw.execute("ROLLBACK")

    def _with_retry(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        raw = self._connection._conn
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


def write(fn: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    """`fn` inside BEGIN IMMEDIATE ... COMMIT: the write lock is taken up front, so the
    transaction never fails half-way on a lock upgrade, and commits entirely or not at all."""

    def transaction(raw: sqlite3.Connection) -> T:
        raw.execute("BEGIN IMMEDIATE")
        result = fn(raw)
        raw.execute("COMMIT")
        return result

    return transaction


def read(fn: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    """`fn` inside one read transaction, so all its queries see the same snapshot."""

    def transaction(raw: sqlite3.Connection) -> T:
        raw.execute("BEGIN")
        result = fn(raw)
        raw.execute("COMMIT")
        return result

    return transaction


def prepare_file(path: Path) -> None:
    """Create the missing parent folders (0700) and the database file (0600), whatever the umask.

    An existing database file readable by others is reported, not changed: its owner may mean it.
    """
    existed = path.exists()
    try:
        _make_private_folders(path.parent)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            if not existed:
                os.fchmod(fd, 0o600)  # the mode given to os.open is masked by the umask
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
    except OSError as exc:
        if existed:
            raise StoreUnavailable(
                f"Cannot write the session database at {str(path)!r} ({exc.strerror}); make the file and its "
                "folder writable, or choose another --db path."
            ) from exc
        raise StoreUnavailable(
            f"Cannot create the session database at {str(path)!r} ({exc.strerror}); choose another --db path."
        ) from exc
    if mode & 0o077:
        logger.warning(
            "The session database %s can be read by other users (mode %04o); run chmod 600 on it to keep it private.",
            path,
            mode,
        )


def make_companions_private(path: Path) -> None:
    """Make the -wal and -shm files 0600 once the connections have opened them.

    SQLite gives them the database file's mode whenever it opens them empty (so making them
    beforehand does not help); once they hold data it leaves their mode alone.
    """
    for companion in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            status = companion.stat()
            if status.st_uid == os.geteuid() and status.st_mode & 0o077:
                companion.chmod(0o600)
        except FileNotFoundError:
            pass


def _make_private_folders(folder: Path) -> None:
    missing: list[Path] = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made by another process just now: its mode is its maker's business
        created.chmod(0o700)  # mkdir's mode is masked by the umask


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
