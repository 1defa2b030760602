"""The MCP Inspector's command line (npm @modelcontextprotocol/inspector, pinned with Node 22 in
tests/conformance/package.json) against the HTTP server with a bearer token, as the README tells people
to debug a remote server: `inspector --cli URL --transport http --header "Authorization: Bearer ..."`.
Skipped locally without node and npm; fails when CI is set (see tests/test_conformance.py)."""

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.http_server import HttpServer, add_token, http_server
from tests.test_conformance import INSPECTOR, NODE_22, installed_suite, npm_path

CLI_TIMEOUT = 60


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HttpServer, str]]:
    installed_suite(npm_path())
    tmp = tmp_path_factory.mktemp("inspector")
    token = add_token(tmp / "tokens", "alice")
    with http_server(tmp, tmp / "sessions.db", "--tokens", str(tmp / "tokens")) as server:
        yield server, token


def inspector(server: HttpServer, token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    header = ["--header", f"Authorization: Bearer {token}"] if token else []
    command = [str(NODE_22), str(INSPECTOR), "--cli", server.mcp_url, "--transport", "http", *header, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=CLI_TIMEOUT)


def answer(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_the_inspector_lists_the_tools_with_a_token(served: tuple[HttpServer, str]) -> None:
    server, token = served
    tools = answer(inspector(server, token, "--method", "tools/list"))["tools"]
    assert {"start_session", "record_run", "get_chat_history", "run", "summarize_session"} <= {t["name"] for t in tools}
    assert all(tool["outputSchema"]["type"] == "object" for tool in tools)


def test_the_inspector_calls_tools_as_the_tokens_user(served: tuple[HttpServer, str]) -> None:
    server, token = served
    started = answer(
        inspector(
            server, token, "--method", "tools/call", "--tool-name", "start_session", "--tool-arg", "session_id=cli"
        )
    )
    assert started["isError"] is False
    assert started["structuredContent"]["user_id"] == "alice"
    done = inspector(
        server,
        token,
        "--method",
        "tools/call",
        "--tool-name",
        "get_session",
        "--tool-arg",
        "session_id=cli",
        "--tool-arg",
        "user_id=bob",
    )
    assert done.returncode != 0  # the inspector's status for a result with isError
    refused = json.loads(done.stdout)
    assert refused["isError"] is True
    assert "acts as user 'alice'" in refused["content"][0]["text"]


def test_the_inspector_without_a_token_is_turned_away(served: tuple[HttpServer, str]) -> None:
    server, _ = served
    done = inspector(server, None, "--method", "tools/list")
    assert done.returncode != 0
    # The 401's challenge sends it to the OAuth sign-in, which needs a person at a terminal.
    assert json.loads(done.stderr)["error"]["code"] == "auth_required", done.stderr[-2000:]
