"""Opaque page cursors, sealed with a per-database secret.

A cursor carries a position in a list (a sort value and a row pk), encrypted so that it shows no
row id, and authenticated together with its scope: the kind of list, the user, the session and
every filter of the call that made it. The scope itself is not inside the cursor, it is given
again when the cursor comes back; a cursor of another user, session, filter or database file,
or one with any byte changed, fails the tag check and is refused.

Encryption is HMAC-SHA256 in counter mode (a keystream XORed with the position) under a random
nonce, then an HMAC-SHA256 tag over scope, nonce and ciphertext (encrypt-then-MAC): stdlib only.
"""

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from typing import Any

from .errors import InvalidInput

BAD_CURSOR = "cursor is not valid for this list; pass next_cursor from the previous call unchanged, or omit it."
MAX_CURSOR_CHARS = 1_000
SECRET_BYTES = 32

_NONCE_BYTES = 12
_TAG_BYTES = 16
_BLOCK_BYTES = hashlib.sha256().digest_size

Scope = tuple[str | int | bool | None, ...]
"""What a cursor is bound to: the list's kind first, then the user's and session's pks and the filters."""


class CursorSealer:
    """Makes and opens the cursors of one database."""

    def __init__(self, secret: bytes) -> None:
        self._encryption_key = hmac.digest(secret, b"cursor encryption", hashlib.sha256)
        self._tag_key = hmac.digest(secret, b"cursor tag", hashlib.sha256)

    def seal(self, scope: Scope, *position: str | int) -> str:
        """A cursor for `position` that only `open` with the same scope accepts."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        plain = json.dumps(position, separators=(",", ":")).encode()
        sealed = nonce + _xor(plain, self._keystream(nonce, len(plain)))
        return base64.urlsafe_b64encode(sealed + self._tag(scope, sealed)).decode().rstrip("=")

    def open(self, cursor: str, scope: Scope, types: tuple[type, ...]) -> list[Any]:
        """The position in a cursor made by `seal(scope, ...)`, its values checked against `types`."""
        if len(cursor) > MAX_CURSOR_CHARS:
            raise InvalidInput(BAD_CURSOR)
        try:
            raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(BAD_CURSOR) from None
        sealed, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        if len(sealed) <= _NONCE_BYTES or not hmac.compare_digest(tag, self._tag(scope, sealed)):
            raise InvalidInput(BAD_CURSOR)
        nonce, encrypted = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        try:
            values = json.loads(_xor(encrypted, self._keystream(nonce, len(encrypted))))
        except ValueError:  # only a cursor sealed by another version of this code gets here
            raise InvalidInput(BAD_CURSOR) from None
        return _checked(values, types)

    def _keystream(self, nonce: bytes, size: int) -> bytes:
        blocks = (size + _BLOCK_BYTES - 1) // _BLOCK_BYTES
        stream = b"".join(
            hmac.digest(self._encryption_key, nonce + counter.to_bytes(4, "big"), hashlib.sha256)
            for counter in range(blocks)
        )
        return stream[:size]

    def _tag(self, scope: Scope, sealed: bytes) -> bytes:
        # The scope's length goes first, so no split of scope and ciphertext can pass for another.
        scope_bytes = json.dumps(scope, separators=(",", ":")).encode()
        message = len(scope_bytes).to_bytes(8, "big") + scope_bytes + sealed
        return hmac.digest(self._tag_key, message, hashlib.sha256)[:_TAG_BYTES]


def _xor(data: bytes, stream: bytes) -> bytes:
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")


def _checked(values: Any, types: tuple[type, ...]) -> list[Any]:
    if not isinstance(values, list) or len(values) != len(types):
        raise InvalidInput(BAD_CURSOR)
    for value, expected in zip(values, types, strict=True):
        if not isinstance(value, expected) or isinstance(value, bool):
            raise InvalidInput(BAD_CURSOR)
        if isinstance(value, int) and not 0 <= value < 2**63:
            raise InvalidInput(BAD_CURSOR)
    return values
