"""Reading one JSON-RPC message from a line of text, answering every line that cannot be one.

The SDK's own stdio reader drops a line it cannot parse without a word, and its strict JSON
parser refuses what JavaScript hosts really send (a lone UTF-16 surrogate escape when a string
is cut inside an emoji). Here a line is parsed with Python's `json`, which keeps such text so
the tool can refuse it with its own clear error, and a line that is not a message gets a
JSON-RPC error carrying the request's id whenever it can be read, so no client waits for an
answer that never comes.
"""

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from pydantic import ValidationError

logger = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 32 * 1024 * 1024
"""One JSON-RPC message (one line) at most: the largest run (16 MB of text) with room for escaping."""
MAX_DEPTH = 100
"""Arrays and objects nested at most this deep in one message."""
MAX_INTEGER_DIGITS = 100

_ID = r'(-?\d{1,18}|"(?:[^"\\]|\\.){0,200}")'
_ID_FIRST = re.compile(r'\A\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*' + _ID)
_ID_LAST = re.compile(r'"id"\s*:\s*' + _ID + r"\s*\}\s*\Z")


@dataclass(frozen=True)
class Refusal:
    """A line that is not a message we can serve, and the error answer it gets."""

    error: types.JSONRPCError
    reason: str

    @classmethod
    def of(cls, request_id: types.RequestId | None, code: int, message: str) -> "Refusal":
        error = types.JSONRPCError(jsonrpc="2.0", id=request_id, error=types.ErrorData(code=code, message=message))
        return cls(error, message)


class _LongInteger:
    """Stands in for an integer literal too long to convert (Python refuses over 4,300 digits)."""


def parse_message(line: str) -> types.JSONRPCMessage | Refusal | None:
    """The message on `line`; a Refusal to send back; or None for a blank line."""
    if not line.strip():
        return None
    try:
        value = json.loads(line, parse_int=_integer)
    except RecursionError:
        return Refusal.of(
            peek_id(line[:4096], line[-4096:]),
            types.INVALID_REQUEST,
            f"The request is nested too deeply; nest objects and arrays at most {MAX_DEPTH} levels.",
        )
    except ValueError:
        return Refusal.of(
            peek_id(line[:4096], line[-4096:]),
            types.PARSE_ERROR,
            "Parse error: the line is not valid JSON; send one JSON-RPC message per line.",
        )
    request_id = value.get("id") if isinstance(value, dict) else None
    if not isinstance(request_id, int | str) or isinstance(request_id, bool):
        request_id = None
    problem = _shape_problem(value)
    if problem is not None:
        return Refusal.of(request_id, types.INVALID_REQUEST, problem)
    try:
        return types.jsonrpc_message_adapter.validate_python(value, by_name=False)
    except ValidationError:
        return Refusal.of(
            request_id,
            types.INVALID_REQUEST,
            "Invalid request: expected a JSON-RPC 2.0 request, notification or response object.",
        )


def oversize_refusal(head: str, tail: str, size: int) -> Refusal:
    """The answer to a line over MAX_MESSAGE_BYTES, of which only its ends were kept."""
    return Refusal.of(
        peek_id(head, tail),
        types.INVALID_REQUEST,
        f"The request is over {size:,} bytes, above the limit of {MAX_MESSAGE_BYTES:,} bytes per message; "
        "send less data per call.",
    )


def peek_id(head: str, tail: str) -> types.RequestId | None:
    """The request id of a line that could not be parsed, read from its first or last characters.

    Python clients write the id near the start (`{"jsonrpc":"2.0","id":7,...`), JavaScript
    clients at the end (`...,"jsonrpc":"2.0","id":7}`); only those places are trusted, since an
    `"id"` elsewhere may belong to the arguments.
    """
    found = _ID_FIRST.search(head) or _ID_LAST.search(tail)
    if found is None:
        return None
    text = found.group(1)
    try:
        request_id = json.loads(text)
    except ValueError:
        return None
    return request_id if isinstance(request_id, int | str) else None


def _integer(text: str) -> int | _LongInteger:
    return _LongInteger() if len(text.lstrip("-")) > MAX_INTEGER_DIGITS else int(text)


def _shape_problem(value: Any) -> str | None:
    """Why a parsed message cannot be served, or None: too deep, or an integer too long."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, _LongInteger):
            return (
                f"The request holds an integer of more than {MAX_INTEGER_DIGITS} digits; send large numbers as strings."
            )
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                return f"The request is nested too deeply; nest objects and arrays at most {MAX_DEPTH} levels."
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | _LongInteger))
    return None
