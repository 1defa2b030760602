"""Running the HTTP server as an operator would: two replicas on one SQLite file, `run` with progress,
SIGTERM with a run in flight, the request body limit, Host/Origin checks, and a --db that cannot open.

Every server is the installed console script in a subprocess on 127.0.0.1, reached by the SDK's
streamable HTTP client or by plain httpx; the SQLite file is read back with sqlite3.
"""

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, MCPError
from mcp.types import CallToolResult

from tests.anthropic_double import MessagesDouble, text
from tests.helpers import call_error, call_ok
from tests.http_server import HttpServer, add_token, free_port, http_client, start_http_server
from tests.test_stdio import server_script

pytestmark = pytest.mark.anyio

CALL_TIMEOUT = 60  # every test's client work is bounded by this (a loaded 2-core machine is slow)
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'


def model_env(double: MessagesDouble) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": double.base_url}


def run_rows(db: Path, where: str = "1", *args: Any) -> list[tuple[Any, ...]]:
    """(session_id, run_id, status, error, content) of the runs matching `where`, oldest first."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return conn.execute(
            "SELECT s.session_id, r.run_id, r.status, r.error, r.content FROM runs r "
            f"JOIN sessions s ON s.pk = r.session_pk WHERE {where} ORDER BY r.pk",
            args,
        ).fetchall()


def sse_result(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a one-event SSE answer (or of a JSON answer)."""
    if response.headers["content-type"].startswith("application/json"):
        message: dict[str, Any] = response.json()
        return message
    data = [line[len("data:") :].strip() for line in response.text.splitlines() if line.startswith("data:")]
    assert len(data) == 1, response.text
    parsed: dict[str, Any] = json.loads(data[0])
    return parsed


async def accepts_connections(server: HttpServer) -> bool:
    """Whether a new connection to the server is accepted, or refused.

    A shutting-down server may still accept a connection and then drop it unanswered: that counts
    as accepted (the listening socket was open), so pollers keep waiting for the refusal.
    """
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            await http.get(f"{server.base_url}/healthz")
    except httpx.ConnectError:
        return False
    except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
        pass  # accepted, then dropped unanswered by a server that is closing
    return True


async def until_refused(server: HttpServer, timeout: float = 15.0) -> None:
    """Bounded polling until the server's listening socket is closed."""
    with anyio.fail_after(timeout):
        while await accepts_connections(server):
            await anyio.sleep(0.02)


async def exit_status(server: HttpServer, timeout: float) -> int:
    """The server's exit status, waited for at most `timeout` seconds (then the test fails)."""
    try:
        return await anyio.to_thread.run_sync(lambda: server.process.wait(timeout))
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the server was still running {timeout} s later:\n{server.stderr()}") from None


def start_together(tmp_path: Path, *servers: tuple[Path, list[str], dict[str, str]]) -> list[HttpServer]:
    """Servers started at once, each (db, flags, env); those on one file also race to create its schema."""
    with ThreadPoolExecutor(len(servers)) as pool:
        futures = [pool.submit(start_http_server, tmp_path, db, *flags, **env) for db, flags, env in servers]
        started, failures = [], []
        for future in futures:
            try:
                started.append(future.result())
            except Exception as exc:
                failures.append(exc)
    if failures:
        for server in started:
            server.stop()
        raise failures[0]
    return started


# -- module-wide: one token file, one model double, the servers most tests share ----------------


@dataclass
class Alice:
    tokens: Path
    token: str


@pytest.fixture(scope="module")
def alice(tmp_path_factory: pytest.TempPathFactory) -> Alice:
    """The token file every server of this module reads, holding alice's token (made by `tokens add`)."""
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    return Alice(tokens, add_token(tokens, "alice"))


@dataclass
class Replicas:
    a: HttpServer
    b: HttpServer
    db: Path
    double: MessagesDouble
    """The model both replicas call."""


@dataclass
class Configured:
    server: HttpServer
    db: Path


LIMIT = 100_000


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, alice: Alice) -> Iterator[tuple[Replicas, Configured]]:
    """Started at once (a 2-core machine): two replicas with default flags on one SQLite file and one
    token file, calling one model double; and a server configured with --max-body-bytes,
    --allowed-hosts and --allowed-origins on a file of its own."""
    tmp_path = tmp_path_factory.mktemp("fleet")
    shared, own = tmp_path / "shared.db", tmp_path / "configured.db"
    tokens = ["--tokens", str(alice.tokens)]
    flags = ["--max-body-bytes", str(LIMIT), "--allowed-hosts", "sessions.example:*"]
    flags += ["--allowed-origins", "https://app.example"]
    with MessagesDouble() as double:
        a, b, c = start_together(
            tmp_path,
            (shared, tokens, model_env(double)),
            (shared, tokens, model_env(double)),
            (own, tokens + flags, {}),
        )
        try:
            yield Replicas(a, b, shared, double), Configured(c, own)
        finally:
            for server in (a, b, c):
                server.stop()


@pytest.fixture
def replicas(fleet: tuple[Replicas, Configured]) -> Replicas:
    return fleet[0]


@pytest.fixture
def configured(fleet: tuple[Replicas, Configured]) -> Configured:
    return fleet[1]


@pytest.fixture
async def clients(replicas: Replicas, alice: Alice) -> AsyncIterator[tuple[Client, Client]]:
    """An SDK client on replica A and one on replica B, both with alice's token."""
    async with (
        http_client(replicas.a.mcp_url, alice.token) as on_a,
        http_client(replicas.b.mcp_url, alice.token) as on_b,
    ):
        yield on_a, on_b


async def test_a_client_alternating_between_two_replicas_sees_one_store(
    replicas: Replicas, clients: tuple[Client, Client]
) -> None:
    a, b = clients
    with anyio.fail_after(CALL_TIMEOUT):
        started = await call_ok(a, "start_session", session_id="trip", name="Fjords", state={"from": "a"})
        assert started["created"] is True
        run = await call_ok(b, "record_run", session_id="trip", run_id="r1", input="Where?", output="Bergen.")
        assert run["status"] == "completed"
        history = await call_ok(a, "get_chat_history", session_id="trip")
        assert [(m["run_id"], m["role"], m["content"]) for m in history["messages"]] == [
            ("r1", "user", "Where?"),
            ("r1", "assistant", "Bergen."),
        ]
        await call_ok(b, "update_session", session_id="trip", state={"to": "b"}, merge_state=True)
        session = await call_ok(a, "get_session", session_id="trip")
        assert (session["name"], session["state"], session["run_count"]) == ("Fjords", {"from": "a", "to": "b"}, 1)

        for k in range(5):  # more sessions, each started on the other replica than the one before
            await call_ok((a, b)[k % 2], "start_session", session_id=f"more-{k}")
        ours = ["trip", *(f"more-{k}" for k in range(5))]
        on_a, on_b = await call_ok(a, "list_sessions", limit=200), await call_ok(b, "list_sessions", limit=200)
        assert on_a["total"] == on_b["total"] == len(on_a["sessions"]) >= len(ours)
        assert [s["session_id"] for s in on_a["sessions"]] == [s["session_id"] for s in on_b["sessions"]]
        total = on_a["total"]  # other tests of this module share alice and the file

        # a cursor handed out by A pages on B, and B's on A: every session once, ours last (the newest)
        seen: list[str] = []
        page = await call_ok(a, "list_sessions", limit=2, sort_by="created_at", order="asc")
        seen += [s["session_id"] for s in page["sessions"]]
        pages = 1
        while page["next_cursor"] is not None:
            replica = (a, b)[pages % 2]
            page = await call_ok(
                replica, "list_sessions", limit=2, sort_by="created_at", order="asc", cursor=page["next_cursor"]
            )
            assert page["total"] == total
            seen += [s["session_id"] for s in page["sessions"]]
            pages += 1
        assert len(seen) == len(set(seen)) == total and seen[-len(ours) :] == ours
        assert pages == -(-total // 2) >= 3

        deleted = await call_ok(a, "delete_session", session_id="trip")
        assert deleted == {"session_id": "trip", "deleted": True}
        gone = await call_error(b, "get_session", session_id="trip")
        never = await call_error(b, "get_session", session_id="never-was")
        assert gone == never.replace("never-was", "trip")  # reported exactly like a session that never existed
        assert (await call_ok(b, "list_sessions"))["total"] == (await call_ok(a, "list_sessions"))["total"] == total - 1
    assert run_rows(replicas.db, "s.session_id = ?", "trip") == []


async def test_one_run_id_sent_to_both_replicas_at_once_is_stored_once(
    replicas: Replicas, clients: tuple[Client, Client]
) -> None:
    a, b = clients
    retries, sends_per_replica = 4, 2
    answers: dict[str, list[CallToolResult]] = {f"dup-{j}": [] for j in range(retries)}

    async def send(client: Client, run_id: str) -> None:
        arguments = {"session_id": "contended", "run_id": run_id, "input": f"question {run_id}", "output": "answer"}
        answers[run_id].append(await client.call_tool("record_run", arguments))

    with anyio.fail_after(CALL_TIMEOUT):
        for run_id in answers:  # each run_id: both replicas, twice each, all at once
            async with anyio.create_task_group() as group:
                for _ in range(sends_per_replica):
                    group.start_soon(send, a, run_id)
                    group.start_soon(send, b, run_id)
        session = await call_ok(b, "get_session", session_id="contended")
    for run_id, results in answers.items():
        assert len(results) == 2 * sends_per_replica
        assert [r.is_error for r in results] == [False] * len(results), [r.content for r in results]
        stored = [r.structured_content for r in results]
        assert all(s == stored[0] for s in stored), f"{run_id}: the replicas answered different runs: {stored}"
        assert stored[0] is not None and stored[0]["run_id"] == run_id
    assert session["run_count"] == retries
    rows = run_rows(replicas.db, "s.session_id = ?", "contended")
    assert sorted(run_id for _, run_id, *_ in rows) == sorted(answers)
    with closing(sqlite3.connect(f"file:{replicas.db}?mode=ro", uri=True)) as conn:
        messages = conn.execute(
            "SELECT count(*) FROM messages m JOIN sessions s ON s.pk = m.session_pk WHERE s.session_id = 'contended'"
        ).fetchone()[0]
    assert messages == 2 * retries


async def test_many_concurrent_record_runs_over_both_replicas_are_each_stored_once(
    replicas: Replicas, clients: tuple[Client, Client]
) -> None:
    a, b = clients
    total, workers = 60, 6
    work = iter(range(total))
    acknowledged: set[tuple[str, str]] = set()
    errors: list[str] = []

    async def worker(first: int) -> None:
        for n, k in enumerate(work):
            session_id, run_id = f"storm-{k % 3}", f"run-{k}"
            result = await (a, b)[(first + n) % 2].call_tool(
                "record_run", {"session_id": session_id, "run_id": run_id, "input": f"q{k}", "output": f"a{k}"}
            )
            if result.is_error:
                errors.append(f"{run_id}: {result.content}")
            else:
                acknowledged.add((session_id, run_id))

    with anyio.fail_after(CALL_TIMEOUT):
        async with anyio.create_task_group() as group:
            for w in range(workers):
                group.start_soon(worker, w)
        counts = [
            [(await call_ok(client, "get_session", session_id=f"storm-{i}"))["run_count"] for i in range(3)]
            for client in (a, b)
        ]
    assert errors == []
    assert len(acknowledged) == total
    stored = [(session_id, run_id) for session_id, run_id, status, *_ in run_rows(replicas.db) if status == "completed"]
    storm = [pair for pair in stored if pair[0].startswith("storm-")]
    assert len(storm) == len(set(storm)) and set(storm) == acknowledged
    assert counts == [[total // 3] * 3] * 2


# -- `run` with progress over HTTP ---------------------------------------------------------------


async def test_run_over_http_reports_progress_while_the_text_arrives(
    replicas: Replicas, clients: tuple[Client, Client]
) -> None:
    a, b = clients
    double, answer = replicas.double, "Paddle north from Bergen, then camp by the fjord."
    double.script(text(answer, chunk_delay=0.3))  # three text deltas, 0.3 s apart
    finished_before = len(double.request_seconds)
    progress: list[tuple[float, float | None, str | None, int]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        # and how many replies the double had finished writing by then
        progress.append((value, total, message, len(double.request_seconds) - finished_before))

    with anyio.fail_after(CALL_TIMEOUT):
        result = await b.call_tool(
            "run", {"message": "Plan a kayak day", "session_id": "kayak-day"}, progress_callback=on_progress
        )
        history = await call_ok(a, "get_chat_history", session_id="kayak-day")
    assert not result.is_error, result.content
    assert result.content[0].type == "text" and result.content[0].text == answer
    assert result.structured_content is not None
    run_id = result.structured_content["run_id"]
    assert (result.structured_content["status"], result.structured_content["content"]) == ("completed", answer)
    assert len(progress) >= 2, progress
    assert "".join(message or "" for _, _, message, _ in progress) == answer
    values = [value for value, *_ in progress]
    assert values == sorted(set(values)) and values[-1] == len(answer)
    assert progress[0][3] == 0, "the first progress notification came only after the model's whole reply"
    assert [m["content"] for m in history["messages"]] == ["Plan a kayak day", answer]
    assert run_rows(replicas.db, "s.session_id = ?", "kayak-day") == [("kayak-day", run_id, "completed", None, answer)]


# -- SIGTERM ------------------------------------------------------------------------------------


async def test_sigterm_finishes_the_run_in_flight_then_exits_0(
    tmp_path: Path, double: MessagesDouble, alice: Alice
) -> None:
    db = tmp_path / "s.db"
    held = text("Answered after SIGTERM.", hold=True)
    double.script(held)
    answers: list[CallToolResult] = []
    server = start_http_server(tmp_path, db, "--tokens", str(alice.tokens), **model_env(double))
    try:
        with anyio.fail_after(CALL_TIMEOUT):
            async with http_client(server.mcp_url, alice.token) as client:
                await client.list_tools()  # the output schemas, so checking the answer needs no new connection

                async def call() -> None:
                    answers.append(await client.call_tool("run", {"message": "still there?", "session_id": "s1"}))

                async with anyio.create_task_group() as group:
                    group.start_soon(call)
                    await double.await_requests(1, timeout=30)
                    assert [row[2] for row in run_rows(db)] == ["running"]
                    server.process.send_signal(signal.SIGTERM)
                    await until_refused(server)  # shutting down: no new connection...
                    assert server.process.poll() is None  # ...while the run in flight goes on
                    held.release()
            status = await exit_status(server, 30)
    finally:
        server.stop()
    assert len(answers) == 1 and not answers[0].is_error, answers
    assert answers[0].structured_content is not None
    assert answers[0].structured_content["status"] == "completed"
    assert answers[0].structured_content["content"] == "Answered after SIGTERM."
    assert [(row[2], row[4]) for row in run_rows(db)] == [("completed", "Answered after SIGTERM.")]
    assert not await accepts_connections(server)
    assert status == 0, f"exit status {status} after a graceful SIGTERM:\n{server.stderr()}"


async def test_sigterm_past_the_shutdown_timeout_stores_the_run_cancelled_not_running(
    tmp_path: Path, double: MessagesDouble, alice: Alice
) -> None:
    db = tmp_path / "s.db"
    held = text("Too late.", hold=True)  # released only after the server has exited
    double.script(held)
    outcome: list[CallToolResult | MCPError] = []
    server = start_http_server(
        tmp_path, db, "--tokens", str(alice.tokens), "--shutdown-timeout", "1", **model_env(double)
    )
    try:
        with anyio.fail_after(CALL_TIMEOUT):
            async with http_client(server.mcp_url, alice.token) as client:
                await client.list_tools()

                async def call() -> None:
                    try:
                        outcome.append(await client.call_tool("run", {"message": "slow one", "session_id": "s1"}))
                    except MCPError as exc:  # the server went away before answering
                        outcome.append(exc)

                async with anyio.create_task_group() as group:
                    group.start_soon(call)
                    await double.await_requests(1, timeout=30)
                    sent = time.monotonic()
                    server.process.send_signal(signal.SIGTERM)
                    await until_refused(server)
                    await exit_status(server, 20)
                    took = time.monotonic() - sent
                    held.release()
    finally:
        server.stop()
    assert took < 15, f"the server took {took:.1f} s to give up a 1 s shutdown timeout"
    assert not await accepts_connections(server)
    rows = run_rows(db)
    assert len(rows) == 1 and rows[0][2] in ("cancelled", "completed"), rows
    assert len(outcome) == 1
    if rows[0][2] == "cancelled":  # then the client was not told the run completed
        answer = outcome[0]
        assert isinstance(answer, MCPError) or answer.is_error, answer
    else:
        assert isinstance(outcome[0], CallToolResult) and not outcome[0].is_error


# -- the default server (replica A): default body limit, Host and Origin checks -------------------


async def post_ping(server: HttpServer, token: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30.0) as http:
        return await http.post(
            server.mcp_url, content=PING, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}", **headers}
        )


async def test_the_default_body_limit_takes_a_900_kb_record_run(replicas: Replicas, alice: Alice) -> None:
    big = "kayak " * 150_000  # 900,000 bytes
    with anyio.fail_after(CALL_TIMEOUT):
        async with http_client(replicas.a.mcp_url, alice.token) as client:
            run = await call_ok(client, "record_run", session_id="big", run_id="big-1", input=big, output="noted")
            history = await call_ok(client, "get_chat_history", session_id="big")
    assert run["status"] == "completed"
    assert [m["content"] for m in history["messages"]] == [big, "noted"]


async def test_a_loopback_server_refuses_foreign_hosts_and_origins(replicas: Replicas, alice: Alice) -> None:
    server, token, port = replicas.a, alice.token, replicas.a.port
    with anyio.fail_after(CALL_TIMEOUT):
        foreign_host = await post_ping(server, token, Host="evil.example")
        foreign_origin = await post_ping(server, token, Origin="http://evil.example")
        rebound = await post_ping(server, token, Host=f"evil.example:{port}", Origin=f"http://evil.example:{port}")
        local = [
            await post_ping(server, token, Origin=f"http://localhost:{port}"),
            await post_ping(server, token, Origin=f"http://127.0.0.1:{port}"),
            await post_ping(server, token, Host=f"localhost:{port}", Origin=f"http://localhost:{port}"),
        ]
        async with httpx.AsyncClient(timeout=30.0) as http:
            health = await http.get(f"{server.base_url}/healthz")
    assert foreign_host.status_code == 421, foreign_host.text
    assert foreign_origin.status_code == 403, foreign_origin.text
    assert rebound.status_code == 421, rebound.text
    for response in local:
        assert response.status_code == 200, response.text
        assert sse_result(response) == {"jsonrpc": "2.0", "id": 1, "result": {}}
    assert (health.status_code, health.json()) == (200, {"status": "ok"})


# -- a configured server: --max-body-bytes, --allowed-hosts, --allowed-origins -----------------------


def record_run_body(size: int, session_id: str) -> bytes:
    """A JSON-RPC `tools/call record_run` request of exactly `size` bytes."""

    def body(padding: int) -> bytes:
        arguments = {"session_id": session_id, "input": "x" * padding, "output": "ok"}
        call = {"name": "record_run", "arguments": arguments}
        return json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": call}).encode()

    made = body(size - len(body(0)))
    assert len(made) == size
    return made


async def chunks(data: bytes, size: int = 16_384) -> AsyncIterator[bytes]:
    """The body as a stream: httpx sends it chunked, with no Content-Length."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_a_body_over_max_body_bytes_gets_413_with_or_without_content_length(
    configured: Configured, alice: Alice
) -> None:
    server = configured.server
    with anyio.fail_after(CALL_TIMEOUT):
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {alice.token}"}
        async with httpx.AsyncClient(headers=headers, timeout=30.0) as http:
            sized = await http.post(server.mcp_url, content=record_run_body(LIMIT + 1, "too-big"))
            streamed = await http.post(server.mcp_url, content=chunks(record_run_body(4 * LIMIT, "too-big")))
            at_limit = await http.post(server.mcp_url, content=record_run_body(LIMIT, "at-limit"))
        async with http_client(server.mcp_url, alice.token) as client:  # and it goes on serving
            await call_ok(client, "record_run", session_id="after", input="still serving?", output="yes")
            missing = await call_error(client, "get_session", session_id="too-big")
            kept = await call_ok(client, "get_session", session_id="at-limit")
    assert "content-length" not in streamed.request.headers
    assert streamed.request.headers["transfer-encoding"] == "chunked"
    assert sized.status_code == 413, sized.text
    assert streamed.status_code == 413, streamed.text
    assert at_limit.status_code == 200, at_limit.text
    assert sse_result(at_limit)["result"]["isError"] is False
    assert "too-big" in missing and kept["run_count"] == 1
    assert [session_id for session_id, *_ in run_rows(configured.db)] == ["at-limit", "after"]


async def test_allowed_hosts_and_origins_are_configurable(configured: Configured, alice: Alice) -> None:
    server, token, port = configured.server, alice.token, configured.server.port
    with anyio.fail_after(CALL_TIMEOUT):
        named_host = await post_ping(server, token, Host=f"sessions.example:{port}")
        named_origin = await post_ping(server, token, Origin="https://app.example")
        both = await post_ping(server, token, Host=f"sessions.example:{port}", Origin="https://app.example")
        foreign_host = await post_ping(server, token, Host=f"evil.example:{port}")
        other_scheme = await post_ping(server, token, Origin="http://app.example")
        foreign_origin = await post_ping(server, token, Host=f"sessions.example:{port}", Origin="https://evil.example")
        async with httpx.AsyncClient(timeout=30.0) as http:
            health = await http.get(f"{server.base_url}/healthz", headers={"Host": f"sessions.example:{port}"})
        async with http_client(server.mcp_url, token) as client:  # the SDK client on 127.0.0.1 still works
            listed = await call_ok(client, "list_sessions")
    for response in (named_host, named_origin, both):
        assert response.status_code == 200, response.text
        assert sse_result(response) == {"jsonrpc": "2.0", "id": 1, "result": {}}
    assert foreign_host.status_code == 421, foreign_host.text
    assert other_scheme.status_code == 403, other_scheme.text
    assert foreign_origin.status_code == 403, foreign_origin.text
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert listed["total"] >= 0


# -- a --db that cannot be opened ----------------------------------------------------------------


def test_a_db_that_cannot_be_created_stops_http_and_stdio_with_one_sentence(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    db = blocker / "sub" / "sessions.db"
    home = tmp_path / "home"
    home.mkdir()
    commands = {
        "http": [server_script(), "serve", "--transport", "http", "--port", str(free_port()), "--allow-anonymous"],
        "stdio": [server_script()],
    }
    processes = {  # both at once: each spends its time importing
        transport: subprocess.Popen(
            [*command, "--db", str(db)],
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(home)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for transport, command in commands.items()
    }
    outputs = {}
    try:
        for transport, process in processes.items():
            stdout, stderr = process.communicate(timeout=60)
            outputs[transport] = (process.returncode, stdout, stderr)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    for transport, (status, stdout, stderr) in outputs.items():
        assert status != 0, transport
        assert stdout == "", transport
        lines = stderr.strip().splitlines()
        assert len(lines) == 1, f"{transport}: {stderr}"
        assert "Traceback" not in stderr and "sqlite3." not in stderr, stderr
        assert str(db) in lines[0] and "--db" in lines[0] and lines[0].endswith("."), f"{transport}: {lines[0]}"
