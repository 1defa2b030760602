"""Replicas on one PostgreSQL database, over real HTTP on 127.0.0.1, on a cluster of this module's own
(it is crashed on purpose): concurrent writers through two server processes lose nothing and keep
every state merge; a run retried on both replicas at once is stored once; PostgreSQL crashing in a
write storm loses no acknowledged run, leaves no half run, and the server serves again once it is back.
"""

import json
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
import pytest

from mcp_server_sessions.store import NewRun, SessionNotFound
from mcp_server_sessions.store.postgres import PostgresStore
from tests.http_server import MCP_HEADERS, HttpServer, add_token, answer, bearer, start_http_server, tool_call
from tests.postgres_cluster import Cluster, start_cluster

pytestmark = pytest.mark.anyio

WRITERS = 4
TIMEOUT = 120
ERRORS_WHILE_DOWN = {
    "The PostgreSQL database cannot be reached right now (it may be restarting); retry in a moment, and tell "
    "the server's operator if it persists.",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    yield from start_cluster()


@dataclass
class Writer:
    """One client recording runs with its own run ids, and what the servers answered it."""

    number: int
    token: str
    acknowledged: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sent: int = 0

    def run_call(self, run_id: str) -> dict[str, Any]:
        return tool_call(
            self.sent,
            "record_run",
            session_id=f"writer-{self.number}",
            run_id=run_id,
            input=f"question {run_id}",
            output=f"answer {run_id}",
            tool_calls=[{"tool_name": "lookup", "arguments": {"run": run_id}, "result": "found"}],
        )

    async def call(self, http: httpx.AsyncClient, server: HttpServer, body: dict[str, Any]) -> dict[str, Any]:
        """The tool result of one POST; every request gets an answer, never an HTTP error."""
        response = await http.post(server.mcp_url, json=body, headers={**MCP_HEADERS, **bearer(self.token)})
        return answer(response, body["id"])["result"]  # type: ignore[no-any-return]

    async def record(self, http: httpx.AsyncClient, server: HttpServer) -> None:
        self.sent += 1
        run_id = f"w{self.number}-{self.sent}"
        result = await self.call(http, server, self.run_call(run_id))
        if result.get("isError"):
            self.errors.append(result["content"][0]["text"])
        else:
            self.acknowledged.append(run_id)


async def stored_runs(url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(
            "SELECT r.run_id, r.status, s.session_id, s.run_count, "
            "(SELECT count(*) FROM messages m WHERE m.run_pk = r.pk) AS messages, "
            "(SELECT count(*) FROM tool_calls t WHERE t.run_pk = r.pk) AS tool_calls, "
            "(SELECT count(*) FROM runs o WHERE o.session_pk = s.pk) AS session_runs "
            "FROM runs r JOIN sessions s ON s.pk = r.session_pk"
        )
    finally:
        await conn.close()


def assert_whole_and_once(rows: list[asyncpg.Record], acknowledged: list[str]) -> None:
    run_ids = [row["run_id"] for row in rows]
    assert len(run_ids) == len(set(run_ids)), "a run was stored twice"
    missing = set(acknowledged) - set(run_ids)
    assert not missing, f"acknowledged runs lost: {sorted(missing)[:10]}"
    half = [row["run_id"] for row in rows if (row["messages"], row["tool_calls"], row["status"]) != (3, 1, "completed")]
    assert not half, f"runs stored in part: {half[:10]}"
    assert all(row["run_count"] == row["session_runs"] for row in rows), "a session's run_count disagrees"


async def until(condition: Any, what: str, timeout: float = TIMEOUT) -> None:
    """Bounded polling for a condition the writers make true."""
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.05)


async def test_postgres_crashing_in_a_write_storm_loses_no_acknowledged_run(tmp_path: Path, cluster: Cluster) -> None:
    url = await cluster.create_database("storm")
    tokens = tmp_path / "tokens"
    writers = [Writer(number, add_token(tokens, f"user-{number}")) for number in range(WRITERS)]
    server = start_http_server(tmp_path, url, "--tokens", str(tokens), "--pool-max", "4")
    stop = anyio.Event()

    async def storm(writer: Writer) -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            while not stop.is_set():
                await writer.record(http, server)

    try:
        async with anyio.create_task_group() as group:
            for writer in writers:
                group.start_soon(storm, writer)
            await until(lambda: all(len(w.acknowledged) >= 5 for w in writers), "runs before the crash")
            await anyio.to_thread.run_sync(lambda: cluster.stop("immediate"))  # a crash: no checkpoint, no goodbye
            before = [len(w.acknowledged) for w in writers]
            await until(lambda: all(w.errors for w in writers), "every writer told the database is down")
            await anyio.to_thread.run_sync(cluster.start)
            await until(
                lambda: all(len(w.acknowledged) >= b + 5 for w, b in zip(writers, before, strict=True)),
                "runs after the restart",
            )
            stop.set()
        assert server.process.poll() is None, "the server process died"
    finally:
        server.stop(signal.SIGTERM)
    errors = {error for w in writers for error in w.errors}
    assert errors <= ERRORS_WHILE_DOWN, errors
    acknowledged = [run_id for w in writers for run_id in w.acknowledged]
    assert_whole_and_once(await stored_runs(url), acknowledged)


async def test_two_replicas_lose_no_run_and_keep_every_state_merge(tmp_path: Path, cluster: Cluster) -> None:
    url = await cluster.create_database("replicas")
    tokens = tmp_path / "tokens"
    token = add_token(tokens, "team")
    writers = [Writer(number, token) for number in range(8)]
    replicas = [start_http_server(tmp_path, url, "--tokens", str(tokens)) for _ in range(2)]
    merges: list[dict[str, Any]] = []
    retries: list[tuple[dict[str, Any], dict[str, Any]]] = []

    async def work(writer: Writer) -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            for turn in range(12):
                replica = replicas[(writer.number + turn) % 2]
                await writer.record(http, replica)
                writer.sent += 1
                merge = tool_call(
                    writer.sent, "update_session", session_id="shared", state={f"w{writer.number}-{turn}": turn}
                )
                merges.append(await writer.call(http, replica, merge))

    async def retry_on_both(number: int) -> None:
        """One client's record_run retried on the other replica while the first is still answering."""
        writer = Writer(100 + number, token)
        body = writer.run_call(f"retried-{number}")
        answers: list[dict[str, Any]] = []
        async with httpx.AsyncClient(timeout=60) as http:

            async def send(replica: HttpServer) -> None:
                answers.append(await writer.call(http, replica, body))

            async with anyio.create_task_group() as group:
                for replica in replicas:
                    group.start_soon(send, replica)
        retries.append((answers[0], answers[1]))

    try:
        async with httpx.AsyncClient(timeout=60) as http:
            started = tool_call(1, "start_session", session_id="shared")
            assert not (await writers[0].call(http, replicas[0], started)).get("isError")
        with anyio.fail_after(TIMEOUT):
            async with anyio.create_task_group() as group:
                for writer in writers:
                    group.start_soon(work, writer)
                for number in range(10):
                    group.start_soon(retry_on_both, number)
    finally:
        for replica in replicas:
            replica.stop(signal.SIGTERM)
    assert [error for w in writers for error in w.errors] == []
    assert not [m for m in merges if m.get("isError")]
    for first, second in retries:
        assert not first.get("isError") and not second.get("isError"), (first, second)
        assert first["structuredContent"] == second["structuredContent"]  # the same run, stored once
    rows = await stored_runs(url)
    acknowledged = [run_id for w in writers for run_id in w.acknowledged] + [f"retried-{n}" for n in range(10)]
    assert sorted(row["run_id"] for row in rows) == sorted(acknowledged)
    assert_whole_and_once(rows, acknowledged)
    conn = await asyncpg.connect(url)
    try:
        state = json.loads(await conn.fetchval("SELECT state FROM sessions WHERE session_id = 'shared'"))
    finally:
        await conn.close()
    assert state == {f"w{n}-{turn}": turn for n in range(8) for turn in range(12)}


async def waiting_on_a_lock(url: str) -> None:
    """Bounded polling until some statement of the database waits for a row lock."""
    conn = await asyncpg.connect(url)
    try:
        with anyio.fail_after(30):
            while not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"):
                await anyio.sleep(0.02)
    finally:
        await conn.close()


async def test_a_write_racing_a_delete_on_another_replica_sees_the_session_gone(cluster: Cluster) -> None:
    url = await cluster.create_database("racing")
    store = await PostgresStore.open(url)
    other_replica = await asyncpg.connect(url)
    try:
        alice = store.for_user("alice")
        for session_id in ("updated", "recorded"):
            await alice.start_session(session_id)
        for session_id, write in [
            ("updated", lambda: alice.update_session("updated", state={"k": 1})),
            ("recorded", lambda: alice.append_run("recorded", NewRun.recorded("q", "a", run_id="r1"))),
        ]:
            deleting = other_replica.transaction()
            await deleting.start()
            await other_replica.execute("DELETE FROM sessions WHERE session_id = $1", session_id)
            async with anyio.create_task_group() as group:
                outcome: list[object] = []

                async def attempt(write: Any = write, outcome: list[object] = outcome) -> None:
                    try:
                        outcome.append(await write())
                    except SessionNotFound as exc:
                        outcome.append(exc)

                group.start_soon(attempt)
                await waiting_on_a_lock(url)  # the write holds off until the delete is decided
                await deleting.commit()
            [result] = outcome
            if session_id == "updated":
                assert isinstance(result, SessionNotFound), result  # not an assertion or a driver error
            else:  # a recorded run starts its session again, as on SQLite
                run, stored = result  # type: ignore[misc]
                assert stored and run.run_id == "r1"
                assert (await alice.get_session("recorded")).run_count == 1
    finally:
        await other_replica.close()
        await store.close()
