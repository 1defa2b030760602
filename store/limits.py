"""Input rules and size limits shared by every backend.

The limits are far above what a real conversation produces and exist so that one bad call
cannot fill the disk or stall the server. They are documented in the README.
"""

import json
import re
from typing import Any

from .errors import InvalidInput

MAX_ID_CHARS = 128
ID_PATTERN = rf"^[A-Za-z0-9._:@-]{{1,{MAX_ID_CHARS}}}$"
MAX_TEXT_BYTES = 1_000_000
MAX_JSON_BYTES = 1_000_000
MAX_NAME_CHARS = 512
MAX_TOOL_CALLS_PER_RUN = 128
MAX_RUN_BYTES = 16_000_000
RESULT_BUDGET_BYTES = 4_000_000  # UTF-8 bytes of one tool result's JSON; a page ends early to fit
MAX_TOKENS = 1_000_000_000
"""Most tokens of one kind a run may report (input, output, total, cache read, cache write)."""
MAX_DURATION_MS = 10_000_000_000
"""Longest duration a run or tool call may report: about 115 days."""
MAX_SESSION_TOKENS = 2**53 - 1
"""A session's token totals stop growing here: the largest integer a JavaScript client reads exactly."""
MAX_QUERY_CHARS = 2_000  # characters of a search query read for words; any length is accepted

# Pages and other call parameters: the default, and the most one call may ask for.
HISTORY_PAGE = 100
MAX_HISTORY_PAGE = 1_000
TOOL_CALL_PAGE = 20
MAX_TOOL_CALL_PAGE = 200
SESSION_PAGE = 20
MAX_SESSION_PAGE = 200
SEARCH_RESULTS = 10
MAX_SEARCH_RESULTS = 100
MAX_LAST_N_RUNS = 10_000
MAX_NUM_SESSIONS = 100_000
MAX_CURSOR_CHARS = 1_000
MAX_TOOL_NAME_CHARS = 200
MAX_STEP_NAME_CHARS = 200
MAX_STEPS_PER_RUN = 128
MAX_PAUSED_RUN_IDS = 20
"""A session lists at most this many of its paused runs (the oldest) in `paused_run_ids`."""
MAX_MODEL_CHARS = 200
MAX_SYSTEM_CHARS = 100_000
MAX_PROMPT_CHARS = 20_000
MAX_MESSAGE_CHARS = 1_000_000
HISTORY_RUNS = 3
"""Earlier runs `run` puts in context unless the call or the session says otherwise."""
MAX_HISTORY_RUNS = 100
MAX_OUTPUT_TOKENS = 128_000
"""Most output tokens one model call of a run may be given."""
TOOL_CALL_LINE_CHARS = 2_000
"""A recorded tool call's line in the chat history is cut here; the call itself is stored whole."""
OUTPUT_TOKENS = 4_096
"""Output tokens of one model call of a run unless the call or the session says otherwise."""
MAX_MODEL_CALLS = 8
"""Model calls one run may make (each after the tool calls the one before asked for)."""

MAX_FORK_RUNS = 1_000
"""Most runs one fork_session copies: it is one transaction, and on SQLite the file's write lock is held
while the copies are indexed for search (about 0.2 s per 1,000 runs; 10,000 would hold it for seconds)."""
MAX_FORK_ATTACHMENT_BYTES = 64 * 1024 * 1024
"""Most bytes of attachments one fork_session copies, for the same reason: 160 MB of them (10 runs of
16 MiB) held SQLite's write lock for 2.85 s."""

# The tools a model calls inside a run: smaller pages, as their results fill the model's context.
INNER_HISTORY_PAGE = 50
MAX_INNER_HISTORY_PAGE = 200
MAX_INNER_LAST_N_RUNS = 1_000
MAX_INNER_TOOL_CALL_PAGE = 100
INNER_SEARCH_RESULTS = 5
MAX_INNER_SEARCH_RESULTS = 20
MAX_INNER_RESULT_CHARS = 100_000
"""An inner tool's result is cut here before the model sees it."""

_ID_RE = re.compile(ID_PATTERN)


def check_id(value: str, what: str) -> str:
    if not _ID_RE.fullmatch(value):
        raise InvalidInput(f"{what} must be 1 to 128 letters, digits or ._:@- characters; got {_describe(value)}.")
    return value


def text_bytes(value: str, what: str, limit: int = MAX_TEXT_BYTES) -> int:
    """Size of `value` in UTF-8; rejects text that is not valid Unicode or is too large."""
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(
            f"{what} contains an unpaired surrogate, which is not valid Unicode; send valid UTF-8 text."
        ) from None
    if size > limit:
        raise InvalidInput(f"{what} is {size:,} bytes, over the limit of {limit:,}; send less text.")
    return size


def dump_json(value: Any, what: str, limit: int = MAX_JSON_BYTES) -> str:
    """Serialize `value` for storage, enforcing the JSON size limit."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} must be plain JSON (no NaN or infinity).") from None
    text_bytes(text, what, limit)
    return text


def same_json(a: Any, b: Any) -> bool:
    """Whether two JSON values are the same as JSON (key order aside; 1, 1.0 and true differ)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def check_name(name: str | None) -> str | None:
    if name is not None and len(name) > MAX_NAME_CHARS:
        raise InvalidInput(f"name is {len(name)} characters, over the limit of {MAX_NAME_CHARS}.")
    if name is not None:
        text_bytes(name, "name")
    return name


def _describe(value: str) -> str:
    if not value:
        return "an empty string"
    if len(value) > 40:
        return f"{len(value)} characters"
    return repr(value)


RUN_LEASE_S = 60.0
"""How long a `running` run's lease lasts; its server renews it every third of that while the run goes on,
and any server on the store marks a run whose lease has expired `error`."""

MAX_ATTACHMENTS_PER_RUN = 8
MAX_ATTACHMENT_BYTES_PER_RUN = 16 * 1024 * 1024
"""Decoded bytes of a run's attachments together (in base64 about 22 MB, within the stdio line cap of 32 MiB)."""
MAX_ATTACHMENT_NAME_CHARS = 255
MAX_ATTACHMENT_URL_CHARS = 2_048
