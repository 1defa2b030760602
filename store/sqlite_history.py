"""Reading a session's history from SQLite: pages of messages and tool calls, model context, summary input.

Each function runs inside one read transaction on a connection, for a session already resolved
(and so already checked to belong to the caller).
"""

import json
import sqlite3

from . import cursor as cursors
from .models import ChatHistoryPage, ChatMessage, ContextMessage, RunTranscript, ToolCallPage
from .sqlite_rows import row_to_tool_call


def chat_history_page(
    raw: sqlite3.Connection,
    session_pk: int,
    session_id: str,
    last_n_runs: int | None,
    limit: int,
    cursor: str | None,
    include_tool_messages: bool,
) -> ChatHistoryPage:
    """Messages oldest first, ordered by (run, message), optionally of the last N finished runs."""
    tool_filter = "" if include_tool_messages else " AND m.is_tool = 0"
    after = cursors.decode(cursor, f"messages:{session_id}", (int, int)) if cursor else [0, 0]
    first_run_pk = 0
    if last_n_runs is not None:
        row = raw.execute(
            "SELECT pk FROM runs WHERE session_pk = ? AND status != 'running' ORDER BY pk DESC LIMIT 1 OFFSET ?",
            (session_pk, last_n_runs - 1),
        ).fetchone()
        first_run_pk = row[0] if row else 0
    rows = raw.execute(
        "SELECT m.pk, m.run_pk, m.role, m.content, r.run_id, r.created_at FROM messages m "
        "JOIN runs r ON r.pk = m.run_pk WHERE m.session_pk = ? AND m.run_pk >= ? "
        f"AND (m.run_pk, m.pk) > (?, ?){tool_filter} ORDER BY m.run_pk, m.pk LIMIT ?",
        # SQLite bounds the index range by `run_pk >= ?` only, not by the row value, so the
        # cursor's run goes into that bound too: a deep page starts where it should.
        (session_pk, max(first_run_pk, after[0]), *after, limit + 1),
    ).fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = cursors.encode(f"messages:{session_id}", rows[-1]["run_pk"], rows[-1]["pk"])
    messages = [
        ChatMessage(role=r["role"], content=r["content"], run_id=r["run_id"], created_at=r["created_at"]) for r in rows
    ]
    return ChatHistoryPage(session_id=session_id, messages=messages, next_cursor=next_cursor)


def tool_call_page(
    raw: sqlite3.Connection, session_pk: int, session_id: str, limit: int, tool_name: str | None, cursor: str | None
) -> ToolCallPage:
    """Tool calls newest first, optionally of one tool."""
    before = cursors.decode(cursor, f"tool_calls:{session_id}", (int,))[0] if cursor else 2**62
    name_filter = " AND t.tool_name = ?" if tool_name is not None else ""
    rows = raw.execute(
        "SELECT t.*, r.run_id FROM tool_calls t JOIN runs r ON r.pk = t.run_pk "
        f"WHERE t.session_pk = ?{name_filter} AND t.pk < ? ORDER BY t.pk DESC LIMIT ?",
        (session_pk, *([tool_name] if tool_name is not None else []), before, limit + 1),
    ).fetchall()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = cursors.encode(f"tool_calls:{session_id}", rows[-1]["pk"])
    return ToolCallPage(session_id=session_id, tool_calls=[row_to_tool_call(r) for r in rows], next_cursor=next_cursor)


def context_messages(raw: sqlite3.Connection, session_pk: int, num_runs: int) -> list[ContextMessage]:
    """The messages of the last `num_runs` completed runs, whole runs only, oldest first."""
    if num_runs <= 0:
        return []
    rows = raw.execute(
        "SELECT m.role, m.content, m.blocks FROM messages m WHERE m.run_pk IN "
        "(SELECT pk FROM runs WHERE session_pk = ? AND status = 'completed' ORDER BY pk DESC LIMIT ?) "
        "ORDER BY m.run_pk, m.pk",
        (session_pk, num_runs),
    ).fetchall()
    return [
        ContextMessage(role=r["role"], content=r["content"], blocks=json.loads(r["blocks"]) if r["blocks"] else None)
        for r in rows
    ]


def runs_for_summary(raw: sqlite3.Connection, session_pk: int, after: int) -> tuple[list[RunTranscript], int]:
    """Completed runs after the first `after`, and how many runs from the start are finished."""
    rows = raw.execute(
        "SELECT run_id, input, content, status FROM runs WHERE session_pk = ? ORDER BY pk LIMIT -1 OFFSET ?",
        (session_pk, after),
    ).fetchall()
    runs: list[RunTranscript] = []
    covered = after
    for row in rows:
        if row["status"] == "running":
            break  # a later summary must still see it, so coverage stops before it
        covered += 1
        if row["status"] == "completed":
            runs.append(
                RunTranscript(run_id=row["run_id"], input=row["input"], content=row["content"], position=covered)
            )
    return runs, covered
