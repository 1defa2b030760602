"""Turning whatever a user typed into a safe full-text query.

Words are extracted and each one is quoted, so FTS operators, quotes and column filters in
the input lose their power and any string is a valid query (sqlite-utils' `quote_fts`).
"""

import re

MAX_TERMS = 32
_WORD = re.compile(r"\w+", re.UNICODE)


def terms(query: str) -> list[str]:
    """The distinct words of `query`, in order, at most MAX_TERMS of them."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query):
        key = word.casefold()
        if key not in seen and len(seen) < MAX_TERMS:
            seen[key] = None
    return list(seen)


def quoted(words: list[str]) -> list[str]:
    return ['"' + word.replace('"', '""') + '"' for word in words]
