"""The SQLite session store: one file, WAL, rows per run, message and tool call, FTS5 search.

The store opens the file, hands out one handle per user (`for_user`, sqlite_sessions.py) through
which every read and write of that user's data goes, and does the work that belongs to no user:
recovering runs a crashed process left `running` or whose lease expired, purging deleted sessions,
importing runs in bulk.
"""

import asyncio
import functools
import itertools
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path

from . import sqlite_export, sqlite_import
from .cursor import SECRET_BYTES, CursorSealer
from .limits import RUN_LEASE_S, check_id
from .records import ImportedSession, OnConflict, SessionRecord, StoreCounts
from .run_inputs import NewRun
from .sqlite_connection import Connection, write
from .sqlite_files import make_companions_private, prepare_file
from .sqlite_identity import UserDirectory
from .sqlite_purge import Purger, PurgeStats
from .sqlite_rows import prepare_run
from .sqlite_runs import RunImport, import_batch, mark_interrupted
from .sqlite_schema import MIGRATIONS, Migration, migrate
from .sqlite_sessions import SqliteUserSessions, StoreParts

IMPORT_BATCH_RUNS = 5_000


class SqliteStore:
    """SessionStore on one SQLite file (or `:memory:`), safe to share between processes."""

    def __init__(
        self, writer: Connection, reader: Connection, cursors: CursorSealer, lease_s: float = RUN_LEASE_S
    ) -> None:
        self._parts = StoreParts(writer, reader, cursors, UserDirectory(), Purger(writer), lease_s)

    @classmethod
    async def open(
        cls, database: str | Path, migrations: tuple[Migration, ...] = MIGRATIONS, *, lease_s: float = RUN_LEASE_S
    ) -> "SqliteStore":
        """Open (creating and migrating as needed), mark runs interrupted by a crash or whose lease has
        expired and resume the purge of sessions deleted by a process that stopped before it finished.

        A run this store begins holds a lease of `lease_s` seconds (shorter in tests).
        """
        if str(database) == ":memory:":
            writer = await Connection.open(":memory:")
            reader = writer
        else:
            path = Path(database).expanduser()
            prepare_file(path)
            writer = await Connection.open(str(path), inline=True, writer=True)
            reader = writer
        try:
            await writer.run(lambda raw: migrate(raw, migrations))
            if str(database) != ":memory:":
                reader = await Connection.open(str(path), inline=True)
                make_companions_private(path)
            store = cls(writer, reader, CursorSealer(await writer.run(_cursor_secret)), lease_s)
            await store.recover_interrupted_runs()
            await store._parts.purger.resume()
        except BaseException:
            await writer.close()
            if reader is not writer:
                await reader.close()
            raise
        return store

    @property
    def lease_s(self) -> float:
        """How long the lease of a run this store begins lasts; its server renews it every third of that."""
        return self._parts.lease_s

    def for_user(self, user_id: str) -> SqliteUserSessions:
        """The handle through which every read and write of `user_id` goes (see sqlite_sessions.py)."""
        return SqliteUserSessions(self._parts, user_id)

    async def close(self) -> None:
        """Close the connections; a purge in progress stops and resumes at the next open."""
        try:
            await self._parts.purger.stop()
        finally:
            try:
                if self._parts.reader is not self._parts.writer:
                    await self._parts.reader.close()
            finally:  # a close cancelled while the reader closes still closes the writer
                await self._parts.writer.close()

    async def recover_interrupted_runs(self) -> int:
        """Mark `error` the runs left `running` by a server process of this host that no longer exists,
        and those of any server whose lease has expired; how many."""
        return await self._parts.writer.run(write(mark_interrupted))

    def export_sessions(
        self, *, user_id: str | None = None, session_ids: Sequence[str] | None = None
    ) -> AsyncIterator[SessionRecord]:
        """Every session (or `user_id`'s, or those of `session_ids`), whole, one read transaction each
        (see sqlite_export.py)."""
        return sqlite_export.export_sessions(self._parts.reader, user_id=user_id, session_ids=session_ids)

    async def import_session(self, record: SessionRecord, *, on_conflict: OnConflict = "merge") -> ImportedSession:
        """Write one session as the record has it: created, or merged into, skipped or replacing the one
        its user has (see sqlite_import.py)."""
        return await sqlite_import.import_session(self._parts.writer, self._parts.users, record, on_conflict)

    async def counts(self) -> StoreCounts:
        """Users owning a session, sessions, runs, messages and tool calls, sessions being deleted left out."""
        return await sqlite_export.counts(self._parts.reader)

    async def purge_pending(self) -> None:
        """Purge the rows of every deleted session now (also those another process left) and
        return when none is left."""
        await self._parts.purger.finish()

    @property
    def purge_stats(self) -> PurgeStats:
        """How many purge batches this store has run since it opened, and how long they held the write lock."""
        return self._parts.purger.stats

    async def import_runs(self, runs: Iterable[tuple[str, str, NewRun]], *, batch_runs: int = IMPORT_BATCH_RUNS) -> int:
        """Append many recorded runs, each given as (user_id, session_id, run), `batch_runs` to a
        transaction: far faster than `append_run` one run at a time, for loading a corpus (it acts
        for any users, so it is for the operator's tools, never for a caller's tool call).

        Each run is checked as `append_run` checks it and starts its session if needed; a run whose
        run_id its session already holds is left as it is. Batches commit one after another, so an
        invalid run raises InvalidInput with the batches before its own stored. While the worker
        thread writes one batch, the next is read from `runs` and checked here.
        Returns how many runs were written.
        """
        written = 0
        batches = _checked_batches(runs, batch_runs)
        batch = next(batches, None)
        while batch is not None:
            body = write(functools.partial(import_batch, users=self._parts.users, batch=batch))
            writing = asyncio.create_task(self._parts.writer.run(body))
            try:
                await asyncio.sleep(0)  # the batch goes to the worker thread before the next is made
                batch = next(batches, None)
            finally:
                written += await writing
        return written


def _checked_batches(runs: Iterable[tuple[str, str, NewRun]], size: int) -> Iterator[list[RunImport]]:
    iterator = iter(runs)
    while batch := list(itertools.islice(iterator, size)):
        yield [
            (check_id(user_id, "user_id"), check_id(session_id, "session_id"), prepare_run(run))
            for user_id, session_id, run in batch
        ]


def _cursor_secret(raw: sqlite3.Connection) -> bytes:
    """The database's own cursor secret (migration 4); a file without one gets a secret for this store only."""
    row = raw.execute("SELECT value FROM secrets WHERE name = 'cursor'").fetchone()
    return bytes(row[0]) if row is not None else secrets.token_bytes(SECRET_BYTES)
