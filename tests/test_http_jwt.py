"""JWT mode over streamable HTTP (issue 9, "JWT mode"): the installed console script serving
`serve --transport http --jwks-url URL --issuer ISS --audience AUD [--user-claim ...]` as a subprocess on
127.0.0.1, against a JWKS the tests serve on 127.0.0.1 with keys they generate (`cryptography`), driven by the
SDK's streamable HTTP client and by plain httpx.

Four servers start together once per module (each is ~1 s of imports):
- `main`: RS256 and ES256 keys, user = `sub`; its JWKS never changes, so its tests share it (own subs each);
- `email`: the same JWKS, `--user-claim email`;
- `rotating`: its own JWKS, whose keys the rotation test swaps while the server runs;
- `late`: started while its JWKS is down; the module's first test sees its 401s, then brings the JWKS up.
  The verifier fetches again only `REFRESH_QUIET_S` after a fruitless fetch, so the recovery test is the
  module's last: most of that window passes while the other tests run."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mcp_server_sessions.server.auth.jwt_tokens import REFRESH_QUIET_S
from tests.helpers import call_error, call_ok, table_counts
from tests.http_server import (
    INITIALIZE,
    METADATA_PATH,
    START_TIMEOUT,
    HttpServer,
    answer,
    assert_unauthorized,
    bearer,
    http_client,
    post_mcp,
    start_http_server,
    tool_call,
)
from tests.test_jwt_tokens import AUDIENCE, ISSUER, JwksServer, Key, handmade, rsa_key

TIMEOUT = 60  # seconds for a block of calls; generous for a loaded 2-core machine


# -- keys, JWKS endpoints and the servers ---------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    rsa1: Key
    ec1: Key
    rogue: Key
    """Not in any JWKS, but claims the kid of `rsa1`."""
    stranger: Key
    """Not in any JWKS, with a kid no JWKS has."""
    rsa2: Key
    rsa3: Key


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        rsa1=rsa_key("rsa-1"),
        ec1=Key("ec-1", "ES256", ec.generate_private_key(ec.SECP256R1())),
        rogue=rsa_key("rsa-1"),
        stranger=rsa_key("rsa-9"),
        rsa2=rsa_key("rsa-2"),
        rsa3=rsa_key("rsa-3"),
    )


class LateJwks:
    """A `JwksServer` whose URL is known before it serves: closed at once, brought up on the same port later."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.jwks = JwksServer(keys)
        self.port = self.jwks.httpd.server_address[1]
        self._handler = self.jwks.httpd.RequestHandlerClass  # counts into self.jwks, serves self.jwks.keys
        self.jwks.stop()
        self.up = False
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.jwks.url

    def start(self) -> None:
        with self._lock:
            if self.up:
                return
            httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)  # SO_REUSEADDR: same port
            self.jwks.httpd = httpd
            self.jwks.thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
            self.jwks.thread.start()
            self.up = True

    def stop(self) -> None:
        if self.up:
            self.jwks.stop()


@dataclass
class Deployment:
    jwks: JwksServer
    """The JWKS of `main` and `email`: rsa-1 (RS256) and ec-1 (ES256), never changed."""
    main: HttpServer
    main_db: Path
    email: HttpServer
    rotating_jwks: JwksServer
    rotating: HttpServer
    late_jwks: LateJwks
    late: HttpServer


def jwt_flags(jwks_url: str, *extra: str) -> tuple[str, ...]:
    return ("--jwks-url", jwks_url, "--issuer", ISSUER, "--audience", AUDIENCE, *extra)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("http-jwt")
    jwks = JwksServer([keys.rsa1.jwk(), keys.ec1.jwk()])
    rotating_jwks = JwksServer([keys.rsa1.jwk()])
    late_jwks = LateJwks([keys.rsa1.jwk()])
    flags = {
        "main": jwt_flags(jwks.url),
        "email": jwt_flags(jwks.url, "--user-claim", "email"),
        "rotating": jwt_flags(rotating_jwks.url),
        "late": jwt_flags(late_jwks.url),
    }
    servers: dict[str, HttpServer] = {}
    try:
        with ThreadPoolExecutor(len(flags)) as pool:
            starting = {
                name: pool.submit(start_http_server, tmp, tmp / f"{name}.db", *args) for name, args in flags.items()
            }
            failures = []
            for name, future in starting.items():
                try:
                    servers[name] = future.result()
                except AssertionError as failure:
                    failures.append(f"{name}: {failure}")
            assert not failures, "\n".join(failures)
        assert late_jwks.jwks.fetches == 0 and not late_jwks.up  # it started while its JWKS was down
        yield Deployment(
            jwks=jwks,
            main=servers["main"],
            main_db=tmp / "main.db",
            email=servers["email"],
            rotating_jwks=rotating_jwks,
            rotating=servers["rotating"],
            late_jwks=late_jwks,
            late=servers["late"],
        )
    finally:
        with ThreadPoolExecutor(len(flags)) as pool:
            list(pool.map(HttpServer.stop, servers.values()))  # in parallel: each waits for a graceful exit
        for endpoint in (jwks, rotating_jwks, late_jwks):
            endpoint.stop()


# -- plain HTTP helpers ---------------------------------------------------------------------------


def start_session_as(server: HttpServer, token: str, session_id: str) -> dict[str, Any]:
    """`start_session` by plain HTTP with `token`; its structured content (the token must be accepted)."""
    result = answer(post_mcp(server.mcp_url, tool_call(2, "start_session", session_id=session_id), bearer(token)), 2)
    assert result["result"]["isError"] is False, result
    structured: dict[str, Any] = result["result"]["structuredContent"]
    return structured


def public_pem(key: Key) -> bytes:
    return key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


# -- the JWKS endpoint down when the server starts (first: its quiet window passes while the others run) --


def test_jwks_down_at_start_the_server_starts_and_refuses_with_401(deployment: Deployment, keys: Keys) -> None:
    server, late = deployment.late, deployment.late_jwks
    healthz = httpx.get(server.base_url + "/healthz", timeout=30)
    assert healthz.status_code == 200 and healthz.json() == {"status": "ok"}, healthz.text
    if late.up:
        pytest.skip("the JWKS of this server is already up")  # the recovery test ran first
    token = keys.rsa1.sign(sub="late-user")
    for body in (INITIALIZE, tool_call(2, "start_session", session_id="late-1")):
        for _ in range(3):
            assert_unauthorized(post_mcp(server.mcp_url, body, bearer(token)), server.base_url)
    assert server.process.poll() is None
    metadata = httpx.get(server.base_url + METADATA_PATH, timeout=30)
    assert metadata.status_code == 200 and metadata.json()["authorization_servers"] == [ISSUER], metadata.text
    log = server.stderr()
    assert "JWKS" in log and late.url in log, log
    assert "Traceback" not in log, log
    late.start()  # the recovery test, the module's last, finds it up once the quiet window has passed


# -- a valid token acts for its sub ----------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_a_valid_token_acts_for_its_sub(deployment: Deployment, keys: Keys, alg: str) -> None:
    key = keys.rsa1 if alg == "RS256" else keys.ec1
    sub = f"sub-{alg.lower()}"
    token = key.sign(sub=sub, email="someone.else@example.com")  # other claims do not name the user
    assert jwt.get_unverified_header(token)["alg"] == alg
    with anyio.fail_after(TIMEOUT):
        async with http_client(deployment.main.mcp_url, token) as client:
            started = await call_ok(client, "start_session", session_id=f"valid-{alg}", name=f"By {alg}")
            assert (started["user_id"], started["created"]) == (sub, True), started
            read = await call_ok(client, "get_session", session_id=f"valid-{alg}")
            assert (read["user_id"], read["name"]) == (sub, f"By {alg}"), read
            listed = await call_ok(client, "list_sessions")
            assert [s["session_id"] for s in listed["sessions"]] == [f"valid-{alg}"], listed
    # a plain HTTP client with the same token is the same user
    assert start_session_as(deployment.main, token, f"valid-{alg}") == {**started, "created": False}


@pytest.mark.anyio
async def test_tokens_of_different_subs_do_not_see_each_others_sessions(deployment: Deployment, keys: Keys) -> None:
    url = deployment.main.mcp_url
    alice_token, bob_token = keys.rsa1.sign(sub="iso-alice"), keys.ec1.sign(sub="iso-bob")
    with anyio.fail_after(TIMEOUT):
        async with http_client(url, alice_token) as alice, http_client(url, bob_token) as bob:
            # the same session id is two sessions, one per user
            mine = await call_ok(alice, "start_session", session_id="iso-plans", name="Alice's plans")
            his = await call_ok(bob, "start_session", session_id="iso-plans", name="Bob's plans")
            assert (mine["user_id"], mine["created"], his["user_id"], his["created"]) == (
                "iso-alice",
                True,
                "iso-bob",
                True,
            )
            await call_ok(bob, "start_session", session_id="iso-bob-only", name="Bassoon secrets")
            await call_ok(
                bob, "record_run", session_id="iso-bob-only", input="bob plays the bassoon", output="marimba answers"
            )

            listed = await call_ok(alice, "list_sessions", limit=100)
            assert [(s["session_id"], s["name"]) for s in listed["sessions"]] == [("iso-plans", "Alice's plans")]
            assert (await call_ok(alice, "get_session", session_id="iso-plans"))["name"] == "Alice's plans"
            found = await call_ok(alice, "search_previous_sessions", query="bassoon marimba", limit=100)
            assert "bassoon" not in json.dumps(found).lower(), found

            foreign = await call_error(alice, "get_session", session_id="iso-bob-only")
            missing = await call_error(alice, "get_session", session_id="iso-nobody-has-this")
            assert foreign.replace("iso-bob-only", "<id>") == missing.replace("iso-nobody-has-this", "<id>")
            await call_error(alice, "get_chat_history", session_id="iso-bob-only")
            await call_error(alice, "delete_session", session_id="iso-bob-only")

            # bob still has everything, and sees nothing of alice's
            listed = await call_ok(bob, "list_sessions", limit=100)
            assert sorted((s["session_id"], s["name"]) for s in listed["sessions"]) == [
                ("iso-bob-only", "Bassoon secrets"),
                ("iso-plans", "Bob's plans"),
            ]
            history = await call_ok(bob, "get_chat_history", session_id="iso-bob-only")
            assert "bob plays the bassoon" in json.dumps(history), history


@pytest.mark.anyio
async def test_a_user_id_naming_another_user_is_refused(deployment: Deployment, keys: Keys) -> None:
    token = keys.rsa1.sign(sub="uid-alice")
    with anyio.fail_after(TIMEOUT):
        async with http_client(deployment.main.mcp_url, token) as client:
            before = table_counts(deployment.main_db)
            for tool, arguments in [
                ("start_session", {"session_id": "uid-stolen"}),
                ("record_run", {"session_id": "uid-stolen", "input": "in", "output": "out"}),
                ("list_sessions", {}),
                ("get_session", {"session_id": "uid-stolen"}),
            ]:
                for other in ("uid-bob", "UID-ALICE", "default"):
                    message = await call_error(client, tool, user_id=other, **arguments)
                    assert message.startswith("This token acts as user 'uid-alice'"), (tool, other, message)
                    assert "omit user_id" in message, message
            assert table_counts(deployment.main_db) == before
            # the token's own user, named, is fine
            mine = await call_ok(client, "start_session", session_id="uid-mine", user_id="uid-alice")
            assert (mine["user_id"], mine["created"]) == ("uid-alice", True)


# -- 401 with the metadata challenge ----------------------------------------------------------------

Refused = Callable[[Keys], dict[str, str]]
"""The headers of a request that must be refused, made with the module's keys."""

REFUSED: dict[str, Refused] = {
    "no token": lambda k: {},
    "bearer without a token": lambda k: {"Authorization": "Bearer"},
    "expired": lambda k: bearer(k.rsa1.sign(iat=int(time.time()) - 900, exp=int(time.time()) - 600)),
    "not yet valid": lambda k: bearer(k.rsa1.sign(nbf=int(time.time()) + 600)),
    "wrong audience": lambda k: bearer(k.rsa1.sign(aud="https://other.example/mcp")),
    "no audience": lambda k: bearer(k.ec1.sign(aud=None)),
    "wrong issuer": lambda k: bearer(k.ec1.sign(iss="https://evil.example")),
    "key not in the jwks, known kid": lambda k: bearer(k.rogue.sign()),
    "key not in the jwks, unknown kid": lambda k: bearer(k.stranger.sign()),
    "alg none": lambda k: bearer(handmade({"alg": "none", "kid": "rsa-1"}, claims_of(k.rsa1.sign()), None)),
    "alg none without kid": lambda k: bearer(handmade({"alg": "none"}, claims_of(k.rsa1.sign()), None)),
    "hs256 keyed with the public key": lambda k: bearer(
        handmade({"alg": "HS256", "kid": "rsa-1"}, claims_of(k.rsa1.sign()), public_pem(k.rsa1))
    ),
    "signature of another token": lambda k: bearer(
        ".".join([*k.rsa1.sign(sub="victim").split(".")[:2], k.rsa1.sign(sub="other").split(".")[2]])
    ),
    "garbage": lambda k: bearer("garbage"),
    "three garbage segments": lambda k: bearer("a.b.c"),
    "no user claim": lambda k: bearer(k.rsa1.sign(sub=None)),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_request_without_a_valid_token_gets_401_pointing_at_the_metadata(
    deployment: Deployment, keys: Keys, case: str
) -> None:
    server, headers = deployment.main, REFUSED[case](keys)
    before = table_counts(deployment.main_db)
    for body in (INITIALIZE, tool_call(2, "start_session", session_id="must-not-exist")):
        assert_unauthorized(post_mcp(server.mcp_url, body, headers), server.base_url)
    assert table_counts(deployment.main_db) == before
    assert deployment.main.process.poll() is None


def test_the_same_requests_with_valid_tokens_are_answered(deployment: Deployment, keys: Keys) -> None:
    """The control of the 401 cases: they differ from these only in the token."""
    for key in (keys.rsa1, keys.ec1):
        initialized = answer(post_mcp(deployment.main.mcp_url, INITIALIZE, bearer(key.sign(sub="control"))), 1)
        assert initialized["result"]["serverInfo"]["name"] == "mcp-server-sessions", initialized
    assert start_session_as(deployment.main, keys.ec1.sign(sub="control"), "control-1")["user_id"] == "control"


def test_the_resource_metadata_names_the_issuer_as_authorization_server(deployment: Deployment) -> None:
    server = deployment.main
    response = httpx.get(server.base_url + METADATA_PATH, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["resource"] == server.base_url, document
    assert document["authorization_servers"] == [ISSUER], document
    challenge = post_mcp(server.mcp_url, INITIALIZE, {}).headers["www-authenticate"]
    assert f'resource_metadata="{response.url}"' in challenge, (challenge, response.url)


# -- --user-claim email ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_user_claim_email_makes_the_email_the_user(deployment: Deployment, keys: Keys) -> None:
    server = deployment.email
    carol = keys.rsa1.sign(sub="00u-carol-laptop", email="carol@example.com")
    carol_again = keys.ec1.sign(sub="00u-carol-phone", email="carol@example.com")  # another sub, the same user
    with anyio.fail_after(TIMEOUT):
        async with http_client(server.mcp_url, carol) as client:
            started = await call_ok(client, "start_session", session_id="mail-1", name="By email")
            assert (started["user_id"], started["created"]) == ("carol@example.com", True), started
            message = await call_error(client, "get_session", session_id="mail-1", user_id="00u-carol-laptop")
            assert message.startswith("This token acts as user 'carol@example.com'"), message
        async with http_client(server.mcp_url, carol_again) as client:
            read = await call_ok(client, "get_session", session_id="mail-1")
            assert (read["user_id"], read["name"]) == ("carol@example.com", "By email"), read
    # a token without the claim names no user; the same token with it is accepted
    assert_unauthorized(post_mcp(server.mcp_url, INITIALIZE, bearer(keys.rsa1.sign(sub="00u-dave"))), server.base_url)
    dave = keys.rsa1.sign(sub="00u-dave", email="dave@example.com")
    assert start_session_as(server, dave, "mail-2")["user_id"] == "dave@example.com"


# -- key rotation without a restart ---------------------------------------------------------------


def test_rotated_keys_are_used_without_a_restart(deployment: Deployment, keys: Keys) -> None:
    server, jwks = deployment.rotating, deployment.rotating_jwks
    pid = server.process.pid
    old = keys.rsa1.sign(sub="rot-old")
    assert start_session_as(server, old, "rot-1")["user_id"] == "rot-old"
    assert jwks.fetches == 1

    # the authorization server publishes rsa-2: a token of it works on the very next request
    jwks.keys = [keys.rsa1.jwk(), keys.rsa2.jwk()]
    new = keys.rsa2.sign(sub="rot-new")
    assert start_session_as(server, new, "rot-2")["user_id"] == "rot-new"
    assert jwks.fetches == 2
    assert start_session_as(server, old, "rot-1")["created"] is False  # rsa-1 still published: still good

    # rsa-1 withdrawn, rsa-3 published: the first rsa-3 token refreshes the keys, and rsa-1 is refused
    jwks.keys = [keys.rsa2.jwk(), keys.rsa3.jwk()]
    assert start_session_as(server, keys.rsa3.sign(sub="rot-newest"), "rot-3")["user_id"] == "rot-newest"
    assert jwks.fetches == 3
    for token in (old, keys.rsa1.sign(sub="rot-old")):  # the token accepted before, and a fresh one
        assert_unauthorized(
            post_mcp(server.mcp_url, tool_call(2, "start_session", session_id="rot-4"), bearer(token)), server.base_url
        )
    assert start_session_as(server, new, "rot-2")["created"] is False
    assert server.process.poll() is None and server.process.pid == pid


def poll_until(
    request: Callable[[], httpx.Response], timeout: float = REFRESH_QUIET_S + START_TIMEOUT
) -> httpx.Response:
    """Repeats `request` until it is answered 200 (bounded): after a fruitless JWKS fetch the verifier fetches
    again only once its quiet window has passed. Every refusal meanwhile must be a clean 401."""
    deadline = time.monotonic() + timeout
    while True:
        response = request()
        if response.status_code == 200:
            return response
        assert response.status_code == 401, (response.status_code, response.text)
        assert time.monotonic() < deadline, f"still refused after {timeout} s: {response.headers}"
        time.sleep(0.1)  # bounded by the deadline: polling until a time-based window has passed


# -- the JWKS endpoint down when the server started: tokens work once it is up ----------------


def test_jwks_down_at_start_tokens_work_once_it_is_up(deployment: Deployment, keys: Keys) -> None:
    server, late = deployment.late, deployment.late_jwks
    token = keys.rsa1.sign(sub="late-user")
    if not late.up:  # run alone: first the refusal while down
        assert_unauthorized(post_mcp(server.mcp_url, INITIALIZE, bearer(token)), server.base_url)
        late.start()
    accepted = poll_until(
        lambda: post_mcp(server.mcp_url, tool_call(2, "start_session", session_id="late-1"), bearer(token))
    )
    assert answer(accepted, 2)["result"]["structuredContent"]["user_id"] == "late-user"
    assert late.jwks.fetches >= 1
    assert start_session_as(server, keys.rsa1.sign(sub="late-user"), "late-1")["created"] is False
    assert server.process.poll() is None
