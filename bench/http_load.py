"""HTTP load: N concurrent clients against our server and a bare no-op MCPServer on the same HTTP stack.

Two server subprocesses on 127.0.0.1 run side by side: ours (`serve --transport http --tokens FILE`, its
SQLite file in a temp dir) and `bench.bare_http_server` (one `noop` tool; the same SDK stateless
streamable HTTP app, uvicorn options, Host/Origin checks and `TokenFile` verifier over the same token
file of 100 users). The same load generator drives both: N closed-loop clients, each with its own
keep-alive connection, user token and session, POSTing JSON-RPC `tools/call` and reading the answer
(an SSE `data:` line, or JSON under `--protocol 2026-07-28`). The phases, the no-op, `record_run`
(~200-char input, ~800-char output) and `get_chat_history(last_n_runs=3)` (on the clients' sessions,
seeded with runs first), run back to back in `--rounds` rounds, in the order ABC then CBA, so drift of
the machine's load hits each alike. Per call: throughput, p50 and p99 latency, CPU per call of the
server process and of the client, errors; and ours p50 / no-op p50 (target <= 1.5x). After the
servers stop, the runs in the SQLite file are counted against the acknowledged `record_run` calls:
each must be stored exactly once.

The default client is a minimal HTTP/1.1 client on asyncio streams (`--client raw`), several times
lighter per call than httpx (`--client httpx`) or the SDK's own client, so on a 2-core machine the load
generator takes as little CPU from the servers as it can; the client's CPU per call is reported.
Run: ``python -m bench.http_load [--quick] [--clients 16 --seconds 30 --rounds 6] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import pathlib
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from mcp_server_sessions.server.auth.token_file import token_hash

from .peers import REPLY_CHARS, USER_CHARS, TextGen

REPO = pathlib.Path(__file__).resolve().parent.parent
TOKEN_USERS = 100
"""Lines in the token file: every request's token is compared with each, on both servers."""
SEED_RUNS = 3
"""Runs each client's session holds before timing, so get_chat_history(last_n_runs=3) reads 3 runs."""
P50_TARGET = 1.5
LEGACY, MODERN = "2025-11-25", "2026-07-28"
NOOP, RECORD, HISTORY = "noop", "record_run", "get_chat_history(last_n_runs=3)"
CALLS = (NOOP, RECORD, HISTORY)
START_TIMEOUT_S = 30.0
CALL_TIMEOUT_S = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- servers


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: pathlib.Path

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process (all its threads) so far."""
        fields = pathlib.Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def launch(name: str, args: list[str], workdir: pathlib.Path) -> Server:
    """Starts `python ARGS --port P`, its stderr to a log file in `workdir`."""
    port = free_port()
    log = workdir / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_SESSIONS_", "ANTHROPIC_"))}
    env["HOME"] = str(workdir)
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, *args, "--port", str(port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
        )
    return Server(name, process, port, log)


def wait_ready(server: Server) -> None:
    """Returns once the server's /healthz answers."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.process.returncode}:\n{server.stderr()}")
        try:
            if httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)  # bounded by the deadline
    raise RuntimeError(f"{server.name} did not answer /healthz in {START_TIMEOUT_S} s:\n{server.stderr()}")


@contextmanager
def servers(workdir: pathlib.Path, tokens: pathlib.Path, db: pathlib.Path) -> Iterator[dict[str, Server]]:
    """Both servers, started at once; stopped (SIGTERM) on the way out."""
    ours = ["-m", "mcp_server_sessions.server", "serve", "--transport", "http", "--db", str(db)]
    commands = {"bare": ["-m", "bench.bare_http_server"], "ours": ours}
    started: dict[str, Server] = {}
    try:
        for name, args in commands.items():
            started[name] = launch(name, [*args, "--tokens", str(tokens), "--log-level", "INFO"], workdir)
        for server in started.values():
            wait_ready(server)
        yield started
    finally:
        for server in started.values():
            server.stop()


def write_tokens(path: pathlib.Path, users: int) -> list[str]:
    """A token file of `users` lines, as `tokens add` writes them; the tokens, in user order."""
    tokens = [secrets.token_urlsafe(32) for _ in range(users)]
    lines = [f"bench-user-{i:03d} {token_hash(token)}\n" for i, token in enumerate(tokens)]
    path.write_text("# mcp-server-sessions tokens (bench)\n" + "".join(lines))
    return tokens


# ---------------------------------------------------------------- clients


class Transport(Protocol):
    async def post(self, body: bytes) -> tuple[int, str, bytes]:
        """POSTs `body` to /mcp; the status, the content type and the whole response body."""
        ...

    async def close(self) -> None: ...


class RawTransport:
    """HTTP/1.1 POSTs on one keep-alive connection, asyncio streams only (Content-Length or chunked).

    A connection the server closed while idle is opened anew before the next request, as httpx's pool does.
    """

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.head = f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, str, bytes]:
        if self.reader is not None and self.reader.at_eof():  # idle past uvicorn's keep-alive: it hung up
            await self.close()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        try:
            self.writer.write(b"%sContent-Length: %d\r\n\r\n%s" % (self.head, len(body), body))
            await self.writer.drain()
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
            if "content-length" in headers:
                data = await self.reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding") == "chunked":
                chunks = []
                while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    chunks.append((await self.reader.readexactly(size + 2))[:-2])
                while await self.reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the blank line
                    pass
                data = b"".join(chunks)
            else:
                data = await self.reader.read()
                headers["connection"] = "close"
            if headers.get("connection") == "close":
                await self.close()
            return status, headers.get("content-type", ""), data
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


class HttpxTransport:
    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers=headers,
            timeout=CALL_TIMEOUT_S,
            limits=httpx.Limits(max_connections=1),
        )

    async def post(self, body: bytes) -> tuple[int, str, bytes]:
        response = await self.client.post("/mcp", content=body)
        return response.status_code, response.headers.get("content-type", ""), response.content

    async def close(self) -> None:
        await self.client.aclose()


TRANSPORTS: dict[str, Callable[[int, dict[str, str]], Transport]] = {"raw": RawTransport, "httpx": HttpxTransport}


class CallFailed(Exception):
    pass


@dataclass
class McpCaller:
    """One client: JSON-RPC tools/call on its own connection, with its user's token."""

    transport: Transport
    protocol: str
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The tool's result; CallFailed for an HTTP, JSON-RPC or tool error."""
        params: dict[str, Any] = {"name": tool, "arguments": arguments}
        if self.protocol == MODERN:  # stateless 2026-07-28: the envelope rides in every request
            params["_meta"] = {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"},
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        body = json.dumps({"jsonrpc": "2.0", "id": next(self.ids), "method": "tools/call", "params": params})
        status, content_type, data = await asyncio.wait_for(self.transport.post(body.encode()), CALL_TIMEOUT_S)
        if status != 200:
            raise CallFailed(f"HTTP {status}: {data[:200]!r}")
        if content_type.startswith("text/event-stream"):
            lines = [line for line in data.split(b"\n") if line.startswith(b"data:")]
            if len(lines) != 1:
                raise CallFailed(f"{len(lines)} SSE data lines: {data[:200]!r}")
            data = lines[0][5:]
        message = json.loads(data)
        if "error" in message:
            raise CallFailed(f"JSON-RPC error {message['error']}")
        result: dict[str, Any] = message["result"]
        if result.get("isError"):
            raise CallFailed(f"tool error {result['content']}")
        return result


@dataclass
class Phase:
    """What one kind of call measured, over all its rounds."""

    latencies_ms: list[float] = field(default_factory=list)
    round_p50_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        calls = len(self.latencies_ms)
        ordered = sorted(self.latencies_ms) or [float("nan")]
        return {
            "calls": calls,
            "errors": len(self.errors),
            "first_errors": self.errors[:5],
            "calls_per_s": calls / self.wall_s if self.wall_s else 0.0,
            "p50_ms": statistics.median(ordered),
            "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
            "round_p50_ms": self.round_p50_ms,
            "server_cpu_ms_per_call": 1000 * self.server_cpu_s / calls if calls else 0.0,
            "client_cpu_ms_per_call": 1000 * self.client_cpu_s / calls if calls else 0.0,
        }


class Load:
    """N clients per server, each with its own connection, user token and session."""

    def __init__(self, servers: dict[str, Server], tokens: list[str], n: int, client: str, protocol: str) -> None:
        self.servers = servers
        self.protocol = protocol
        accept = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        version = {"MCP-Protocol-Version": protocol}

        def caller(server: Server, i: int, extra: dict[str, str]) -> McpCaller:
            headers = {**accept, **version, "Authorization": f"Bearer {tokens[i]}", **extra}
            return McpCaller(TRANSPORTS[client](server.port, headers), protocol)

        def method(tool: str) -> dict[str, str]:  # 2026-07-28 clients name the method and tool in headers
            return {"Mcp-Method": "tools/call", "Mcp-Name": tool} if protocol == MODERN else {}

        self.callers = {
            NOOP: [caller(servers["bare"], i, method("noop")) for i in range(n)],
            RECORD: [caller(servers["ours"], i, method("record_run")) for i in range(n)],
            HISTORY: [caller(servers["ours"], i, method("get_chat_history")) for i in range(n)],
        }
        self.sessions = [f"bench-http-{i:02d}" for i in range(n)]
        gen = TextGen(11)
        self.texts = [(gen.text(USER_CHARS), gen.text(REPLY_CHARS)) for _ in range(64)]
        self.next_text = itertools.count()
        self.acknowledged: list[str] = []
        self.phases = {name: Phase() for name in CALLS}

    def arguments(self, name: str, i: int) -> tuple[str, dict[str, Any]]:
        if name == NOOP:
            return "noop", {}
        if name == RECORD:
            user, reply = self.texts[next(self.next_text) % len(self.texts)]
            return "record_run", {"session_id": self.sessions[i], "input": user, "output": reply}
        return "get_chat_history", {"session_id": self.sessions[i], "last_n_runs": 3}

    async def one(self, name: str, i: int) -> None:
        tool, arguments = self.arguments(name, i)
        result = await self.callers[name][i].call(tool, arguments)
        if name == RECORD:
            self.acknowledged.append(result["structuredContent"]["run_id"])
        elif name == HISTORY and len(result["structuredContent"]["messages"]) != 6:
            raise CallFailed(f"{len(result['structuredContent']['messages'])} messages, not 3 runs' 6")

    async def warm_up(self) -> None:
        """Connects every client, seeds each session with SEED_RUNS runs, and warms both servers."""
        for _ in range(SEED_RUNS):
            await asyncio.gather(*(self.one(RECORD, i) for i in range(len(self.sessions))))
        for name in (NOOP, HISTORY, NOOP, HISTORY):
            await asyncio.gather(*(self.one(name, i) for i in range(len(self.sessions))))

    async def phase(self, name: str, seconds: float) -> None:
        """All clients call `name` in a closed loop for `seconds`; each finishes its last call."""
        phase = self.phases[name]
        server = self.servers["bare" if name == NOOP else "ours"]
        latencies: list[float] = []

        async def client(i: int) -> None:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    await self.one(name, i)
                except (CallFailed, OSError, EOFError, KeyError, ValueError, httpx.HTTPError) as exc:
                    phase.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                latencies.append((time.perf_counter() - t0) * 1000)

        server_cpu, client_cpu, t0 = server.cpu_s(), time.process_time(), time.perf_counter()
        deadline = t0 + seconds
        await asyncio.gather(*(client(i) for i in range(len(self.sessions))))
        phase.wall_s += time.perf_counter() - t0
        phase.server_cpu_s += server.cpu_s() - server_cpu
        phase.client_cpu_s += time.process_time() - client_cpu
        phase.latencies_ms += latencies
        phase.round_p50_ms.append(statistics.median(latencies) if latencies else float("nan"))

    async def close(self) -> None:
        for callers in self.callers.values():
            for caller in callers:
                await caller.transport.close()


def stored_runs(db: pathlib.Path, acknowledged: list[str]) -> dict[str, Any]:
    """The runs in the SQLite file (read after the server stopped) against the acknowledged record_run calls."""
    with sqlite3.connect(db) as connection:
        rows = [run_id for (run_id,) in connection.execute("SELECT run_id FROM runs")]
    connection.close()
    return compare_runs(rows, acknowledged)


def compare_runs(rows: list[str], acknowledged: list[str]) -> dict[str, Any]:
    """The run_ids of a store's runs against the acknowledged record_run calls: each exactly once?"""
    stored, acked = set(rows), set(acknowledged)
    result = {
        "acknowledged": len(acknowledged),
        "distinct_acknowledged": len(acked),
        "rows": len(rows),
        "distinct_rows": len(stored),
        "acknowledged_not_stored": len(acked - stored),
        "stored_not_acknowledged": len(stored - acked),
    }
    result["exactly_once"] = len(rows) == len(stored) == len(acked) == len(acknowledged) and stored == acked
    return result


async def measure(clients: int, seconds: float, rounds: int, client: str, protocol: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-http-") as tmp:
        workdir = pathlib.Path(tmp)
        db = workdir / "sessions.db"
        tokens_file = workdir / "tokens"
        tokens = write_tokens(tokens_file, max(TOKEN_USERS, clients))
        with servers(workdir, tokens_file, db) as running:
            load = Load(running, tokens, clients, client, protocol)
            try:
                await load.warm_up()
                for r in range(rounds):
                    for name in CALLS if r % 2 == 0 else reversed(CALLS):
                        await load.phase(name, seconds / rounds)
            finally:
                await load.close()
        stored = stored_runs(db, load.acknowledged)
    calls = {name: phase.summary() for name, phase in load.phases.items()}
    noop = calls[NOOP]
    ratios = {}
    for name in (RECORD, HISTORY):
        ours = calls[name]
        per_round = [o / b for o, b in zip(ours["round_p50_ms"], noop["round_p50_ms"], strict=True)]
        ratios[name] = {
            "p50": ours["p50_ms"] / noop["p50_ms"],
            "p99": ours["p99_ms"] / noop["p99_ms"],
            "calls_per_s": ours["calls_per_s"] / noop["calls_per_s"] if noop["calls_per_s"] else float("nan"),
            "server_cpu_per_call": ours["server_cpu_ms_per_call"] / noop["server_cpu_ms_per_call"]
            if noop["server_cpu_ms_per_call"]
            else float("nan"),
            "round_p50_min": min(per_round),
            "round_p50_max": max(per_round),
        }
    return {
        "clients": clients,
        "seconds_per_call": seconds,
        "rounds": rounds,
        "client": client,
        "protocol": protocol,
        "response": "SSE" if protocol == LEGACY else "JSON",
        "token_file_users": max(TOKEN_USERS, clients),
        "calls": calls,
        "ratios": ratios,
        "stored": stored,
        "errors": sum(c["errors"] for c in calls.values()),
        "p50_target": P50_TARGET,
        "p50_target_met": all(r["p50"] <= P50_TARGET for r in ratios.values()),
    }


def problems(result: dict[str, Any]) -> list[str]:
    """What the run got wrong (not its speed): errors, or acknowledged runs not stored exactly once."""
    found = []
    if result["errors"]:
        first = [e for c in result["calls"].values() for e in c["first_errors"]][:3]
        found.append(f"HTTP load: {result['errors']} calls failed, e.g. {first}")
    if not result["stored"]["exactly_once"]:
        found.append(f"HTTP load: acknowledged runs not stored exactly once: {result['stored']}")
    return found


def markdown(result: dict[str, Any]) -> str:
    calls, ratios, stored = result["calls"], result["ratios"], result["stored"]
    rows = [
        f"| call over HTTP ({result['clients']} clients, {result['seconds_per_call']:g} s each, "
        f"{result['rounds']} rounds) | calls/s | p50 ms | p99 ms | server CPU ms/call | errors "
        "| p50 / no-op p50 (per-round min-max) | p99 / no-op p99 | server CPU / no-op's |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in CALLS:
        c = calls[name]
        label = "noop (bare MCPServer, same HTTP stack)" if name == NOOP else f"{name} (ours)"
        if name == NOOP:
            ratio, tail, cpu = "1x", "1x", "1x"
        else:
            r = ratios[name]
            ratio = f"**{r['p50']:.2f}x** ({r['round_p50_min']:.2f}-{r['round_p50_max']:.2f})"
            tail, cpu = f"{r['p99']:.2f}x", f"{r['server_cpu_per_call']:.2f}x"
        rows.append(
            f"| {label} | {c['calls_per_s']:.0f} | {c['p50_ms']:.2f} | {c['p99_ms']:.2f} "
            f"| {c['server_cpu_ms_per_call']:.2f} | {c['errors']} | {ratio} | {tail} | {cpu} |"
        )
    once = "every one stored exactly once" if stored["exactly_once"] else "**NOT stored exactly once**"
    client_cpu = statistics.median(c["client_cpu_ms_per_call"] for c in calls.values()) * 1000
    rows += [
        "",
        f"Target: p50 <= {result['p50_target']}x the no-op's, 0 errors: "
        f"{'met' if result['p50_target_met'] and not result['errors'] else '**not met**'}. "
        f"Stored: {stored['acknowledged']} acknowledged record_run calls ({stored['distinct_acknowledged']} distinct "
        f"run_ids), {stored['rows']} rows in the SQLite file: {once}.",
        f"Stateless streamable HTTP, protocol {result['protocol']} ({result['response']} responses), both servers "
        f"verify every token against a {result['token_file_users']}-user token file. Load generator: "
        f"`{result['client']}` client, {client_cpu:.0f} us CPU per call (median over the calls).",
    ]
    return "\n".join(rows)


SIZES = {"quick": {"clients": 4, "seconds": 2.0, "rounds": 2}, "full": {"clients": 16, "seconds": 30.0, "rounds": 6}}


async def main_async(quick: bool, client: str = "raw", protocol: str = LEGACY) -> dict[str, Any]:
    size = SIZES["quick" if quick else "full"]
    return await measure(size["clients"], size["seconds"], size["rounds"], client, protocol)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 clients, 2 s per call kind: checks the bench runs")
    parser.add_argument("--clients", type=int, help="concurrent clients (default 16)")
    parser.add_argument("--seconds", type=float, help="load seconds per call kind, over all rounds (default 30)")
    parser.add_argument("--rounds", type=int, help="rounds the seconds are split into (default 6)")
    parser.add_argument("--client", choices=sorted(TRANSPORTS), default="raw", help="load generator HTTP client")
    parser.add_argument("--protocol", choices=(LEGACY, MODERN), default=LEGACY, help="MCP protocol revision sent")
    parser.add_argument("--json", type=pathlib.Path, help="write the full results here")
    args = parser.parse_args(argv)
    size = SIZES["quick" if args.quick else "full"]
    result = asyncio.run(
        measure(
            args.clients or size["clients"],
            args.seconds or size["seconds"],
            args.rounds or size["rounds"],
            args.client,
            args.protocol,
        )
    )
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if found := problems(result):
        sys.exit("\n".join(found))


if __name__ == "__main__":
    main()
