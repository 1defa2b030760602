"""Values read from another tool's files, made to fit what the store accepts: ids of the allowed
characters and length, valid Unicode within the size limits, plain JSON, and timestamps in the
store's own form (so that text order stays time order).

Every function is deterministic: importing the same source twice gives the same ids and values,
which is what lets a second import add only what is new.
"""

import hashlib
import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from mcp_server_sessions.store.limits import ID_PATTERN, MAX_JSON_BYTES, MAX_NAME_CHARS, MAX_TEXT_BYTES

_ID_RE = re.compile(ID_PATTERN)
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # as store/clock.py writes them


def fitted_id(raw: str, kind: str) -> str:
    """`raw` itself when it is a valid id, else `kind-` and a hash of it: the same for the same `raw`."""
    if _ID_RE.fullmatch(raw):
        return raw
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{kind}-{digest[:40]}"


def valid_unicode(text: str) -> str:
    """`text` with any unpaired surrogate (which JSON escapes can carry) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def fitted_text(text: str, limit: int = MAX_TEXT_BYTES) -> str:
    """`text` as valid Unicode, cut to `limit` UTF-8 bytes with a note saying how long it was."""
    text = valid_unicode(text)
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    note = f"\n… [cut on import: {len(data):,} bytes in all]"
    return data[: max(limit - len(note.encode("utf-8")), 0)].decode("utf-8", "ignore") + note


def fitted_name(name: str | None) -> str | None:
    """A session name within the store's limit (the first line, cut short), or None for no text."""
    if name is None or not name.strip():
        return None
    line = valid_unicode(name.strip().splitlines()[0].strip()) or valid_unicode(name.strip())
    return line if len(line) <= MAX_NAME_CHARS else line[: MAX_NAME_CHARS - 1] + "…"


def short_name(text: str, length: int = 80) -> str | None:
    """The start of a message as a session name: its first line, cut to `length` characters."""
    name = fitted_name(text)
    return name if name is None or len(name) <= length else name[: length - 1] + "…"


def plain_json(value: Any) -> Any:
    """`value` as plain JSON: string keys, lists, valid Unicode, no NaN or infinity (null instead)."""
    if isinstance(value, str):
        return valid_unicode(value)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {valid_unicode(str(key)): plain_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(item) for item in value]
    return valid_unicode(str(value))


def json_size(value: Any) -> int:
    """UTF-8 bytes of `value` as the store serializes it."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def fitted_json(value: Any, limit: int = MAX_JSON_BYTES) -> Any:
    """`value` as plain JSON within `limit` bytes; a larger string is cut, a larger object or array
    becomes the start of its JSON text."""
    value = plain_json(value)
    if json_size(value) <= limit:
        return value
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    # escapes make JSON longer than its text: cut in proportion, then less until it fits
    budget = limit * len(text.encode("utf-8")) // json_size(text) - 64
    while True:
        cut = fitted_text(text, budget)
        if json_size(cut) <= limit:
            return cut
        budget = budget * 9 // 10


def from_epoch(seconds: object) -> str | None:
    """Epoch seconds as the store's timestamp; None for anything that is not a plausible time."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime(_TIMESTAMP_FORMAT)
    except (OverflowError, OSError, ValueError):
        return None


def from_iso(text: object) -> str | None:
    """An ISO 8601 time as the store's timestamp (one without a zone is local time); None if it is none."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC).strftime(_TIMESTAMP_FORMAT)


def milliseconds_between(start: str, end: str) -> float:
    """Milliseconds from one store timestamp to a later one (0 if it is not later)."""
    elapsed = datetime.fromisoformat(end) - datetime.fromisoformat(start)
    return max(round(elapsed.total_seconds() * 1000, 3), 0.0)


def seconds_to_ms(seconds: object) -> float | None:
    """A duration in seconds (as Agno keeps them) in milliseconds; None for no plausible duration."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
        return None
    return round(seconds * 1000, 3) if seconds >= 0 else None


def as_object(value: object) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def as_list(value: object) -> list[Any]:
    """`value` when it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []
