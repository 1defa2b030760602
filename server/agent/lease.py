"""A running run's lease, renewed in the background while its turn goes on.

A run's row holds a lease (store `lease_s`) that its server extends every third of its length; a
server that stops renewing leaves a run any server marks `error` once the lease expires.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from mcp_server_sessions.store import StoreError, UserSessions

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lease_renewed(sessions: UserSessions, session_id: str, run_id: str, lease_s: float) -> AsyncIterator[None]:
    """The run's lease renewed in the background while the body runs, and no longer once it has
    ended, however it ends; the body's exception comes out as it is, not in an exception group."""
    failure: Exception | None = None
    async with anyio.create_task_group() as renewals:
        renewals.start_soon(_renew, sessions, session_id, run_id, lease_s)
        try:
            yield
        except Exception as exc:
            failure = exc
        finally:
            renewals.cancel_scope.cancel()
    if failure is not None:
        raise failure


async def _renew(sessions: UserSessions, session_id: str, run_id: str, lease_s: float) -> None:
    """Every third of the lease, extend it; a renewal that fails is logged and the run goes on
    (a run no longer `running` in the store is not renewed again)."""
    while True:
        await anyio.sleep(lease_s / 3)
        try:
            renewed = await sessions.renew_lease(session_id, run_id)
        except StoreError as problem:
            logger.warning("the lease of run %s was not renewed: %s", run_id, problem)
            continue
        if not renewed:
            logger.warning(
                "run %s is no longer running in the store (its lease expired and a server marked it error, "
                "or its session was deleted); it goes on, but its outcome will not replace that",
                run_id,
            )
            return
