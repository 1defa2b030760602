"""Opaque page cursors: a tagged JSON list in URL-safe base64.

A cursor names the kind of list it continues, so a cursor from one tool fed to another is
rejected instead of silently paging the wrong thing.
"""

import base64
import binascii
import json
from typing import Any

from .errors import InvalidInput

_BAD_CURSOR = "cursor is not valid for this list; pass next_cursor from the previous call unchanged, or omit it."


def encode(kind: str, *values: Any) -> str:
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, kind: str, types: tuple[type, ...]) -> list[Any]:
    """Values of a cursor made by `encode(kind, ...)`, checked against `types`."""
    if len(cursor) > 1_000:
        raise InvalidInput(_BAD_CURSOR)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidInput(_BAD_CURSOR) from None
    if not isinstance(decoded, list) or len(decoded) != len(types) + 1 or decoded[0] != kind:
        raise InvalidInput(_BAD_CURSOR)
    values = decoded[1:]
    for value, expected in zip(values, types, strict=True):
        if not isinstance(value, expected) or isinstance(value, bool):
            raise InvalidInput(_BAD_CURSOR)
        if isinstance(value, int) and not 0 <= value < 2**63:
            raise InvalidInput(_BAD_CURSOR)
    return values
