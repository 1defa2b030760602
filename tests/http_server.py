"""The console script serving streamable HTTP as a real subprocess on 127.0.0.1, and clients for it."""

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.test_stdio import server_script

START_TIMEOUT = 30.0  # a server takes ~1 s to start, more on a loaded 2-core machine


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class HttpServer:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    """The server's stderr."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = START_TIMEOUT) -> int:
        """Sends `sig` and waits for the exit status (kills after `timeout`)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


def start_http_server(tmp_path: Path, db: Path | str, *args: str, port: int | None = None, **env: str) -> HttpServer:
    """`mcp-server-sessions serve --transport http --port P ARGS` with `db`; returns once /healthz answers."""
    port = port or free_port()
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    log = tmp_path / f"server-{port}-{time.monotonic_ns()}.log"
    environment = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "MCP_SESSIONS_DB": str(db), **env}
    command = [server_script(), "serve", "--transport", "http", "--port", str(port), *args]
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
    server = HttpServer(process, port, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the HTTP server exited with {process.returncode}:\n{server.stderr()}")
        try:
            if httpx.get(f"{server.base_url}/healthz", timeout=1.0).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.05)  # bounded by the deadline: polling a starting process
    server.stop(signal.SIGKILL)
    raise AssertionError(f"the HTTP server did not answer /healthz within {START_TIMEOUT} s:\n{server.stderr()}")


@contextmanager
def http_server(tmp_path: Path, db: Path, *args: str, **env: str) -> Iterator[HttpServer]:
    server = start_http_server(tmp_path, db, *args, **env)
    try:
        yield server
    finally:
        server.stop()


def add_token(tokens: Path, user_id: str) -> str:
    """`tokens add USER_ID --tokens FILE`, as a person would run it; the token it printed."""
    done = subprocess.run(
        [server_script(), "tokens", "add", user_id, "--tokens", str(tokens)],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", "")},
    )
    return done.stdout.strip()


@asynccontextmanager
async def http_client(url: str, token: str | None = None, **client_options: object) -> AsyncIterator[Client]:
    """The SDK's own streamable HTTP client, with `Authorization: Bearer token` on every request."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0)) as http,
        Client(streamable_http_client(url, http_client=http), **client_options) as client,  # type: ignore[arg-type]
    ):
        yield client


# -- plain HTTP: one JSON-RPC POST at a time, as a client nobody here wrote would send it ------------

MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
METADATA_PATH = "/.well-known/oauth-protected-resource"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_mcp(url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    """One JSON-RPC POST to /mcp by a plain HTTP client (a new connection each time: nothing is shared)."""
    return httpx.post(url, json=body, headers={**MCP_HEADERS, **headers}, timeout=30)


def answer(response: httpx.Response, request_id: int) -> dict[str, Any]:
    """The JSON-RPC answer to `request_id`: a JSON body, or the `data:` of an SSE `message` event."""
    assert response.status_code == 200, (response.status_code, response.text)
    kind = response.headers["content-type"]
    if kind.startswith("text/event-stream"):
        found = [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
    else:
        assert kind.startswith("application/json"), kind
        found = [response.json()]
    answers: list[dict[str, Any]] = [message for message in found if message.get("id") == request_id]
    assert len(answers) == 1, response.text
    return answers[0]


def tool_call(request_id: int, tool: str, **arguments: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "httpx", "version": "1"}},
}


def assert_unauthorized(response: httpx.Response, base_url: str) -> None:
    """401 with a Bearer challenge that points at the RFC 9728 metadata, and no MCP answer."""
    assert response.status_code == 401, (response.status_code, response.text)
    challenge = response.headers.get("www-authenticate", "")
    assert challenge.startswith("Bearer "), challenge
    assert f'resource_metadata="{base_url}{METADATA_PATH}"' in challenge, challenge
    assert "jsonrpc" not in response.text and "result" not in response.text, response.text
