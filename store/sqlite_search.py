"""FTS5 search over one user's messages and tool calls, ranked by bm25.

The index holds every user's messages and tool calls (sqlite_search_index.py); `owner` holds the
owner's users.pk, so the user scope is part of the MATCH and only that user's rows are ever
matched or returned. bm25's word statistics (how rare a word is) are those of the whole file,
though, so scores depend a little on other users' text.

bm25 costs a scan of every row holding a query word, so a word found in very many of the
user's messages (COMMON_WORD_MATCHES) is treated as a stop word: left out when rarer words
remain; when every word is that common, the newest messages holding them come back unranked.
"""

import itertools
import json
import re
import secrets
import sqlite3

from .models import SearchHit
from .sqlite_purge import hidden_from_search
from .sqlite_search_index import indexed_row

COMMON_WORD_MATCHES = 2_000
_RANK = "bm25(search_index, 0.0, 1.0, 0.0)"
_CONTEXT_WORDS = 12
_MAX_SNIPPET_CHARS = 400
_EXACT_UP_TO = 16_000  # bytes of a text beyond which its snippet is approximate, found in this many first bytes
# Markers that never occur in user text: private-use characters around a random nonce.
_NONCE = secrets.token_hex(8)
MARK_START, MARK_END = f"\ue000{_NONCE}[", f"]{_NONCE}\ue001"
_SPACES = re.compile(r"\s+")
_WORD_RUN = re.compile(r"\S+")


def search_user(
    raw: sqlite3.Connection,
    user_pk: int,
    words: list[str],
    num_sessions: int | None,
    exclude_session_id: str | None,
    limit: int,
) -> list[SearchHit]:
    """Hits for quoted `words`: messages with all of them first, then those with any, to fill `limit`."""
    scope, params = hidden_from_search(raw, user_pk)  # deleted sessions whose rows are still being purged
    if num_sessions is not None:
        recent = raw.execute(
            "SELECT pk FROM sessions WHERE user_pk = ? ORDER BY updated_at DESC, pk DESC LIMIT ?",
            (user_pk, num_sessions),
        ).fetchall()
        scope += " AND session_pk IN (SELECT value FROM json_each(?))"
        params.append(json.dumps([row[0] for row in recent]))
    if exclude_session_id is not None:
        scope += " AND session_pk IS NOT (SELECT pk FROM sessions WHERE user_pk = ? AND session_id = ?)"
        params += [user_pk, exclude_session_id]
    owner = f'owner : "{user_pk}"'
    rare = [word for word in words if not _is_common(raw, owner, word)]
    order = f"{_RANK}" if rare else "rowid DESC"
    chosen = rare or words
    expressions = [" AND ".join(chosen)] + ([" OR ".join(chosen)] if len(chosen) > 1 else [])
    ranked: dict[int, tuple[float, str]] = {}
    for expression in expressions:
        if len(ranked) >= limit:
            break
        match = f"{owner} AND body : ({expression})"
        # Only rowid and rank go through the sort: anything else selected here would be computed
        # for every matching row, not just the page.
        score = f"-{_RANK}" if rare else "0.0"
        for row in raw.execute(
            f"SELECT rowid, {score} AS score FROM search_index WHERE search_index MATCH ?{scope} "
            f"ORDER BY {order} LIMIT ?",
            (match, *params, limit),
        ):
            if len(ranked) < limit:
                ranked.setdefault(row["rowid"], (row["score"], match))
    return [_hit(raw, rowid, score, match, words) for rowid, (score, match) in ranked.items()]


def _is_common(raw: sqlite3.Connection, owner: str, word: str) -> bool:
    """Whether more than COMMON_WORD_MATCHES of the user's rows hold `word` (counting stops there)."""
    row = raw.execute(
        "SELECT count(*) FROM (SELECT rowid FROM search_index WHERE search_index MATCH ? LIMIT ?)",
        (f"{owner} AND body : ({word})", COMMON_WORD_MATCHES + 1),
    ).fetchone()
    return int(row[0]) > COMMON_WORD_MATCHES


def _hit(raw: sqlite3.Connection, rowid: int, score: float, match: str, words: list[str]) -> SearchHit:
    table, pk = indexed_row(rowid)
    role = "m.role" if table == "messages" else "'tool'"
    row = raw.execute(
        f"SELECT {role} AS role, r.run_id, r.created_at, s.session_id, s.name FROM {table} m "
        "JOIN runs r ON r.pk = m.run_pk JOIN sessions s ON s.pk = m.session_pk WHERE m.pk = ?",
        (pk,),
    ).fetchone()
    return SearchHit(
        session_id=row["session_id"],
        session_name=row["name"],
        run_id=row["run_id"],
        role=row["role"],
        snippet=_snippet(raw, rowid, match, words),
        score=round(score, 6),
        created_at=row["created_at"],
    )


def _snippet(raw: sqlite3.Connection, rowid: int, match: str, words: list[str]) -> str:
    """A window of words around the first match, matches in **bold**.

    FTS5's own `snippet()` (and, less so, `highlight()`) take seconds on a large message that
    repeats the matched word thousands of times, and the reader connection is shared, so a text
    over _EXACT_UP_TO bytes gets an approximate window found in Python in its first _EXACT_UP_TO
    bytes only: around the first place a query word's first 5 letters occur there (in any case),
    else the text's start.
    Size and first bytes are read through a blob handle on FTS5's content table, which reads only
    those bytes: SQL's length() and substr() would load the whole text, and length() of a TEXT
    stops at its first NUL.
    """
    with raw.blobopen("search_index_content", "c1", rowid, readonly=True) as body:
        if len(body) > _EXACT_UP_TO:
            head = body.read(_EXACT_UP_TO).decode("utf-8", errors="ignore")
            return window(_mark_prefixes(head, words))
    row = raw.execute(
        "SELECT highlight(search_index, 1, ?, ?) FROM search_index WHERE search_index MATCH ? AND rowid = ?",
        (MARK_START, MARK_END, match, rowid),
    ).fetchone()
    return window(row[0] if row else "")


def _mark_prefixes(text: str, words: list[str]) -> str:
    """The text around the first place a query word's first 5 letters occur, words starting so marked.

    Found with str.find on the lower-cased text: a regular expression over 16 KB costs more than the
    rest of the search. With none of them in `text`, its start.
    """
    stems = [word.strip('"').replace('""', '"')[:5] for word in words]
    folded = text.replace("\u0130", "I").lower()  # İ is the one letter whose lower case is two characters
    if len(folded) != len(text):  # positions would shift: search the text as it is
        folded = text
    found = [at for stem in stems if (at := folded.find(stem.lower())) >= 0]
    if not found:
        return text[: _MAX_SNIPPET_CHARS * 2]
    begin = min(found)
    around = text[max(0, begin - _MAX_SNIPPET_CHARS) : begin + _MAX_SNIPPET_CHARS]
    starting = re.compile(rf"\b(?:{'|'.join(map(re.escape, stems))})\w*", re.IGNORECASE)
    return starting.sub(lambda word: MARK_START + word.group() + MARK_END, around)


def window(text: str) -> str:
    """About _CONTEXT_WORDS words either side of the first mark, in the text's own spacing with runs collapsed."""
    text = _SPACES.sub(" ", text)
    first = max(text.find(MARK_START), 0)
    before = [word.start() for word in _WORD_RUN.finditer(text, 0, first)]
    after = [word.end() for word in itertools.islice(_WORD_RUN.finditer(text, first), _CONTEXT_WORDS + 2)]
    begin = before[-_CONTEXT_WORDS:][0] if before else first
    end = after[: _CONTEXT_WORDS + 1][-1] if after else first
    shown = text[begin:end].strip().replace(MARK_START, "**").replace(MARK_END, "**")
    if shown.count("**") % 2:
        shown += "**"
    prefix = "…" if len(before) > _CONTEXT_WORDS else ""
    suffix = "…" if len(after) > _CONTEXT_WORDS + 1 else ""
    return (prefix + shown + suffix)[:_MAX_SNIPPET_CHARS]
