"""Reading a session's history from SQLite: pages of messages and tool calls, model context, summary input.

Each function runs inside one read transaction on a connection, for a session already resolved
through sqlite_identity.py (and so already checked to belong to the caller). Pages read their
rows one at a time and end early at RESULT_BUDGET_BYTES (see pages.py); their cursors are bound
to the user, the session and the filters (see cursor.py).
"""

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing

from .cursor import CursorSealer
from .models import ChatHistoryPage, ChatMessage, ContextMessage, RunTranscript, ToolCall, ToolCallPage
from .pages import fill_page
from .sqlite_identity import OwnedSession
from .sqlite_rows import row_to_tool_call


def leader_only(include_member_runs: bool, alias: str = "") -> str:
    """The condition on runs (`alias`: their table's prefix) leaving out a team member's runs, those with
    a parent run, unless `include_member_runs`; every run of a session without members passes it."""
    return "" if include_member_runs else f" AND {alias}parent_run_id IS NULL"


def chat_history_page(
    raw: sqlite3.Connection,
    sealer: CursorSealer,
    session: OwnedSession,
    last_n_runs: int | None,
    limit: int,
    cursor: str | None,
    include_tool_messages: bool,
    include_member_runs: bool = False,
) -> ChatHistoryPage:
    """Messages oldest first, ordered by (run, message), optionally of the last N finished runs; a team
    member's runs (those with a parent run) only with `include_member_runs`."""
    scope = ("messages", session.user_pk, session.session_pk, include_tool_messages, last_n_runs, include_member_runs)
    member_filter, run_filter = leader_only(include_member_runs), leader_only(include_member_runs, "r.")
    after = sealer.open(cursor, scope, (int, int)) if cursor else [0, 0]
    tool_filter = "" if include_tool_messages else " AND m.is_tool = 0"
    first_run_pk = 0
    if last_n_runs is not None:
        row = raw.execute(
            f"SELECT pk FROM runs WHERE session_pk = ? AND status != 'running'{member_filter} "
            "ORDER BY pk DESC LIMIT 1 OFFSET ?",
            (session.session_pk, last_n_runs - 1),
        ).fetchone()
        first_run_pk = row[0] if row else 0
    rows = raw.execute(
        "SELECT m.pk, m.run_pk, m.role, m.content, r.run_id, r.created_at FROM messages m "
        "JOIN runs r ON r.pk = m.run_pk WHERE m.session_pk = ? AND m.run_pk >= ? "
        f"AND (m.run_pk, m.pk) > (?, ?){tool_filter}{run_filter} ORDER BY m.run_pk, m.pk LIMIT ?",
        # SQLite bounds the index range by `run_pk >= ?` only, not by the row value, so the
        # cursor's run goes into that bound too: a deep page starts where it should.
        (session.session_pk, max(first_run_pk, after[0]), *after, limit + 1),
    )
    with closing(rows):
        messages, last = fill_page(_messages(rows), limit, _message_bound)
    next_cursor = sealer.seal(scope, *last) if last is not None else None
    return ChatHistoryPage(session_id=session.session_id, messages=messages, next_cursor=next_cursor)


def tool_call_page(
    raw: sqlite3.Connection,
    sealer: CursorSealer,
    session: OwnedSession,
    limit: int,
    tool_name: str | None,
    cursor: str | None,
    include_member_runs: bool = False,
) -> ToolCallPage:
    """Tool calls newest first, optionally of one tool; a team member's runs' only with `include_member_runs`."""
    scope = ("tool_calls", session.user_pk, session.session_pk, tool_name, include_member_runs)
    member_filter = leader_only(include_member_runs, "r.")
    before = sealer.open(cursor, scope, (int,))[0] if cursor else 2**62
    name_filter = " AND t.tool_name = ?" if tool_name is not None else ""
    rows = raw.execute(
        "SELECT t.*, r.run_id FROM tool_calls t JOIN runs r ON r.pk = t.run_pk "
        f"WHERE t.session_pk = ?{name_filter} AND t.pk < ?{member_filter} ORDER BY t.pk DESC LIMIT ?",
        (session.session_pk, *([tool_name] if tool_name is not None else []), before, limit + 1),
    )
    with closing(rows):
        calls, last = fill_page(_tool_calls(rows), limit)
    next_cursor = sealer.seal(scope, last) if last is not None else None
    return ToolCallPage(session_id=session.session_id, tool_calls=calls, next_cursor=next_cursor)


def _messages(rows: sqlite3.Cursor) -> Iterator[tuple[tuple[int, int], ChatMessage]]:
    for r in rows:
        message = ChatMessage(role=r["role"], content=r["content"], run_id=r["run_id"], created_at=r["created_at"])
        yield (r["run_pk"], r["pk"]), message


def _message_bound(message: ChatMessage) -> int:
    """At most 6 bytes of JSON per character (a `\\u0001` escape), plus the field names."""
    return 6 * (len(message.content) + len(message.run_id) + len(message.created_at)) + 64


def _tool_calls(rows: sqlite3.Cursor) -> Iterator[tuple[int, ToolCall]]:
    for r in rows:
        yield r["pk"], row_to_tool_call(r)


def context_messages(raw: sqlite3.Connection, session_pk: int, num_runs: int) -> list[ContextMessage]:
    """The messages of the last `num_runs` completed runs of the leader (no team member's), whole runs only,
    oldest first."""
    if num_runs <= 0:
        return []
    rows = raw.execute(
        "SELECT m.role, m.content, m.blocks FROM messages m WHERE m.run_pk IN "
        "(SELECT pk FROM runs WHERE session_pk = ? AND status = 'completed' AND parent_run_id IS NULL "
        "ORDER BY pk DESC LIMIT ?) "
        "ORDER BY m.run_pk, m.pk",
        (session_pk, num_runs),
    ).fetchall()
    return [
        ContextMessage(role=r["role"], content=r["content"], blocks=json.loads(r["blocks"]) if r["blocks"] else None)
        for r in rows
    ]


def runs_for_summary(raw: sqlite3.Connection, session_pk: int, after: int) -> tuple[list[RunTranscript], int]:
    """The leader's completed runs after the first `after` runs, and how many runs from the start are finished
    or paused (a team member's runs and paused runs are counted, not summarized)."""
    rows = raw.execute(
        "SELECT run_id, input, content, status, parent_run_id FROM runs WHERE session_pk = ? "
        "ORDER BY pk LIMIT -1 OFFSET ?",
        (session_pk, after),
    ).fetchall()
    runs: list[RunTranscript] = []
    covered = after
    for row in rows:
        if row["status"] == "running":
            break  # it may still complete, and a later summary must see it then: coverage stops before it
        covered += 1  # a paused run is covered, not summarized: finish_continued lowers the summary if it completes
        if row["status"] == "completed" and row["parent_run_id"] is None:
            runs.append(
                RunTranscript(run_id=row["run_id"], input=row["input"], content=row["content"], position=covered)
            )
    return runs, covered
