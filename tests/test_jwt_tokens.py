"""JwtVerifier against a real JWKS endpoint on 127.0.0.1 whose keys the tests make, rotate and count fetches of."""

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import anyio.to_thread
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from mcp_server_sessions.server.auth import jwt_tokens
from mcp_server_sessions.server.auth.identity import UserAccessToken
from mcp_server_sessions.server.auth.jwt_tokens import REFRESH_QUIET_S, JwtVerifier

pytestmark = pytest.mark.anyio

ISSUER = "https://auth.example"
AUDIENCE = "https://sessions.example/mcp"


@dataclass(frozen=True)
class Key:
    kid: str
    alg: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    def jwk(self, *, alg: bool = True) -> dict[str, Any]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        jwk.update(kid=self.kid, use="sig")
        if alg:
            jwk["alg"] = self.alg
        return jwk

    def sign(self, *, kid: str | None = "", alg: str = "", **overrides: Any) -> str:
        """A token of this key with the default claims, `overrides` applied (None removes a claim)."""
        now = int(time.time())
        claims: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300}
        claims.update(overrides)
        claims = {name: value for name, value in claims.items() if value is not None}
        headers = {"kid": self.kid if kid == "" else kid}
        if headers["kid"] is None:
            headers = {}
        return jwt.encode(claims, self.private, algorithm=alg or self.alg, headers=headers)


def rsa_key(kid: str) -> Key:
    return Key(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def rsa1() -> Key:
    return rsa_key("rsa-1")


@pytest.fixture(scope="module")
def rsa2() -> Key:
    return rsa_key("rsa-2")


@pytest.fixture(scope="module")
def rogue() -> Key:
    """A key the JWKS does not hold, claiming the kid of one it does."""
    return rsa_key("rsa-1")


@pytest.fixture(scope="module")
def ec1() -> Key:
    return Key("ec-1", "ES256", ec.generate_private_key(ec.SECP256R1()))


class JwksServer:
    """A JWKS endpoint in a thread: `keys` may be swapped at any time; `fetches` counts GETs."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.body: bytes | None = None  # served instead of the key set when set
        self.fetches = 0
        self.gate: threading.Event | None = None  # when set, a GET waits for it (bounded)
        self.arrived = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.fetches += 1
                owner.arrived.set()
                if owner.gate is not None:
                    owner.gate.wait(10)
                body = owner.body if owner.body is not None else json.dumps({"keys": owner.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture
def jwks(rsa1: Key, ec1: Key) -> Iterator[JwksServer]:
    server = JwksServer([rsa1.jwk(), ec1.jwk()])
    try:
        yield server
    finally:
        if server.gate is not None:
            server.gate.set()
        server.stop()


@pytest.fixture
def verifier(jwks: JwksServer) -> JwtVerifier:
    return JwtVerifier(jwks.url, issuer=ISSUER, audience=AUDIENCE)


class Clock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The verifier's clock, moved by the test instead of sleeping."""
    fake = Clock()
    monkeypatch.setattr(jwt_tokens, "monotonic", fake)
    return fake


def handmade(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT would refuse to make: signed with HMAC-SHA256 over `secret`, or unsigned."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest() if secret else b""
    return f"{signing_input}.{b64(signature)}"


def random_kid_token(key: Key) -> str:
    return key.sign(kid=secrets.token_hex(8))


async def test_valid_token_acts_for_its_sub(verifier: JwtVerifier, rsa1: Key) -> None:
    token = rsa1.sign(scope="sessions:read sessions:write", azp="claude-code", exp=int(time.time()) + 600)
    verified = await verifier.verify_token(token)
    assert isinstance(verified, UserAccessToken)
    assert verified.user_id == "alice"
    assert verified.subject == "alice"
    assert verified.token == token
    assert verified.client_id == "claude-code"
    assert verified.scopes == ["sessions:read", "sessions:write"]
    assert verified.expires_at == jwt.decode(token, options={"verify_signature": False})["exp"]
    assert verified.claims == {"iss": ISSUER}


async def test_ec_token_with_an_audience_list_verifies(verifier: JwtVerifier, ec1: Key) -> None:
    verified = await verifier.verify_token(ec1.sign(aud=["other", AUDIENCE], sub="bob", client_id="app"))
    assert isinstance(verified, UserAccessToken)
    assert (verified.user_id, verified.client_id, verified.scopes) == ("bob", "app", [])


async def test_user_claim_other_than_sub(jwks: JwksServer, rsa1: Key) -> None:
    verifier = JwtVerifier(jwks.url, issuer=ISSUER, audience=AUDIENCE, user_claim="email")
    verified = await verifier.verify_token(rsa1.sign(sub="00u1a2b3", email="alice@example.com", scp=["read"]))
    assert isinstance(verified, UserAccessToken)
    assert (verified.user_id, verified.subject) == ("alice@example.com", "00u1a2b3")
    assert verified.client_id == "alice@example.com"
    assert verified.scopes == ["read"]


@dataclass(frozen=True)
class FromNow:
    seconds: int


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"exp": FromNow(-120)}, id="expired"),
        pytest.param({"exp": None}, id="no-exp"),
        pytest.param({"nbf": FromNow(120)}, id="nbf-in-future"),
        pytest.param({"aud": "https://other.example"}, id="wrong-audience"),
        pytest.param({"aud": None}, id="no-audience"),
        pytest.param({"iss": "https://evil.example"}, id="wrong-issuer"),
        pytest.param({"sub": None}, id="no-user-claim"),
        pytest.param({"sub": 42}, id="user-claim-not-a-string"),
        pytest.param({"sub": "alice smith"}, id="user-claim-space"),
        pytest.param({"sub": "alice\n"}, id="user-claim-trailing-newline"),
        pytest.param({"sub": "a" * 129}, id="user-claim-too-long"),
    ],
)
async def test_refused_claims(
    verifier: JwtVerifier, rsa1: Key, overrides: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    now = int(time.time())  # when the test runs, not when it was collected (minutes earlier in a full run)
    token = rsa1.sign(**{k: now + v.seconds if isinstance(v, FromNow) else v for k, v in overrides.items()})
    with caplog.at_level(logging.DEBUG, logger=jwt_tokens.__name__):
        assert await verifier.verify_token(token) is None
    assert "refused" in caplog.text
    assert token not in caplog.text and token.split(".")[2] not in caplog.text


async def test_clock_skew_within_leeway_is_accepted(verifier: JwtVerifier, rsa1: Key) -> None:
    now = int(time.time())
    assert await verifier.verify_token(rsa1.sign(exp=now - 10, nbf=now + 10)) is not None


async def test_signature_by_a_key_not_in_the_jwks_is_refused(
    verifier: JwtVerifier, jwks: JwksServer, rsa1: Key, rogue: Key
) -> None:
    assert await verifier.verify_token(rsa1.sign()) is not None
    assert await verifier.verify_token(rogue.sign()) is None
    assert jwks.fetches == 1


async def test_alg_none_and_hs256_with_the_public_key_as_secret_are_refused(
    verifier: JwtVerifier, jwks: JwksServer, rsa1: Key
) -> None:
    claims = jwt.decode(rsa1.sign(), options={"verify_signature": False})
    pem = rsa1.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for header, secret in [
        ({"alg": "none", "kid": "rsa-1"}, None),
        ({"alg": "none"}, None),
        ({"alg": "HS256", "kid": "rsa-1"}, pem),
        ({"alg": "HS256"}, pem),
        ({"alg": "HS512", "kid": "rsa-1"}, pem),
    ]:
        assert await verifier.verify_token(handmade(header, claims, secret)) is None, header
    jwks.keys = [rsa1.jwk(alg=False)]  # even a JWK naming no alg does not let HS256 through
    assert await verifier.verify_token(handmade({"alg": "HS256", "kid": "rsa-1"}, claims, pem)) is None
    assert jwks.fetches == 0  # refused on the header alone


async def test_token_alg_must_equal_the_jwk_alg(verifier: JwtVerifier, rsa1: Key) -> None:
    assert await verifier.verify_token(rsa1.sign(alg="PS256")) is None
    assert await verifier.verify_token(rsa1.sign(alg="RS512")) is None
    assert await verifier.verify_token(rsa1.sign()) is not None


async def test_jwk_without_alg_takes_the_algs_that_fit_its_key(jwks: JwksServer, rsa1: Key, ec1: Key) -> None:
    jwks.keys = [rsa1.jwk(alg=False), ec1.jwk(alg=False)]
    verifier = JwtVerifier(jwks.url, issuer=ISSUER, audience=AUDIENCE)
    for alg in ("RS256", "RS384", "PS256", "PS512"):
        assert await verifier.verify_token(rsa1.sign(alg=alg)) is not None, alg
    assert await verifier.verify_token(ec1.sign()) is not None
    rsa_kid_claiming_ec = handmade({"alg": "ES256", "kid": "rsa-1"}, {"iss": ISSUER}, b"x")
    assert await verifier.verify_token(rsa_kid_claiming_ec) is None
    ec_kid_claiming_es384 = ec1.sign(alg="ES256").split(".")
    header = base64.urlsafe_b64encode(json.dumps({"alg": "ES384", "kid": "ec-1"}).encode()).rstrip(b"=").decode()
    assert await verifier.verify_token(".".join([header, *ec_kid_claiming_es384[1:]])) is None
    assert jwks.fetches == 1


async def test_token_without_kid_needs_a_jwks_of_one_key(jwks: JwksServer, rsa1: Key, ec1: Key) -> None:
    verifier = JwtVerifier(jwks.url, issuer=ISSUER, audience=AUDIENCE)
    assert await verifier.verify_token(rsa1.sign(kid=None)) is None  # two keys: which one is not said

    jwks.keys = [rsa1.jwk()]
    single = JwtVerifier(jwks.url, issuer=ISSUER, audience=AUDIENCE)
    assert await single.verify_token(rsa1.sign(kid=None)) is not None
    assert await single.verify_token(ec1.sign(kid=None)) is None


async def test_known_kid_verifies_without_io(
    verifier: JwtVerifier, jwks: JwksServer, rsa1: Key, ec1: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await verifier.verify_token(rsa1.sign()) is not None
    assert jwks.fetches == 1

    def no_thread(*args: object, **kwargs: object) -> None:
        raise AssertionError("a known kid went to a thread")

    monkeypatch.setattr(anyio.to_thread, "run_sync", no_thread)
    for _ in range(20):
        assert await verifier.verify_token(rsa1.sign()) is not None
        assert await verifier.verify_token(ec1.sign()) is not None
    assert jwks.fetches == 1


async def test_rotation_is_seen_without_a_restart(
    verifier: JwtVerifier, jwks: JwksServer, rsa1: Key, rsa2: Key
) -> None:
    assert await verifier.verify_token(rsa1.sign()) is not None
    jwks.keys = [*jwks.keys, rsa2.jwk()]
    assert await verifier.verify_token(rsa2.sign()) is not None
    assert jwks.fetches == 2

    jwks.keys = [rsa2.jwk()]  # rsa-1 retired: trusted until the next refresh, which this new kid forces
    assert await verifier.verify_token(rsa1.sign()) is not None
    rsa3 = Key("rsa-3", "RS256", rsa2.private)
    jwks.keys = [rsa2.jwk(), rsa3.jwk()]
    assert await verifier.verify_token(rsa3.sign()) is not None
    assert jwks.fetches == 3
    assert await verifier.verify_token(rsa1.sign()) is None
    assert jwks.fetches == 4


async def test_rotation_right_after_the_first_fetch(
    verifier: JwtVerifier, jwks: JwksServer, rsa1: Key, rsa2: Key
) -> None:
    assert await verifier.verify_token(random_kid_token(rsa1)) is None  # the first fetch starts no quiet window
    jwks.keys = [*jwks.keys, rsa2.jwk()]
    assert await verifier.verify_token(rsa2.sign()) is not None
    assert jwks.fetches == 2


async def test_random_kids_fetch_at_most_once_per_quiet_window(
    verifier: JwtVerifier, jwks: JwksServer, rsa1: Key, rsa2: Key, clock: Clock
) -> None:
    assert await verifier.verify_token(rsa1.sign()) is not None
    for _ in range(30):
        assert await verifier.verify_token(random_kid_token(rsa1)) is None
    assert jwks.fetches == 2

    jwks.keys = [*jwks.keys, rsa2.jwk()]  # published inside the window: seen once it has passed
    assert await verifier.verify_token(rsa2.sign()) is None
    clock.now += REFRESH_QUIET_S - 0.5
    assert await verifier.verify_token(rsa2.sign()) is None
    assert jwks.fetches == 2
    clock.now += 1
    assert await verifier.verify_token(rsa2.sign()) is not None
    assert jwks.fetches == 3
    assert await verifier.verify_token(rsa1.sign()) is not None


async def test_concurrent_unknown_kids_share_one_refresh(
    verifier: JwtVerifier, jwks: JwksServer, rsa1: Key, rsa2: Key
) -> None:
    assert await verifier.verify_token(rsa1.sign()) is not None
    jwks.keys = [*jwks.keys, rsa2.jwk()]
    jwks.arrived.clear()
    jwks.gate = threading.Event()
    results: dict[str, object] = {}

    async def verify(name: str, token: str) -> None:
        results[name] = await verifier.verify_token(token)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(verify, "rotated-0", rsa2.sign())
        assert await anyio.to_thread.run_sync(jwks.arrived.wait, 10)  # its refresh is in flight
        for n in range(10):
            tasks.start_soon(verify, f"random-{n}", random_kid_token(rsa1))
            tasks.start_soon(verify, f"rotated-{n + 1}", rsa2.sign())
        await anyio.wait_all_tasks_blocked()
        jwks.gate.set()

    assert jwks.fetches == 2
    assert all(isinstance(result, UserAccessToken) for name, result in results.items() if name.startswith("rotated"))
    assert all(result is None for name, result in results.items() if name.startswith("random"))
    assert len(results) == 21


async def test_jwks_down_refuses_without_raising(rsa1: Key, caplog: pytest.LogCaptureFixture) -> None:
    down = JwksServer([rsa1.jwk()])
    down.stop()
    verifier = JwtVerifier(down.url, issuer=ISSUER, audience=AUDIENCE)
    with caplog.at_level(logging.WARNING, logger=jwt_tokens.__name__):
        assert await verifier.verify_token(rsa1.sign()) is None
    assert "JWKS" in caplog.text and down.url in caplog.text


async def test_jwks_not_json_refuses_then_recovers(
    verifier: JwtVerifier, jwks: JwksServer, rsa1: Key, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    jwks.body = b"<html>502 Bad Gateway</html>"
    with caplog.at_level(logging.WARNING, logger=jwt_tokens.__name__):
        assert await verifier.verify_token(rsa1.sign()) is None
    assert "cannot be used" in caplog.text
    jwks.body = None
    assert await verifier.verify_token(rsa1.sign()) is None  # within the quiet window: no new fetch
    assert jwks.fetches == 1
    clock.now += REFRESH_QUIET_S
    assert await verifier.verify_token(rsa1.sign()) is not None
    assert jwks.fetches == 2


@pytest.mark.parametrize(
    "body",
    [b'{"keys": []}', b'{"keys": "no"}', b"[1, 2]", b'{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "rsa-1"}]}'],
)
async def test_jwks_without_usable_keys_refuses(
    verifier: JwtVerifier, jwks: JwksServer, rsa1: Key, body: bytes
) -> None:
    jwks.body = body
    assert await verifier.verify_token(rsa1.sign()) is None


async def test_malformed_tokens_are_refused_without_a_fetch(verifier: JwtVerifier, jwks: JwksServer, rsa1: Key) -> None:
    good = rsa1.sign().split(".")
    for token in [
        "",
        "x",
        "a.b.c",
        "....",
        "é.é.é",
        ".".join([good[0], good[1]]),
        rsa1.sign() + "A" * jwt_tokens.MAX_TOKEN_CHARS,
        handmade({"alg": ["RS256"], "kid": "rsa-1"}, {}, b"x"),
        handmade({"alg": "RS256", "kid": ["rsa-1"]}, {}, b"x"),
        base64.urlsafe_b64encode(b"[1]").decode().rstrip("=") + "." + good[1] + "." + good[2],
    ]:
        assert await verifier.verify_token(token) is None, token[:40]
    assert jwks.fetches == 0


async def test_a_token_verified_once_is_not_checked_again_until_it_expires(
    verifier: JwtVerifier, rsa1: Key, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = rsa1.sign(exp=int(time.time()) + 600)
    first = await verifier.verify_token(token)
    assert first is not None
    decodes = 0
    real_decode = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        nonlocal decodes
        decodes += 1
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt_tokens.jwt, "decode", counting_decode)
    assert await verifier.verify_token(token) is first
    assert decodes == 0
    # Past its exp (and the leeway) the remembered token is checked again, and PyJWT decides.
    monkeypatch.setattr(jwt_tokens, "time", lambda: time.time() + 600 + jwt_tokens.LEEWAY_S + 1)
    assert await verifier.verify_token(token) is not None
    assert decodes == 1


async def test_withdrawing_a_key_forgets_the_tokens_it_verified(
    verifier: JwtVerifier, jwks: JwksServer, rsa1: Key, rsa2: Key
) -> None:
    token = rsa1.sign()
    assert await verifier.verify_token(token) is not None
    jwks.keys = [rsa2.jwk()]  # rsa-1 withdrawn; the next unknown kid refreshes the keys
    assert await verifier.verify_token(rsa2.sign()) is not None
    assert await verifier.verify_token(token) is None


async def test_keys_older_than_their_max_age_are_fetched_again_and_a_withdrawn_key_stops(
    verifier: JwtVerifier, jwks: JwksServer, rsa1: Key, ec1: Key, clock: Clock
) -> None:
    token = rsa1.sign()
    assert await verifier.verify_token(token) is not None
    jwks.keys = [ec1.jwk()]  # rsa-1 withdrawn, and no token with a new kid comes to force a refresh
    clock.now += jwt_tokens.KEYS_MAX_AGE_S - 1
    assert await verifier.verify_token(token) is not None
    assert jwks.fetches == 1
    clock.now += 2
    assert await verifier.verify_token(token) is None  # remembered, but the keys were due: checked again
    assert await verifier.verify_token(rsa1.sign(sub="bob")) is None
    assert jwks.fetches == 2
    assert await verifier.verify_token(ec1.sign()) is not None


async def test_keys_due_for_a_refresh_keep_working_while_the_jwks_is_down(
    verifier: JwtVerifier, jwks: JwksServer, rsa1: Key, clock: Clock
) -> None:
    assert await verifier.verify_token(rsa1.sign()) is not None
    jwks.body = b"<html>maintenance</html>"
    clock.now += jwt_tokens.KEYS_MAX_AGE_S + 1
    assert await verifier.verify_token(rsa1.sign(sub="bob")) is not None  # the refresh failed: old keys stay
    assert jwks.fetches == 2
    assert await verifier.verify_token(rsa1.sign(sub="carol")) is not None  # quiet: no fetch per request
    assert jwks.fetches == 2


async def test_a_jwks_that_breaks_the_parser_refuses_quietly_without_raising(
    verifier: JwtVerifier, jwks: JwksServer, rsa1: Key
) -> None:
    jwks.body = b'{"keys": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"  # RecursionError in json, not ValueError
    assert await verifier.verify_token(rsa1.sign()) is None
    assert await verifier.verify_token(rsa1.sign(sub="bob")) is None
    assert jwks.fetches == 1  # the failure started the quiet window like any other
