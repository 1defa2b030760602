"""FTS5 search over one user's messages and tool calls, ranked by bm25.

Each search_index row is a message (rowid 2 * messages.pk) or a tool call (rowid
2 * tool_calls.pk + 1); `owner` holds the owner's users.pk, so the user scope is part of the
MATCH and the ranking only ever sees that user's rows.
"""

import json
import sqlite3
from typing import Any

from .models import SearchHit

_RANK = "bm25(search_index, 0.0, 1.0, 0.0)"


def search_user(
    raw: sqlite3.Connection,
    user_pk: int,
    words: list[str],
    num_sessions: int | None,
    exclude_session_id: str | None,
    limit: int,
) -> list[SearchHit]:
    """Hits for quoted `words`: messages with all of them first, then those with any, to fill `limit`."""
    scope = ""
    params: list[Any] = []
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
    expressions = [" AND ".join(words)] + ([" OR ".join(words)] if len(words) > 1 else [])
    hits: dict[int, sqlite3.Row] = {}
    for expression in expressions:
        if len(hits) >= limit:
            break
        match = f'owner : "{user_pk}" AND body : ({expression})'
        for row in raw.execute(
            f"SELECT rowid, -{_RANK} AS score, snippet(search_index, 1, '**', '**', '…', 16) AS snippet "
            f"FROM search_index WHERE search_index MATCH ?{scope} ORDER BY {_RANK} LIMIT ?",
            (match, *params, limit),
        ):
            if len(hits) < limit:
                hits.setdefault(row["rowid"], row)
    return [_hit(raw, row) for row in hits.values()]


def _hit(raw: sqlite3.Connection, hit: sqlite3.Row) -> SearchHit:
    rowid = hit["rowid"]
    table, role = ("messages m", "m.role") if rowid % 2 == 0 else ("tool_calls m", "'tool'")
    row = raw.execute(
        f"SELECT {role} AS role, r.run_id, r.created_at, s.session_id, s.name FROM {table} "
        "JOIN runs r ON r.pk = m.run_pk JOIN sessions s ON s.pk = m.session_pk WHERE m.pk = ?",
        (rowid // 2,),
    ).fetchone()
    return SearchHit(
        session_id=row["session_id"],
        session_name=row["name"],
        run_id=row["run_id"],
        role=row["role"],
        snippet=hit["snippet"],
        score=round(hit["score"], 6),
        created_at=row["created_at"],
    )
