"""Deleting a session without holding the write lock for long.

A deleted session vanishes at once, in one short transaction (`vanish`): it moves to a reserved
owner that no user_id can name, under a tombstone id (so its user can start a new session with
the same id straight away), and a `session_purges` row remembers its former owner, whose searches
leave out its index rows until they are gone. Its rows are then purged in batches (`purge_step`),
each its own short transaction; between batches the lock stays free long enough for writers that
wait in other processes, whose busy handler polls with sleeps of up to 100 ms.

A purge left by a process that stopped or crashed is resumed by the next store to open the file.
Several processes purging the same session at once is harmless: each batch deletes whatever rows
are left, and a batch that finds the session already purged does nothing.
"""

import asyncio
import logging
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Literal

from . import sqlite_search_index as search_index
from .clock import utc_now
from .errors import StoreBusy, StoreError
from .sqlite_connection import Connection, read

logger = logging.getLogger(__name__)

PURGING_USER = "(sessions being deleted)"  # the users row created by schema migration 3
BATCH_ROWS = 200
BATCH_BYTES = 500_000  # text deleted per batch: removing a text from the search index costs by its size
MIN_PAUSE_S = 0.03

# A session's rows, in the order they are purged: a run goes last, once its messages and tool calls
# (whose search index entries would otherwise be left behind by the cascade) and attachments are gone.
# Sizes are byte lengths of blobs: SQLite's length() of a text stops at its first NUL character.
_TABLES: tuple[tuple[Literal["tool_calls", "messages", "attachments", "runs"], str], ...] = (
    ("tool_calls", "length(CAST(arguments AS BLOB)) + length(CAST(result AS BLOB))"),
    ("messages", "length(CAST(content AS BLOB)) + coalesce(length(CAST(blocks AS BLOB)), 0)"),
    ("attachments", "size + coalesce(length(url), 0)"),
    ("runs", "length(CAST(input AS BLOB)) + coalesce(length(CAST(content AS BLOB)), 0)"),
)


def vanish(raw: sqlite3.Connection, user_pk: int, session_pk: int) -> None:
    """Take the session from its user at once; its rows stay until purged."""
    raw.execute(
        "INSERT INTO session_purges (session_pk, user_pk, deleted_at) VALUES (?, ?, ?)",
        (session_pk, user_pk, utc_now()),
    )
    raw.execute(
        "UPDATE sessions SET user_pk = (SELECT pk FROM users WHERE user_id = ?), session_id = ? WHERE pk = ?",
        (PURGING_USER, f"deleted-{session_pk}", session_pk),
    )


def purge_step(raw: sqlite3.Connection, session_pk: int, rows: int = BATCH_ROWS, size: int = BATCH_BYTES) -> bool:
    """Delete up to `rows` rows (and about `size` characters of text) of a session being purged,
    with their search index rows; the session row itself goes once nothing else is left.

    Runs inside the caller's write transaction. True when the session is purged entirely.
    """
    if raw.execute("SELECT 1 FROM session_purges WHERE session_pk = ?", (session_pk,)).fetchone() is None:
        return True  # purged already (by another process); the pk may even belong to a new session now
    rows_left, text_left, full = rows, size, False
    for table, length in _TABLES:
        chosen: list[int] = []
        candidates = raw.execute(
            f"SELECT pk, {length} FROM {table} WHERE session_pk = ? LIMIT ?", (session_pk, rows_left)
        ).fetchall()
        for pk, text_size in candidates:
            if text_size > text_left and (chosen or rows_left < rows):  # a batch takes at least one row
                full = True
                break
            chosen.append(pk)
            text_left -= text_size
        if chosen:
            pks = str(chosen)  # a JSON array
            if table in ("tool_calls", "messages"):
                search_index.remove(raw, table, pks)
            raw.execute(f"DELETE FROM {table} WHERE pk IN (SELECT value FROM json_each(?))", (pks,))
        rows_left -= len(chosen)
        if full or rows_left == 0 or text_left <= 0:
            return False
    raw.execute("DELETE FROM sessions WHERE pk = ?", (session_pk,))  # its session_purges row goes with it
    return True


def hidden_from_search(raw: sqlite3.Connection, user_pk: int) -> tuple[str, list[Any]]:
    """A search_index condition leaving out the user's sessions being purged ('' when there are none)."""
    purging = raw.execute(
        "SELECT json_group_array(session_pk) FROM session_purges WHERE user_pk = ?", (user_pk,)
    ).fetchone()[0]
    if purging == "[]":
        return "", []
    return " AND session_pk NOT IN (SELECT value FROM json_each(?))", [purging]


def _next_purge(raw: sqlite3.Connection) -> int | None:
    row = raw.execute("SELECT session_pk FROM session_purges ORDER BY session_pk LIMIT 1").fetchone()
    return None if row is None else int(row[0])


@dataclass
class PurgeStats:
    """What a store's purger has done since the store opened (SqliteStore.purge_stats)."""

    batches: int = 0
    longest_lock_s: float = 0.0
    total_lock_s: float = 0.0


class Purger:
    """Purges every session pending deletion in the file, in the background, one batch at a time.

    Batches go through the store's writer connection, so the store's other writes take their turn
    between them.
    """

    def __init__(self, writer: Connection) -> None:
        self._writer = writer
        self._task: asyncio.Task[None] | None = None
        self._requests = 0
        self._stopped = False
        self.stats = PurgeStats()

    def start(self) -> None:
        """Purge in the background, unless stopped; a running purge also takes any newly deleted session."""
        self._requests += 1
        if not self._stopped and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._purge_all(), name="session purge")

    async def resume(self) -> None:
        """Start purging what a stopped or crashed process left, if anything."""
        if await self._writer.run(read(_next_purge)) is not None:
            self.start()

    async def finish(self) -> None:
        """Purge every pending session now and return when none is left."""
        self.start()
        if self._task is not None and not self._stopped:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Stop after the batch in flight; the rest is purged when the file is next opened."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])  # its end, without taking its cancellation for the caller's

    async def _purge_all(self) -> None:
        try:
            while True:
                requests = self._requests
                while (session_pk := await self._writer.run(read(_next_purge))) is not None:
                    await self._purge(session_pk)
                if requests == self._requests:  # no session was deleted while we looked
                    return
        except StoreError as exc:  # not a caller's error: the rows stay hidden and are purged at the next open
            logger.warning("Purging deleted sessions stopped: %s", exc)
        except Exception:
            logger.exception("Purging deleted sessions failed; the rest is purged when the file is next opened")

    async def _purge(self, session_pk: int) -> None:
        while True:
            started = time.perf_counter()
            try:
                if await self._writer.run(lambda raw: self._batch(raw, session_pk)):
                    return
            except StoreBusy:
                pass  # other writers are busy: try again after the pause
            # Free the lock for as long as the batch held it, at least MIN_PAUSE_S: a writer waiting in
            # another process only polls (every 1 to 100 ms) and must find it free.
            await asyncio.sleep(max(MIN_PAUSE_S, time.perf_counter() - started))

    def _batch(self, raw: sqlite3.Connection, session_pk: int) -> bool:
        """One purge_step in its own write transaction, timed from taking the lock to releasing it."""
        raw.execute("BEGIN IMMEDIATE")
        locked = time.perf_counter()
        done = purge_step(raw, session_pk)
        raw.execute("COMMIT")
        held = time.perf_counter() - locked
        self.stats.batches += 1
        self.stats.longest_lock_s = max(self.stats.longest_lock_s, held)
        self.stats.total_lock_s += held
        return done
