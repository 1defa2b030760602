"""The command line of remote use (SPEC sections 5 and 5b; issue 9): `tokens add|list|revoke` keep only hashes
in the token file, `serve --transport http` refuses what cannot be safely served with one sentence, and the
environment configures what the flags do."""

import base64
import hashlib
import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import anyio
import httpx
import pytest

from tests.helpers import STORE_TOOLS
from tests.http_server import START_TIMEOUT, HttpServer, add_token, free_port
from tests.test_stdio import server_script, stdio_client

TIMEOUT = 60
PROG = "mcp-server-sessions"
HASH = re.compile(r"[0-9a-f]{64}")


def environment(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no MCP_SESSIONS_* of the caller's leaks in."""
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), **extra}


def start(cwd: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [server_script(), *args],
        cwd=cwd,
        env=environment(cwd / "home", **env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    """Waits (bounded) for a command that must end by itself; kills it and fails if it does not."""
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise AssertionError(f"{process.args} did not exit within {TIMEOUT} s; stderr:\n{stderr}") from None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return finish(start(cwd, *args, **env))


def cli_all(cwd: Path, *commands: tuple[str, ...], **env: str) -> list[subprocess.CompletedProcess[str]]:
    """Independent commands run at once (each takes ~1 s of imports on a 2-core machine)."""
    return [finish(process) for process in [start(cwd, *command, **env) for command in commands]]


def one_line_refusal(done: subprocess.CompletedProcess[str], status: int | None = None) -> str:
    """A refused command: non-zero (or `status`), nothing on stdout, one line on stderr, no traceback."""
    assert done.returncode != 0 if status is None else done.returncode == status, (done.returncode, done.stderr)
    assert done.stdout == "", done.stdout
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def token_lines(path: Path) -> list[tuple[str, str]]:
    """The file's `USER_ID SHA256_HEX` lines (comments and blank lines skipped)."""
    found = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            user, digest = line.split()
            found.append((user, digest))
    return found


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def write_tokens(path: Path, *lines: str) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))
    path.chmod(0o600)


# -- tokens add | list | revoke -----------------------------------------------------------------


def test_tokens_add_prints_the_token_alone_and_stores_only_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    runs = cli_all(
        tmp_path, ("tokens", "add", "alice", "--tokens", str(path)), ("tokens", "add", "alice", "--tokens", str(path))
    )
    tokens = []
    for done in runs:
        assert done.returncode == 0, done.stderr
        assert done.stdout.count("\n") == 1 and done.stdout.endswith("\n"), repr(done.stdout)
        token = done.stdout[:-1]
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token), token
        assert len(base64.urlsafe_b64decode(token + "=")) == 32  # 256 random bits
        assert done.stderr.strip() and token not in done.stderr, done.stderr
        tokens.append(token)
    assert tokens[0] != tokens[1]
    assert sorted(token_lines(path)) == sorted(("alice", sha256(token)) for token in tokens)
    text = path.read_text()
    assert not any(token in text for token in tokens)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".tokens")]  # no temporary file left


def test_tokens_list_shows_users_and_hash_prefixes_not_hashes(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    alice, bob = sha256("alice-token"), sha256("bob-token")
    write_tokens(path, "# a comment", "", f"alice {alice}", f"bob {bob}  # bob's laptop")
    before = path.read_bytes()
    listed, as_json = cli_all(
        tmp_path, ("tokens", "list", "--tokens", str(path)), ("tokens", "list", "--json", "--tokens", str(path))
    )

    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()
    assert len(rows) == 2, listed.stdout
    for row, (user, digest) in zip(rows, (("alice", alice), ("bob", bob)), strict=True):
        assert row.split()[0] == user, row
        prefix = re.search(r"[0-9a-f]{6,}", row.split(None, 1)[1])
        assert prefix and digest.startswith(prefix[0]) and len(prefix[0]) < 64, row
    assert not HASH.search(listed.stdout + listed.stderr)

    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)  # one JSON document, nothing else on stdout
    assert not HASH.search(as_json.stdout)
    found = json.dumps(document)
    assert "alice" in found and "bob" in found
    prefixes = re.findall(r"[0-9a-f]{6,63}", found)
    assert any(alice.startswith(p) for p in prefixes) and any(bob.startswith(p) for p in prefixes), document
    assert path.read_bytes() == before


def test_tokens_revoke_removes_that_users_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    a1, a2, bob, alicia = (sha256(t) for t in ("a1", "a2", "bob", "alicia"))
    write_tokens(path, "# team tokens", f"alice {a1}", f"bob {bob}", f"alicia {alicia}", f"alice {a2}")
    revoked = cli(tmp_path, "tokens", "revoke", "alice", "--tokens", str(path))
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout == ""
    assert token_lines(path) == [("bob", bob), ("alicia", alicia)]
    assert "# team tokens" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    before = path.read_bytes()
    again = cli(tmp_path, "tokens", "revoke", "alice", "--tokens", str(path))  # alice has no token left
    assert "alice" in one_line_refusal(again)
    assert path.read_bytes() == before


def test_tokens_need_a_file(tmp_path: Path) -> None:
    for done in cli_all(tmp_path, ("tokens", "add", "alice"), ("tokens", "list")):  # revoke: add's code path
        assert "--tokens" in one_line_refusal(done), done.args
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]
    assert list((tmp_path / "home").iterdir()) == []  # no file was made anywhere


def test_a_bad_user_id_is_refused_and_the_file_is_untouched(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    write_tokens(path, f"alice {sha256('a')}")
    before = path.read_bytes()
    commands = [
        ("tokens", "add", "bad id", "--tokens", str(path)),
        ("tokens", "revoke", "bad id", "--tokens", str(path)),
    ]
    for done in cli_all(tmp_path, *commands):
        assert "bad id" in one_line_refusal(done), done.args
    assert path.read_bytes() == before


def test_an_unusable_token_file_path_is_refused_with_one_line(tmp_path: Path) -> None:
    """A directory, or a path under a regular file: a sentence that names the path, never a traceback."""
    (tmp_path / "a-directory").mkdir()
    (tmp_path / "a-file").write_text("not a directory\n")
    commands = [
        ("tokens", "add", "alice", "--tokens", str(tmp_path / "a-directory")),
        ("tokens", "list", "--tokens", str(tmp_path / "a-directory")),
        ("tokens", "add", "alice", "--tokens", str(tmp_path / "a-file" / "tokens")),
    ]
    for done in cli_all(tmp_path, *commands):
        line = one_line_refusal(done)
        assert str(tmp_path) in line, (done.args, line)
    assert list((tmp_path / "a-directory").iterdir()) == []
    assert (tmp_path / "a-file").read_text() == "not a directory\n"


def test_the_token_file_can_come_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "from-env"
    added = cli(tmp_path, "tokens", "add", "alice", MCP_SESSIONS_TOKENS=str(path))
    assert added.returncode == 0, added.stderr
    assert token_lines(path) == [("alice", sha256(added.stdout.strip()))]


# -- serve --transport http: refusals ---------------------------------------------------------

JWKS = "http://127.0.0.1:9/jwks.json"
REFUSALS: dict[str, tuple[str, ...]] = {
    "no identity": (),
    "anonymous on a public host": ("--allow-anonymous", "--host", "0.0.0.0"),
    "anonymous with tokens": ("--allow-anonymous", "--tokens", "{tokens}"),
    "anonymous behind a public url": ("--allow-anonymous", "--public-url", "https://sessions.example"),
    "token file is a directory": ("--tokens", "{directory}"),
    "public url not a url": ("--tokens", "{tokens}", "--public-url", "notaurl"),
    "issuer not a url": ("--jwks-url", JWKS, "--issuer", "myissuer", "--audience", "aud"),
    "public url with a bad port": ("--tokens", "{tokens}", "--public-url", "https://sessions.example:http"),
    "public url with a password": ("--tokens", "{tokens}", "--public-url", "https://u:s3cretpw@x:99999"),
    "tokens and jwks": ("--tokens", "{tokens}", "--jwks-url", JWKS, "--issuer", "https://iss", "--audience", "aud"),
    "jwks without issuer": ("--jwks-url", JWKS, "--audience", "aud"),
    "jwks without audience": ("--jwks-url", JWKS, "--issuer", "https://iss"),
    "missing token file": ("--tokens", "{missing}"),
    "port 0": ("--tokens", "{tokens}", "--port", "0"),
    "port 70000": ("--tokens", "{tokens}", "--port", "70000"),
    "port abc": ("--tokens", "{tokens}", "--port", "abc"),
}


Refused = tuple[int, subprocess.CompletedProcess[str] | AssertionError]


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Refused]:
    """Every refused `serve`, started at once (each is ~1 s of imports); the tests read their own case."""
    tmp = tmp_path_factory.mktemp("refusals")
    tokens = tmp / "tokens"
    write_tokens(tokens, f"alice {sha256('a')}")
    started = {}
    for case, flags in REFUSALS.items():
        port = free_port()
        args = [flag.format(tokens=tokens, missing=tmp / "missing", directory=tmp) for flag in flags]
        if "--port" not in args:
            args += ["--port", str(port)]
        started[case] = (port, start(tmp, "serve", "--transport", "http", "--db", str(tmp / "s.db"), *args))
    results: dict[str, Refused] = {}
    for case, (port, process) in started.items():
        try:
            results[case] = (port, finish(process))
        except AssertionError as failure:  # it served instead of refusing: that case's test reports it
            results[case] = (port, failure)
    return results


def refusal(refusals: dict[str, Refused], case: str) -> tuple[int, str]:
    port, done = refusals[case]
    if isinstance(done, AssertionError):
        raise done
    return port, one_line_refusal(done, status=2)


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("case", REFUSALS)
def test_serve_http_refuses_with_one_line_and_status_2(refusals: dict[str, Refused], case: str) -> None:
    port, line = refusal(refusals, case)
    assert line.startswith(f"{PROG}: ") and line.endswith("."), line
    assert not listening(port)


def test_refusals_name_what_to_fix(refusals: dict[str, Refused]) -> None:
    said = {case: refusal(refusals, case)[1] for case in refusals}
    assert "--tokens" in said["no identity"] and "--jwks-url" in said["no identity"]
    assert "0.0.0.0" in said["anonymous on a public host"] and "loopback" in said["anonymous on a public host"]
    assert "--tokens" in said["tokens and jwks"] and "--jwks-url" in said["tokens and jwks"]
    for case in ("jwks without issuer", "jwks without audience"):
        assert "--issuer" in said[case] and "--audience" in said[case], said[case]
    assert "missing" in said["missing token file"] and "tokens add" in said["missing token file"]
    for value in ("0", "70000", "abc"):
        assert "--port" in said[f"port {value}"] and value in said[f"port {value}"], said[f"port {value}"]
    assert "--allow-anonymous" in said["anonymous with tokens"]
    assert "--public-url" in said["anonymous behind a public url"]
    assert "not a regular file" in said["token file is a directory"]
    for case in ("public url not a url", "public url with a bad port", "public url with a password"):
        assert "--public-url must be an http:// or https:// URL" in said[case], said[case]
    assert "--issuer must be an http:// or https:// URL" in said["issuer not a url"]
    assert "s3cretpw" not in said["public url with a password"]  # a URL is not quoted back


# -- the environment instead of flags; stdio stays the default -----------------------------------


def test_serve_takes_transport_port_and_tokens_from_the_environment(tmp_path: Path) -> None:
    token = "env-token-" + "x" * 33
    tokens = tmp_path / "tokens"
    write_tokens(tokens, "# written by hand", f"envuser {sha256(token)}")
    port = free_port()
    log = tmp_path / "server.log"
    env = environment(
        tmp_path / "home",
        MCP_SESSIONS_TRANSPORT="http",
        MCP_SESSIONS_PORT=str(port),
        MCP_SESSIONS_TOKENS=str(tokens),
        MCP_SESSIONS_DB=str(tmp_path / "s.db"),
    )
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [server_script(), "serve"], env=env, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr
        )
    server = HttpServer(process, port, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"the server exited with {process.returncode}:\n{server.stderr()}"
            try:
                if httpx.get(f"{server.base_url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"no /healthz within {START_TIMEOUT} s:\n{server.stderr()}"
                time.sleep(0.05)  # bounded by the deadline: polling a starting process
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "start_session", "arguments": {}}}
        refused = httpx.post(server.mcp_url, json=body, headers=headers, timeout=30)
        assert refused.status_code == 401  # the token file is in force: no anonymous fallback
        answered = httpx.post(
            server.mcp_url, json=body, headers={**headers, "Authorization": f"Bearer {token}"}, timeout=30
        )
        assert answered.status_code == 200, answered.text
        data = [json.loads(line[5:]) for line in answered.text.splitlines() if line.startswith("data:")]
        payload = data[-1] if data else answered.json()
        assert payload["result"]["structuredContent"]["user_id"] == "envuser", payload
    finally:
        status = server.stop()
    # SIGTERM is a clean shutdown (uvicorn re-raises the signal once it has shut down)
    assert status in (0, -signal.SIGTERM), (status, server.stderr())
    assert "Application shutdown complete" in server.stderr() and "Traceback" not in server.stderr()


@pytest.mark.anyio
async def test_no_subcommand_is_still_the_stdio_server_whatever_the_http_environment(tmp_path: Path) -> None:
    port = free_port()
    with anyio.fail_after(TIMEOUT):
        async with stdio_client(
            tmp_path,
            tmp_path / "s.db",
            MCP_SESSIONS_TRANSPORT="http",
            MCP_SESSIONS_PORT=str(port),
            MCP_SESSIONS_USER="dan",
        ) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            started = await client.call_tool("start_session", {"session_id": "stdio-1"})
            assert not listening(port)
    assert tools >= set(STORE_TOOLS)
    assert not started.is_error and started.structured_content
    assert started.structured_content["user_id"] == "dan"


def test_tokens_add_keeps_the_mode_of_an_existing_file(tmp_path: Path) -> None:
    """An administrator who made the file group-readable for the server's account keeps it so."""
    tokens = tmp_path / "tokens"
    add_token(tokens, "alice")
    tokens.chmod(0o640)
    add_token(tokens, "bob")
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o640
    subprocess.run(
        [server_script(), "tokens", "revoke", "alice", "--tokens", str(tokens)], check=True, capture_output=True
    )
    assert stat.S_IMODE(tokens.stat().st_mode) == 0o640
