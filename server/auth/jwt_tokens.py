"""Bearer tokens that are JWTs from an OAuth 2.1 authorization server, verified against its JWKS."""

import base64
import json
import logging
import re
from collections import OrderedDict
from time import monotonic, time
from typing import Any

import anyio
import anyio.to_thread
import jwt
from mcp.server.auth.provider import AccessToken

from mcp_server_sessions.store.limits import ID_PATTERN

from .identity import UserAccessToken

logger = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
"""Asymmetric only: `none` and HS* (whose secret could be a published public key) are never accepted."""
MAX_TOKEN_CHARS = 16_384
LEEWAY_S = 30
"""Clock skew tolerated on `exp` and `nbf`."""
REFRESH_QUIET_S = 10.0
"""After a JWKS refresh that did not yield the key asked for, none for this long: random kids cannot make
the server fetch the JWKS per request. A new key published in that window is seen once it has passed."""
FETCH_TIMEOUT_S = 10.0
KEYS_MAX_AGE_S = 300.0
"""Keys older than this are fetched again (by one request; the others go on with the old keys meanwhile),
so a key the issuer withdrew stops verifying tokens even if no token with a new kid forces a refresh."""
MAX_REMEMBERED = 4096
"""Verified tokens kept, so a client's next request with the same token skips the signature check."""
_USER = re.compile(ID_PATTERN)

_Key = dict[str, jwt.PyJWK]
"""One JWKS key, by the algorithm it verifies: only the JWK's `alg` if it names one, else each that fits it."""


class JwtVerifier:
    """A `TokenVerifier` of JWT access tokens, its keys fetched on first use and again on an unknown kid."""

    def __init__(self, jwks_url: str, *, issuer: str, audience: str, user_claim: str = "sub") -> None:
        self.issuer, self.audience, self.user_claim = issuer, audience, user_claim
        self._client = jwt.PyJWKClient(jwks_url, cache_jwk_set=False, timeout=FETCH_TIMEOUT_S)
        self._keys: dict[str, _Key] = {}
        self._sole: _Key | None = None  # the JWKS's only signing key, for a token without kid
        self._loaded = False
        self._generation = 0  # refreshes completed
        self._quiet_until = 0.0
        self._fresh_until = 0.0
        self._refresh_lock = anyio.Lock()
        self._remembered: OrderedDict[str, UserAccessToken] = OrderedDict()
        """Tokens verified with the current keys, until they expire; forgotten whenever the keys change."""

    async def verify_token(self, token: str) -> AccessToken | None:
        known = self._remembered.pop(token, None)
        if (
            known is not None
            and known.expires_at is not None
            and time() <= known.expires_at + LEEWAY_S
            and (
                monotonic() < self._fresh_until  # keys due for a refresh: check the token again, which refreshes
            )
        ):
            self._remembered[token] = known  # now the most recently used
            return known
        try:
            verified = await self._verified(token)
        except jwt.PyJWTError as exc:  # every refusal, PyJWT's and this module's
            logger.debug("bearer JWT refused: %s", exc)
            return None
        self._remembered[token] = verified
        if len(self._remembered) > MAX_REMEMBERED:
            self._remembered.popitem(last=False)
        return verified

    async def _verified(self, token: str) -> UserAccessToken:
        if not token or len(token) > MAX_TOKEN_CHARS:
            raise jwt.InvalidTokenError(f"empty or longer than {MAX_TOKEN_CHARS} characters")
        header = _unverified_header(token)
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            raise jwt.InvalidAlgorithmError(f"algorithm {alg!r:.20} is not accepted")
        if kid is not None and not isinstance(kid, str):
            raise jwt.InvalidTokenError("kid is not a string")
        key = await self._key(kid)
        if key is None:
            raise jwt.InvalidTokenError(f"no key in the JWKS for kid {kid!r:.40}")
        if alg not in key:
            raise jwt.InvalidAlgorithmError(f"algorithm {alg} does not fit the key of kid {kid!r:.40}")
        claims = jwt.decode(
            token,
            key[alg],
            algorithms=[alg],
            audience=self.audience,
            issuer=self.issuer,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iss", "aud"], "enforce_minimum_key_length": True},
        )
        user = claims.get(self.user_claim)
        if not isinstance(user, str) or not _USER.fullmatch(user):
            raise jwt.InvalidTokenError(f"claim {self.user_claim!r} is not a valid user id")
        client_id = next((claims[n] for n in ("azp", "client_id") if isinstance(claims.get(n), str)), user)
        sub = claims.get("sub")
        return UserAccessToken(
            token=token,
            client_id=client_id,
            scopes=_scopes(claims),
            expires_at=int(claims["exp"]),
            subject=sub if isinstance(sub, str) else None,
            claims={"iss": claims["iss"]},
            user_id=user,
        )

    async def _key(self, kid: str | None) -> _Key | None:
        key = self._lookup(kid)
        now = monotonic()
        fresh = now < self._fresh_until
        if (key is not None and (fresh or self._refresh_lock.locked())) or now < self._quiet_until:
            return key
        generation = self._generation
        async with self._refresh_lock:
            # A refresh made while this request waited is shared, not repeated.
            if self._generation == generation and monotonic() >= self._quiet_until:
                first = not self._loaded
                if not await self._refresh() or (not first and self._lookup(kid) is None):
                    self._quiet_until = monotonic() + REFRESH_QUIET_S
            return self._lookup(kid)

    def _lookup(self, kid: str | None) -> _Key | None:
        return self._sole if kid is None else self._keys.get(kid)

    async def _refresh(self) -> bool:
        try:
            self._keys, signing = await anyio.to_thread.run_sync(self._fetch)
        except Exception as exc:  # unreachable, not JSON, too deep, not a key set: tokens of new keys wait
            logger.warning(
                "JWKS %s cannot be used, tokens of keys not seen before are refused: %s", self._client.uri, exc
            )
            return False
        finally:
            self._generation += 1
        self._sole = signing[0] if len(signing) == 1 else None
        self._loaded = True
        self._fresh_until = monotonic() + KEYS_MAX_AGE_S
        self._remembered.clear()  # a key the server withdrew must not keep its tokens alive
        return True

    def _fetch(self) -> tuple[dict[str, _Key], list[_Key]]:
        """The JWKS's signing keys by kid, and all of them (a key may lack a kid); blocking I/O."""
        data = self._client.fetch_data()
        raw_keys = data.get("keys")
        if not isinstance(raw_keys, list):
            raise jwt.PyJWKSetError("no 'keys' list")
        by_kid: dict[str, _Key] = {}
        signing: list[_Key] = []
        for raw in raw_keys:
            if not isinstance(raw, dict) or raw.get("use") not in ("sig", None):
                continue
            named = raw.get("alg")
            key: _Key = {}
            for alg in ALGORITHMS if named is None else [named]:
                if alg in ALGORITHMS:
                    try:
                        key[alg] = jwt.PyJWK(raw, alg)
                    except (jwt.PyJWTError, TypeError, ValueError):
                        continue  # not a key of this algorithm, or not a usable key at all
            if key:
                signing.append(key)
                if isinstance(raw.get("kid"), str):
                    by_kid.setdefault(raw["kid"], key)
        if not signing:
            raise jwt.PyJWKSetError("no usable signing key")
        return by_kid, signing


def _unverified_header(token: str) -> dict[str, Any]:
    """The header, only to pick the key: cheaper than PyJWT's, which then parses the whole token strictly."""
    segment, *rest = token.split(".")
    if len(rest) != 2:
        raise jwt.DecodeError("not three segments")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError) as exc:
        raise jwt.DecodeError(f"header is not base64url JSON: {exc}") from None
    if not isinstance(header, dict):
        raise jwt.DecodeError("header is not a JSON object")
    return header


def _scopes(claims: dict[str, Any]) -> list[str]:
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            return value.split()
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return list(value)
    return []
