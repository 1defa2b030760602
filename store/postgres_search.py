"""Full-text search on PostgreSQL over one user's messages and tool calls, ranked by ts_rank_cd.

Each message and tool call carries a tsvector of its text in the `sessions_english` configuration
(English stemming over unaccented words: "kayaking fjord" finds "a kayak trip on the fjords"),
indexed by GIN together with its owner (btree_gin's (user_pk, search)), so a user's search reads
only that user's entries. The query is built from the plain words of what was typed
(search_query.terms), each through plainto_tsquery, so no string is a query error. ts_rank_cd
scores a row from its own text and the query only, so other users' text never moves a score.

As on SQLite, a word in very many of the user's rows (COMMON_WORD_MATCHES) is left out while rarer
words remain, since ranking reads every matching row; when every word is that common, the newest
rows holding them all come back unranked. Snippets are made for the hits only: ts_headline marks the
matches (as stemmed, so "kayaking" marks "kayak") in the first SNIPPET_SOURCE_CHARS of the text.
"""

import heapq
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .models import SearchHit
from .postgres_values import from_db, iso, to_db
from .sqlite_search import MARK_END, MARK_START, window
from .sqlite_search_index import tool_call_text

if TYPE_CHECKING:
    from .postgres_schema import Conn

VECTOR = "sessions_vector({})"
"""The search vector of a text column or parameter, `{}` filled in (postgres_schema.py's function)."""
COMMON_WORD_MATCHES = 2_000
SNIPPET_SOURCE_CHARS = 8_000
_TABLES = ("messages", "tool_calls")
Found = list[tuple[tuple[str, int], tuple[float, int]]]
"""Hits as ((table, pk), (score, run_pk)), best first."""
_HEADLINE_OPTIONS = f'StartSel="{MARK_START}", StopSel="{MARK_END}", HighlightAll=true'


@dataclass
class _Scope:
    """Which of the user's rows a search looks at: conditions, each with its `{}` parameter, and their values."""

    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def sql(self, first: int) -> str:
        """The conditions, their parameters numbered from `first`."""
        return "".join(condition.format(f"${first + index}") for index, condition in enumerate(self.conditions))


async def search_user(
    conn: "Conn",
    user_pk: int,
    words: list[str],
    num_sessions: int | None,
    exclude_session_id: str | None,
    limit: int,
) -> list[SearchHit]:
    """Hits for `words`: rows with all of them first, then those with any, to fill `limit`."""
    scope = await _scope(conn, user_pk, num_sessions, exclude_session_id)
    common = await _common_words(conn, user_pk, words)
    rare = [word for word in words if word not in common]
    chosen = rare or words
    passes = [" && "] + ([" || "] if len(chosen) > 1 else [])
    best: Found = []
    seen: set[tuple[str, int]] = set()
    for number, operator in enumerate(passes):  # every word first, then any
        if len(best) >= limit:
            break
        query = operator.join(f"plainto_tsquery('sessions_english', ${3 + index})" for index in range(len(chosen)))
        bonus = float(len(passes) - 1 - number) if rare else 0.0  # scores are in [0, 1): a pass outscores the next
        matching: Found = []
        for table in _TABLES:
            sql = _matches(table, query, ranked=bool(rare), scope=scope.sql(3 + len(chosen)))
            for row in await conn.fetch(sql, user_pk, limit, *chosen, *scope.params):
                if (table, row["pk"]) not in seen:
                    matching.append(((table, row["pk"]), (bonus + row["score"], row["run_pk"])))
        for key, rank in heapq.nlargest(limit - len(best), matching, key=lambda hit: hit[1]):
            best.append((key, rank))
            seen.add(key)
    return await _hits(conn, best, words)


def _matches(table: str, query: str, *, ranked: bool, scope: str) -> str:
    # 1: divided by 1 + log(length), so long texts do not win by length alone; 32: rank / (rank + 1), in [0, 1)
    score = "ts_rank_cd(search, q.q, 1 | 32)" if ranked else "0.0::float4"
    order = "score DESC, pk DESC" if ranked else "pk DESC"
    return (
        f"SELECT pk, run_pk, {score} AS score FROM {table}, (SELECT {query} AS q) q "
        f"WHERE user_pk = $1 AND search @@ q.q{scope} ORDER BY {order} LIMIT $2"
    )


async def _scope(conn: "Conn", user_pk: int, num_sessions: int | None, exclude_session_id: str | None) -> _Scope:
    scope = _Scope()
    if num_sessions is not None:
        recent = await conn.fetch(
            "SELECT pk FROM sessions WHERE user_pk = $1 ORDER BY updated_at DESC, pk DESC LIMIT $2",
            user_pk,
            num_sessions,
        )
        scope.conditions.append(" AND session_pk = ANY({}::bigint[])")
        scope.params.append([row["pk"] for row in recent])
    if exclude_session_id is not None:
        excluded = await conn.fetchval(
            "SELECT pk FROM sessions WHERE user_pk = $1 AND session_id = $2", user_pk, exclude_session_id
        )
        if excluded is not None:
            scope.conditions.append(" AND session_pk <> {}")
            scope.params.append(excluded)
    return scope


async def _common_words(conn: "Conn", user_pk: int, words: list[str]) -> set[str]:
    """The words in more than COMMON_WORD_MATCHES of the user's messages (or of its tool calls), counted
    in one statement; each count stops there."""
    counts = ", ".join(
        f"(SELECT count(*) FROM (SELECT 1 FROM {table} WHERE user_pk = $1 AND search @@ "
        "plainto_tsquery('sessions_english', w.word) LIMIT $3) m)"
        for table in _TABLES
    )
    rows = await conn.fetch(
        f"SELECT w.word, greatest({counts}) AS matches FROM unnest($2::text[]) AS w(word)",
        user_pk,
        words,
        COMMON_WORD_MATCHES + 1,
    )
    return {row["word"] for row in rows if row["matches"] > COMMON_WORD_MATCHES}


async def _hits(conn: "Conn", best: Found, words: list[str]) -> list[SearchHit]:
    """The hits with their run, session and snippet; the snippet marks any of the words."""
    query = " || ".join(f"plainto_tsquery('sessions_english', ${2 + index})" for index in range(len(words)))
    rows: dict[tuple[str, int], Any] = {}
    for table in _TABLES:
        pks = [pk for (kind, pk), _ in best if kind == table]
        if not pks:
            continue
        if table == "messages":
            text = f"left(m.content, {SNIPPET_SOURCE_CHARS}) AS text, m.role"
        else:
            text = "m.tool_name, m.arguments, m.result, 'tool' AS role"
        for row in await conn.fetch(
            f"SELECT m.pk, {text}, r.run_id, r.created_at, s.session_id, s.name FROM {table} m "
            "JOIN runs r ON r.pk = m.run_pk JOIN sessions s ON s.pk = m.session_pk WHERE m.pk = ANY($1::bigint[])",
            pks,
        ):
            rows[table, row["pk"]] = row
    texts = [_snippet_source(key[0], rows[key]) for key, _ in best]
    headlines = await conn.fetch(
        f"SELECT ts_headline('sessions_english', t.text, q.q, '{_HEADLINE_OPTIONS}') AS marked "
        f"FROM unnest($1::text[]) WITH ORDINALITY AS t(text, n), (SELECT {query} AS q) q ORDER BY t.n",
        texts,
        *words,
    )
    return [
        SearchHit(
            session_id=rows[key]["session_id"],
            session_name=None if rows[key]["name"] is None else from_db(rows[key]["name"]),
            run_id=rows[key]["run_id"],
            role=rows[key]["role"],
            snippet=window(from_db(headline["marked"])),
            score=round(score, 6),
            created_at=iso(rows[key]["created_at"]),
        )
        for (key, (score, _)), headline in zip(best, headlines, strict=True)
    ]


def _snippet_source(table: str, row: Any) -> str:
    if table == "messages":
        return str(row["text"])
    result_json = row["result"]
    text = tool_call_text(from_db(row["tool_name"]), row["arguments"], json.loads(result_json), result_json)
    return to_db(text[:SNIPPET_SOURCE_CHARS])
