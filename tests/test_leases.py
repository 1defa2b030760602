"""Run leases: a `running` run holds a lease its server renews while the run goes on, and any server on
the store marks a run whose lease expired `error`, even when its owner process is still alive."""

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from mcp_server_sessions.server.app import build_server
from mcp_server_sessions.server.settings import Settings
from mcp_server_sessions.store import NewRun, SqliteStore
from mcp_server_sessions.store.limits import RUN_LEASE_S
from mcp_server_sessions.store.sqlite_schema import MIGRATIONS, migrate
from tests.anthropic_double import MessagesDouble, text
from tests.conftest import open_test_store
from tests.helpers import call_ok

pytestmark = pytest.mark.anyio

INTERRUPTED = "The server stopped before this run finished."
POLL_S = 10  # the most any bounded poll below waits


def moment(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def run_row(db: Path, run_id: str) -> tuple[str, str | None, str | None]:
    """(status, error, lease_expires_at) of the run, read beside the store."""
    with closing(sqlite3.connect(db)) as conn:
        row = conn.execute("SELECT status, error, lease_expires_at FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    assert row is not None, run_id
    status, error, lease = row
    return status, error, lease


def lease_of(db: Path, run_id: str) -> str:
    lease = run_row(db, run_id)[2]
    assert lease is not None, f"run {run_id} holds no lease"
    return lease


def only_run_id(db: Path) -> str:
    with closing(sqlite3.connect(db)) as conn:
        [(run_id,)] = conn.execute("SELECT run_id FROM runs").fetchall()
    return str(run_id)


def finished(run_id: str) -> NewRun:
    return NewRun.recorded("question", "answer", [], run_id=run_id)


@asynccontextmanager
async def opened(db: Path, **options: Any) -> AsyncIterator[SqliteStore]:
    store = await SqliteStore.open(db, **options)
    try:
        yield store
    finally:
        await store.close()


async def until_past(deadline: datetime) -> None:
    """Wait (bounded) until the clock has passed `deadline`."""
    with anyio.fail_after(POLL_S):
        while datetime.now(UTC) <= deadline:
            await anyio.sleep(0.01)


# -- the store ---------------------------------------------------------------------------------


async def test_an_expired_lease_is_recovered_by_another_store_though_its_owner_lives(db_path: Path) -> None:
    async with opened(db_path, lease_s=0.2) as short, opened(db_path) as long:
        await short.for_user("alice").start_session("s1")
        begun = await short.for_user("alice").begin_run("s1", "r-expiring", "question")
        await long.for_user("alice").begin_run("s1", "r-live", "question")
        status, _, lease = run_row(db_path, "r-expiring")
        assert status == "running" and lease is not None
        assert (moment(lease) - moment(begun.created_at)).total_seconds() == pytest.approx(0.2, abs=0.05)
        live_lease = run_row(db_path, "r-live")[2]
        assert live_lease is not None and moment(live_lease) > datetime.now(UTC) + timedelta(seconds=RUN_LEASE_S / 2)
        await until_past(moment(lease))

        async with opened(db_path) as neighbour:  # its open recovers too, so count the call itself on a fresh run
            assert run_row(db_path, "r-expiring") == ("error", INTERRUPTED, None)
            assert run_row(db_path, "r-live")[:2] == ("running", None)
            await short.for_user("alice").begin_run("s1", "r-expiring-2", "question")
            await until_past(moment(lease_of(db_path, "r-expiring-2")))
            assert await neighbour.recover_interrupted_runs() == 1
            assert run_row(db_path, "r-expiring-2") == ("error", INTERRUPTED, None)
            assert run_row(db_path, "r-live")[:2] == ("running", None)  # a live lease, the same live owner

        alice = short.for_user("alice")
        assert not await alice.renew_lease("s1", "r-expiring")  # an error-marked run is not running any more
        # its server finishing it late gets the error run back; nothing of the late outcome is stored
        late, stored = await alice.append_run("s1", finished("r-expiring"), finishing=True)
        assert not stored and (late.status, late.error, late.content) == ("error", INTERRUPTED, None)
        assert (await alice.get_chat_history("s1")).messages == []
        done, stored = await long.for_user("alice").append_run("s1", finished("r-live"), finishing=True)
        assert stored and done.status == "completed"
        assert run_row(db_path, "r-live") == ("completed", None, None)  # a finished run holds no lease
        assert await long.recover_interrupted_runs() == 0


async def test_renew_lease_extends_only_this_users_running_run(db_path: Path) -> None:
    async with opened(db_path) as store:
        alice, bob = store.for_user("alice"), store.for_user("bob")
        await alice.start_session("s1")
        await bob.start_session("s1")  # bob's own s1 holds no run of alice's
        await alice.begin_run("s1", "r1", "question")
        before = lease_of(db_path, "r1")
        await until_past(moment(before) - timedelta(seconds=RUN_LEASE_S))  # the clock has moved since the lease
        asked = datetime.now(UTC)
        assert await alice.renew_lease("s1", "r1")
        after = run_row(db_path, "r1")[2]
        assert after is not None and after > before
        assert (
            asked + timedelta(seconds=RUN_LEASE_S)
            <= moment(after)
            <= datetime.now(UTC) + timedelta(seconds=RUN_LEASE_S)
        )

        assert not await bob.renew_lease("s1", "r1")
        assert not await store.for_user("carol").renew_lease("s1", "r1")  # a user the file does not have
        assert not await alice.renew_lease("s1", "no-such-run")
        assert not await alice.renew_lease("no-such-session", "r1")
        assert run_row(db_path, "r1") == ("running", None, after)  # none of those touched it

        await alice.append_run("s1", finished("r1"), finishing=True)
        assert run_row(db_path, "r1") == ("completed", None, None)
        assert not await alice.renew_lease("s1", "r1")
        assert run_row(db_path, "r1") == ("completed", None, None)


async def test_runs_running_before_the_lease_migration_get_no_lease(db_path: Path) -> None:
    with closing(sqlite3.connect(db_path, isolation_level=None)) as conn:  # a file of the previous version
        assert migrate(conn, tuple(m for m in MIGRATIONS if m.version < 5)) == 4
        conn.execute("INSERT INTO users (user_id) VALUES ('alice')")
        conn.execute(
            "INSERT INTO sessions (user_pk, session_id, created_at, updated_at) "
            "SELECT pk, 's1', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z' FROM users WHERE user_id = 'alice'"
        )
        conn.execute(  # a run of a server on another machine, still going
            "INSERT INTO runs (session_pk, run_id, status, input, owner, created_at) "
            "SELECT pk, 'r-remote', 'running', 'x', 'some-other-host.example:4242:123', '2026-01-01T00:00:00Z' "
            "FROM sessions WHERE session_id = 's1'"
        )
    async with opened(db_path) as store:  # migrates, then recovers: a run with no lease is left to its owner
        assert run_row(db_path, "r-remote") == ("running", None, None)
        assert await store.recover_interrupted_runs() == 0
        assert store.lease_s == RUN_LEASE_S
        assert await store.for_user("alice").renew_lease("s1", "r-remote")  # its server, upgraded, renews it
        assert run_row(db_path, "r-remote")[2] is not None


# -- the server --------------------------------------------------------------------------------


def agent_settings(db: Path) -> Settings:
    return Settings(db=str(db), user="alice", model="claude-test", model_timeout_s=30.0, model_max_retries=0)


async def test_a_run_renews_its_lease_while_the_model_answers(db_path: Path, double: MessagesDouble) -> None:
    held = text("slow answer", hold=True)
    double.script(held)
    answer: dict[str, Any] = {}
    store = await SqliteStore.open(db_path, lease_s=0.6)  # renewed every 0.2 s; the server closes it
    async with Client(build_server(agent_settings(db_path), store)) as client, anyio.create_task_group() as tasks:

        async def run() -> None:
            answer.update(await call_ok(client, "run", message="hi", session_id="s1"))

        tasks.start_soon(run)
        with anyio.fail_after(POLL_S):
            await double.await_requests(1)
        run_id = only_run_id(db_path)
        status, _, first = run_row(db_path, run_id)
        assert status == "running" and first is not None
        with anyio.fail_after(POLL_S):
            while (lease := run_row(db_path, run_id)[2]) == first:
                await anyio.sleep(0.02)
        assert lease is not None and lease > first
        with anyio.fail_after(POLL_S):  # and again: renewals go on, and the server's recovery leaves the run alone
            while (again := run_row(db_path, run_id))[2] == lease:
                await anyio.sleep(0.02)
        assert again[0] == "running"
        held.release()
    assert (answer["status"], answer["content"], answer["run_id"]) == ("completed", "slow answer", run_id)
    assert run_row(db_path, run_id) == ("completed", None, None)


async def test_a_run_marked_error_while_it_goes_on_keeps_that_outcome(
    db_path: Path, double: MessagesDouble, caplog: pytest.LogCaptureFixture
) -> None:
    held = text("too late", hold=True)
    double.script(held)
    answer: dict[str, Any] = {}
    store = await SqliteStore.open(db_path, lease_s=0.6)
    with caplog.at_level(logging.WARNING, logger="mcp_server_sessions.server.agent.turn"):
        async with Client(build_server(agent_settings(db_path), store)) as client, anyio.create_task_group() as tasks:

            async def run() -> None:
                answer.update(await call_ok(client, "run", message="hi", session_id="s1"))

            tasks.start_soon(run)
            with anyio.fail_after(POLL_S):
                await double.await_requests(1)
            run_id = only_run_id(db_path)
            with closing(sqlite3.connect(db_path)) as conn, conn:  # as another replica marks an expired run
                conn.execute(
                    "UPDATE runs SET status = 'error', error = ?, lease_expires_at = NULL WHERE run_id = ?",
                    (INTERRUPTED, run_id),
                )
            with anyio.fail_after(POLL_S):  # the next renewal finds the run no longer running
                while not any("no longer running" in r.getMessage() for r in caplog.records):
                    await anyio.sleep(0.02)
            held.release()
    assert (answer["status"], answer["error"], answer["content"]) == ("error", INTERRUPTED, None)
    assert run_row(db_path, run_id) == ("error", INTERRUPTED, None)
    assert any("its outcome was not stored" in r.getMessage() for r in caplog.records)


async def test_the_server_recovers_expired_runs_without_a_restart(db_path: Path) -> None:
    store = await SqliteStore.open(db_path, lease_s=0.3)  # the server checks every 0.3 s; it closes the store
    async with Client(build_server(Settings(db=str(db_path), user="alice"), store)) as client:
        await call_ok(client, "start_session", session_id="s1")
        async with opened(db_path, lease_s=0.3) as other:  # a replica that begins a run and stops renewing
            await other.for_user("alice").begin_run("s1", "r-abandoned", "question")
            assert run_row(db_path, "r-abandoned")[0] == "running"
            with anyio.fail_after(POLL_S):
                while run_row(db_path, "r-abandoned")[0] == "running":
                    await anyio.sleep(0.02)
        assert run_row(db_path, "r-abandoned") == ("error", INTERRUPTED, None)
        session = await call_ok(client, "get_session", session_id="s1")
        assert session["run_count"] == 1


# -- on every backend: replicas on one store (PostgreSQL's leases run on the database's clock) ----


async def test_on_every_backend_another_replica_marks_a_run_whose_lease_expired(sessions_db: str) -> None:
    short, long = await open_test_store(sessions_db, lease_s=0.3), await open_test_store(sessions_db, lease_s=60)
    try:
        alice = short.for_user("alice")
        await alice.start_session("s1")
        await alice.begin_run("s1", "held", "question")
        await long.for_user("alice").start_session("s2")
        await long.for_user("alice").begin_run("s2", "fresh", "question")
        assert await alice.renew_lease("s1", "held") is True
        assert await short.for_user("bob").renew_lease("s1", "held") is False  # another user's run
        assert await alice.renew_lease("s1", "no-such-run") is False
        with anyio.fail_after(POLL_S):  # the lease lapses 0.3 s after its last renewal
            while await long.recover_interrupted_runs() == 0:
                await anyio.sleep(0.05)
        late, stored = await alice.append_run("s1", finished("held"), finishing=True)
        assert (late.status, late.error, stored) == ("error", INTERRUPTED, False)  # the crash's outcome stays
        assert await alice.renew_lease("s1", "held") is False
        fresh, stored = await long.for_user("alice").append_run("s2", finished("fresh"), finishing=True)
        assert (fresh.status, stored) == ("completed", True)  # a live lease was left alone
    finally:
        await short.close()
        await long.close()
