"""Bearer-token verification cost per request: the token file and JWT access tokens (RS256, ES256).

`TokenFile.verify_token` over a file of 100 users (each call stats the file, hashes the token and
compares it with every line in constant time), for a valid token and for an unknown one.
`JwtVerifier.verify_token` for RS256 (2048-bit) and ES256 tokens whose keys the bench generates with
`cryptography` and serves as a JWKS on 127.0.0.1 from a thread. The first call fetches the JWKS and is
reported apart; the timed calls after it find the key cached. Two cases per algorithm: a token never
seen before on every call (the signature is checked each time), and 100 tokens each verified once
before (the verifier may remember a verified token until it expires: a client's next request). Target:
<= 0.1 ms median. Each call is timed alone (perf_counter_ns around one awaited call, in one event loop).
Run: ``python -m bench.token_verify [--quick] [--calls N] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mcp_server_sessions.server.auth.file_verifier import TokenFile
from mcp_server_sessions.server.auth.token_file import token_hash

USERS = 100
TARGET_MEDIAN_US = 100.0
ISSUER, AUDIENCE = "https://auth.bench.invalid", "https://sessions.bench.invalid"
JWT_MISSING = (
    "mcp_server_sessions.server.auth.jwt_tokens is not importable here: a strict editable install links only "
    "the modules present when `pip install -e .` last ran, so re-run it to measure JWT verification"
)

Verify = Callable[[str], Awaitable[Any]]


async def timed_calls(
    verify: Verify, first: str, tokens: list[str], calls: int, accepted: bool, seen: bool = False
) -> dict[str, Any]:
    """The first call's µs (on `first`), then `calls` more timed one by one, cycling through `tokens`.

    With `seen`, every token of `tokens` is verified once, untimed, before the timed calls.
    """
    t0 = time.perf_counter_ns()
    result = await verify(first)
    first_us = (time.perf_counter_ns() - t0) / 1000
    assert (result is not None) == accepted, f"first call: {result!r}"
    if seen:
        for token in tokens:
            await verify(token)
    samples = []
    for i in range(calls):
        token = tokens[i % len(tokens)]
        t0 = time.perf_counter_ns()
        result = await verify(token)
        samples.append((time.perf_counter_ns() - t0) / 1000)
        assert (result is not None) == accepted, result
    ordered = sorted(samples)
    return {
        "calls": calls,
        "first_us": first_us,
        "median_us": statistics.median(ordered),
        "p99_us": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "max_us": ordered[-1],
    }


async def token_file_costs(workdir: pathlib.Path, calls: int) -> dict[str, Any]:
    path = workdir / "tokens"
    tokens = [secrets.token_urlsafe(32) for _ in range(USERS)]  # as `tokens add` makes them
    path.write_text("# bench\n" + "".join(f"user-{i:03d} {token_hash(t)}\n" for i, t in enumerate(tokens)))
    strangers = [secrets.token_urlsafe(32) for _ in range(16)]
    valid, unknown = TokenFile(path).verify_token, TokenFile(path).verify_token
    return {
        "token file, valid token": await timed_calls(valid, tokens[-1], tokens, calls, accepted=True),
        "token file, unknown token": await timed_calls(unknown, strangers[-1], strangers, calls, accepted=False),
    }


@contextmanager
def jwks_server(jwks: dict[str, Any]) -> Iterator[str]:
    """Serves `jwks` at http://127.0.0.1:PORT/jwks.json from a thread; yields the URL."""
    body = json.dumps(jwks).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def jwt_costs(calls: int, new_calls: int) -> dict[str, Any]:
    """Per algorithm: tokens never seen before (the signature checked each time, the JWKS cached), and
    tokens the verifier has seen (it may remember a verified token until it expires)."""
    try:
        from mcp_server_sessions.server.auth.jwt_tokens import JwtVerifier
    except ModuleNotFoundError as exc:
        if exc.name != "mcp_server_sessions.server.auth.jwt_tokens":
            raise
        return {"unavailable": JWT_MISSING}
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    keys = {
        "RS256": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ES256": ec.generate_private_key(ec.SECP256R1()),
    }
    jwks: dict[str, list[dict[str, Any]]] = {"keys": []}
    for alg, key in keys.items():
        public = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(key.public_key()))
        jwks["keys"].append({**public, "kid": f"bench-{alg}", "alg": alg, "use": "sig"})

    def token(alg: str, n: int) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": f"user-{n % USERS:03d}",
            "iat": now,
            "exp": now + 3600,
            "jti": str(n),  # every token distinct
        }
        return jwt.encode(claims, keys[alg], algorithm=alg, headers={"kid": f"bench-{alg}"})

    results: dict[str, Any] = {}
    with jwks_server(jwks) as url:
        for alg in keys:
            tokens = [token(alg, n) for n in range(new_calls + 1 + USERS)]
            first, new, known = tokens[0], tokens[1 : new_calls + 1], tokens[new_calls + 1 :]
            verifier = JwtVerifier(url, issuer=ISSUER, audience=AUDIENCE)
            fresh = await timed_calls(verifier.verify_token, first, new, new_calls, accepted=True)
            results[f"JWT {alg}, a new token each call"] = {**fresh, "first_call_fetches_jwks": True}
            verifier = JwtVerifier(url, issuer=ISSUER, audience=AUDIENCE)
            again = await timed_calls(verifier.verify_token, first, known, calls, accepted=True, seen=True)
            results[f"JWT {alg}, {USERS} tokens each seen before"] = {**again, "first_call_fetches_jwks": True}
    return results


async def main_async(quick: bool, calls: int | None = None) -> dict[str, Any]:
    calls = calls or (2_000 if quick else 20_000)
    with tempfile.TemporaryDirectory(prefix="bench-tokens-") as tmp:
        costs = await token_file_costs(pathlib.Path(tmp), calls)
    jwt_results = await jwt_costs(calls, calls // 10)  # signing the new tokens is the slow part
    notes = {}
    if "unavailable" in jwt_results:
        notes["jwt"] = jwt_results["unavailable"]
    else:
        costs.update(jwt_results)
    return {
        "users": USERS,
        "target_median_us": TARGET_MEDIAN_US,
        "verifiers": costs,
        "notes": notes,
        "target_met": all(c["median_us"] <= TARGET_MEDIAN_US for c in costs.values()) and not notes,
    }


def markdown(result: dict[str, Any]) -> str:
    rows = [
        f"| verify_token ({result['users']}-user token file; JWKS cached) | calls | first call us | median us "
        f"| p99 us | median <= {result['target_median_us']:g} us |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, c in result["verifiers"].items():
        first = f"{c['first_us']:.0f}" + (" (fetches the JWKS)" if c.get("first_call_fetches_jwks") else "")
        met = "yes" if c["median_us"] <= result["target_median_us"] else "**no**"
        rows.append(f"| {name} | {c['calls']:,} | {first} | {c['median_us']:.1f} | {c['p99_us']:.1f} | {met} |")
    rows += [f"\nNot measured: {note}." for note in result["notes"].values()]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls: checks the bench runs")
    parser.add_argument("--calls", type=int, help="timed calls per row (JWT new tokens: a tenth)")
    parser.add_argument("--json", type=pathlib.Path, help="write the full results here")
    args = parser.parse_args(argv)
    result = asyncio.run(main_async(args.quick, args.calls))
    print(markdown(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
