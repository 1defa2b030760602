"""The store's way into PostgreSQL: one transaction per call on a pooled connection, and every
driver error mapped onto the store's own errors at this boundary (one sentence, no driver text).

A connection that died with the server (a restart, a failover) is replaced by the pool; the call
that met it is retried once on a fresh connection when it is safe to repeat (reads, and writes
that are idempotent by construction: a run is unique by its run_id, a session by its id). Lock
conflicts PostgreSQL breaks (deadlock, serialization) are retried a few times.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import asyncpg

from .errors import StoreBusy, StoreError, StoreUnavailable

if TYPE_CHECKING:
    from .postgres_schema import Conn

logger = logging.getLogger(__name__)

T = TypeVar("T")

ACQUIRE_TIMEOUT_S = 30.0
"""Longest a call waits for a free pooled connection before it is told the store is busy."""
CONFLICT_RETRIES = 3
CLOSE_TIMEOUT_S = 10.0

UNAVAILABLE = (
    "The PostgreSQL database cannot be reached right now (it may be restarting); retry in a moment, "
    "and tell the server's operator if it persists."
)


class _ConnectionLost(Exception):
    """The connection closed under a call (asyncpg says so with an InterfaceError)."""


_LOST = (
    _ConnectionLost,
    OSError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
_CONFLICT = (
    asyncpg.DeadlockDetectedError,
    asyncpg.SerializationError,
    asyncpg.InvalidCachedStatementError,  # a cached statement outlived a schema change: it did not run
)


class Database:
    """A pool, and the one way the store's modules run SQL on it."""

    def __init__(self, pool: asyncpg.Pool, statement_timeout_ms: int | None = None) -> None:
        self.pool = pool
        self._statement_timeout_ms = statement_timeout_ms
        """Set in each transaction (behind PgBouncer, where a connection's own settings do not hold)."""

    async def run(
        self,
        body: "Callable[[Conn], Awaitable[T]]",
        *,
        write: bool = True,
        repeatable: bool = True,
    ) -> T:
        """`body` in one transaction (read-only, repeatable read, unless `write`), its result.

        `repeatable`: the call may run again after its connection was lost mid-call. A write whose
        commit may have happened before the loss must be harmless to repeat.
        """
        lost_once = False
        conflicts = 0
        while True:
            try:
                return await self._once(body, write)
            except _CONFLICT:
                conflicts += 1
                if conflicts > CONFLICT_RETRIES:
                    raise StoreBusy(
                        "The database kept reporting conflicting writes to the same rows; retry the call."
                    ) from None
            except TimeoutError:  # before _LOST: a TimeoutError is an OSError
                raise StoreBusy(
                    f"No database connection came free within {ACQUIRE_TIMEOUT_S:.0f} s (all busy, or the server "
                    "unreachable); retry in a moment."
                ) from None
            except _LOST as exc:
                if lost_once or not repeatable:
                    logger.warning("PostgreSQL call failed: %s: %s", exc.__class__.__name__, exc)
                    raise StoreUnavailable(UNAVAILABLE) from None
                lost_once = True
            except asyncpg.QueryCanceledError:
                raise StoreBusy(
                    "The database call took longer than the statement timeout and was cancelled; "
                    "retry, or raise --statement-timeout."
                ) from None
            except asyncpg.DiskFullError:
                raise StoreUnavailable(
                    "The database server is out of disk space, so nothing was written; free space and retry."
                ) from None
            except (asyncpg.InsufficientPrivilegeError, asyncpg.ReadOnlySQLTransactionError) as exc:
                raise StoreUnavailable(
                    f"The database refused the write ({exc.__class__.__name__}); check the --db user's "
                    "privileges and that it is not a read-only replica."
                ) from None
            except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
                logger.exception("PostgreSQL error")
                raise StoreUnavailable(
                    f"The database failed the call ({exc.__class__.__name__}); nothing was written. "
                    "Retry, and tell the server's operator if it persists."
                ) from None

    async def _once(self, body: "Callable[[Conn], Awaitable[T]]", write: bool) -> T:
        isolation = "read_committed" if write else "repeatable_read"
        async with self.pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            try:
                async with conn.transaction(isolation=isolation, readonly=not write):  # type: ignore[arg-type]
                    if self._statement_timeout_ms is not None:
                        await conn.execute(f"SET LOCAL statement_timeout = {int(self._statement_timeout_ms)}")
                    return await body(conn)
            except asyncpg.InterfaceError as exc:
                # "connection is closed", "the underlying connection is closed": the server went away
                # under the call (the proxy can no longer be asked, so its message is what tells)
                if "closed" in str(exc):
                    raise _ConnectionLost from None
                raise

    async def close(self) -> None:
        """Close the pool gracefully, or drop its connections if that fails or takes over CLOSE_TIMEOUT_S."""
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await self.pool.close()
        except (StoreError, *_LOST, asyncpg.PostgresError, asyncpg.InterfaceError):
            self.pool.terminate()
