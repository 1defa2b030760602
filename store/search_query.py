"""Turning whatever a user typed into a safe full-text query.

Words are extracted and each one is quoted, so FTS operators, quotes and column filters in
the input lose their power and any string is a valid query (sqlite-utils' `quote_fts`).
A query of any length is accepted: only its first MAX_QUERY_CHARS characters are read, and
of those the first MAX_TERMS distinct words are used, so a long query costs no more than a short one.
"""

import re

from .limits import MAX_QUERY_CHARS, text_bytes

MAX_TERMS = 32
_WORD = re.compile(r"\w+", re.UNICODE)


def terms(query: str) -> list[str]:
    """The distinct words in the first MAX_QUERY_CHARS characters of `query`, in order, at most MAX_TERMS of them.

    A word cut by that limit is left out, so only words the user typed whole are searched for.
    A lone surrogate in the part read is refused (InvalidInput), as in any other text.
    """
    text_bytes(query[:MAX_QUERY_CHARS], "query")
    seen: dict[str, None] = {}
    for word in _WORD.finditer(query, 0, MAX_QUERY_CHARS):
        if word.end() == MAX_QUERY_CHARS and _WORD.match(query, MAX_QUERY_CHARS):
            break
        key = word.group().casefold()
        if key not in seen:
            seen[key] = None
            if len(seen) == MAX_TERMS:
                break
    return list(seen)


def quoted(words: list[str]) -> list[str]:
    return ['"' + word.replace('"', '""') + '"' for word in words]
