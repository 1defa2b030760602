"""The PostgreSQL session store: for several server processes (replicas) on several machines.

The store opens a pool on the database (postgres_pool.py, migrating it under an advisory lock),
hands out one handle per user (`for_user`, postgres_sessions.py) through which every read and write
of that user's data goes, and does the work that belongs to no user: marking `error` the runs whose
lease expired (their server stopped renewing it, wherever it ran), and moving whole sessions in and out.
"""

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING

from . import postgres_import
from . import postgres_records as records
from . import postgres_runs as runs
from .cursor import CursorSealer
from .limits import RUN_LEASE_S, check_id
from .pool_settings import PoolSettings
from .postgres_connection import Database
from .postgres_pool import open_pool
from .postgres_session_table import OwnedSession, UserDirectory
from .postgres_session_table import start as start_session
from .postgres_sessions import PgStoreParts, PostgresUserSessions
from .postgres_values import now
from .records import ImportedSession, OnConflict, SessionRecord, StoreCounts
from .run_inputs import NewRun
from .sqlite_rows import prepare_run

if TYPE_CHECKING:
    from .postgres_schema import Conn


class PostgresStore:
    """SessionStore on a PostgreSQL database, shared by any number of server processes."""

    def __init__(self, db: Database, cursors: CursorSealer, lease_s: float) -> None:
        self._parts = PgStoreParts(db, cursors, UserDirectory(), lease_s)

    @classmethod
    async def open(cls, url: str, pool: PoolSettings | None = None, *, lease_s: float = RUN_LEASE_S) -> "PostgresStore":
        """Open a pool on `url` (migrating the database as needed) and mark runs whose lease expired."""
        pool = pool or PoolSettings()
        db = Database(await open_pool(url, pool), None if pool.statement_cache else pool.statement_timeout_ms)
        try:
            secret = await db.run(lambda conn: conn.fetchval("SELECT value FROM secrets WHERE name = 'cursor'"))
            store = cls(db, CursorSealer(bytes(secret)), lease_s)
            await store.recover_interrupted_runs()
        except BaseException:
            await db.close()
            raise
        return store

    @property
    def lease_s(self) -> float:
        return self._parts.lease_s

    def for_user(self, user_id: str) -> PostgresUserSessions:
        return PostgresUserSessions(self._parts, user_id)

    async def close(self) -> None:
        await self._parts.db.close()

    async def recover_interrupted_runs(self) -> int:
        """Mark `error` the runs left `running` whose lease has expired."""
        return await self._parts.db.run(runs.mark_expired)

    def export_sessions(
        self, *, user_id: str | None = None, session_ids: Sequence[str] | None = None
    ) -> AsyncIterator[SessionRecord]:
        """Every session (or `user_id`'s, or those of `session_ids`), whole, one read-only transaction
        each (see postgres_records.py)."""
        return records.export_sessions(self._parts.db, user_id=user_id, session_ids=session_ids)

    async def import_session(self, record: SessionRecord, *, on_conflict: OnConflict = "merge") -> ImportedSession:
        """Write one session as the record has it: created, or merged into, skipped or replacing the one
        its user has (see postgres_import.py)."""
        return await postgres_import.import_session(self._parts.db, self._parts.users, record, on_conflict)

    async def counts(self) -> StoreCounts:
        return await records.counts(self._parts.db)

    async def import_runs(self, batch: Iterable[tuple[str, str, NewRun]]) -> int:
        """Append recorded runs of any users in one transaction (for loading a corpus, as
        SqliteStore.import_runs); a run whose run_id its session holds is left as it is."""
        prepared = [
            (check_id(user_id, "user_id"), check_id(session_id, "session_id"), prepare_run(run))
            for user_id, session_id, run in batch
        ]

        async def body(conn: "Conn") -> int:
            written = 0
            # Users met in this batch: the directory caches a pk only once committed, so a user this
            # transaction inserts is looked up here, not through it, after the first time.
            user_pks: dict[str, int] = {}
            sessions: dict[tuple[str, str], OwnedSession] = {}
            for user_id, session_id, run in prepared:
                moment = now()
                if user_id not in user_pks:
                    user_pks[user_id] = await self._parts.users.created_user_pk(conn, user_id)
                if (user_id, session_id) not in sessions:
                    user_pk = user_pks[user_id]
                    session_pk, _ = await start_session(conn, user_pk, session_id, moment)
                    sessions[user_id, session_id] = OwnedSession(user_pk, session_pk, session_id)
                _, added = await runs.append(conn, sessions[user_id, session_id], run, False, moment)
                written += added
            return written

        return await self._parts.db.run(body)
