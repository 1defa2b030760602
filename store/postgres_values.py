"""Values as PostgreSQL holds them: text without NUL characters, and timestamps.

PostgreSQL text cannot hold U+0000, which the contract accepts anywhere in a text, so text goes in
escaped and comes back exactly: NUL becomes U+10FFFE, and the two escape characters (noncharacters
that no real text uses) are themselves escaped by U+10FFFF. Text without any of the three, that is
all real text, is stored as it is. JSON needs none of this: it is stored as its JSON text, where a
NUL is the escape `\\u0000`.

Timestamps are timestamptz; the contract's form is ISO 8601 UTC with microseconds and a Z
(clock.py), which is exactly what PostgreSQL's microsecond timestamps hold.
"""

import re
from datetime import UTC, datetime

_NUL, _STANDS_FOR_NUL, _ESCAPE = "\x00", "\U0010fffe", "\U0010ffff"
_ESCAPED = re.compile("\U0010ffff(.)|\U0010fffe", re.DOTALL)


def to_db(text: str) -> str:
    if _NUL not in text and _STANDS_FOR_NUL not in text and _ESCAPE not in text:
        return text
    return (
        text.replace(_ESCAPE, _ESCAPE + _ESCAPE)
        .replace(_STANDS_FOR_NUL, _ESCAPE + _STANDS_FOR_NUL)
        .replace(_NUL, _STANDS_FOR_NUL)
    )


def from_db(text: str) -> str:
    if _STANDS_FOR_NUL not in text and _ESCAPE not in text:
        return text
    return _ESCAPED.sub(lambda found: found.group(1) or _NUL, text)


def optional_to_db(text: str | None) -> str | None:
    return None if text is None else to_db(text)


def optional_from_db(text: str | None) -> str | None:
    return None if text is None else from_db(text)


def timestamp(text: str) -> datetime:
    """A contract timestamp (`2026-11-22T10:00:00.123456Z`, or any ISO 8601 form) as an aware datetime."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    """A timestamptz in the contract's form."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> datetime:
    return datetime.now(UTC)
