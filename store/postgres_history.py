"""Reading a session's history from PostgreSQL: pages of messages and tool calls, model context,
summary input; the same pages and cursors as the SQLite store (sqlite_history.py).

Each function runs inside one read-only repeatable-read transaction, for a session already
resolved for its owner. Pages read their rows through a server-side cursor in batches and stop at
RESULT_BUDGET_BYTES (pages.py), so a page of huge messages never loads much more than it returns.
"""

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import asyncpg

from .cursor import CursorSealer
from .limits import RESULT_BUDGET_BYTES
from .models import ChatHistoryPage, ChatMessage, ContextMessage, RunTranscript, ToolCallPage
from .pages import fill_page
from .postgres_runs import row_to_tool_call
from .postgres_session_table import OwnedSession
from .postgres_values import from_db, iso, optional_from_db, to_db
from .sqlite_history import leader_only

if TYPE_CHECKING:
    from .postgres_schema import Conn

_BATCH = 50


async def chat_history_page(
    conn: "Conn",
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
    tool_filter = "" if include_tool_messages else " AND NOT m.is_tool"
    first_run_pk = 0
    if last_n_runs is not None:
        first_run_pk = (
            await conn.fetchval(
                f"SELECT pk FROM runs WHERE session_pk = $1 AND status <> 'running'{member_filter} "
                "ORDER BY pk DESC LIMIT 1 OFFSET $2",
                session.session_pk,
                last_n_runs - 1,
            )
            or 0
        )
    rows = await _rows(
        conn,
        "SELECT m.pk, m.run_pk, m.role, m.content, r.run_id, r.created_at FROM messages m "
        "JOIN runs r ON r.pk = m.run_pk WHERE m.session_pk = $1 AND m.run_pk >= $2 "
        f"AND (m.run_pk, m.pk) > ($3, $4){tool_filter}{run_filter} ORDER BY m.run_pk, m.pk LIMIT $5",
        [session.session_pk, max(first_run_pk, after[0]), after[0], after[1], limit + 1],
        limit + 1,
        lambda row: len(row["content"]),
    )
    messages, last = fill_page(
        (
            (
                (r["run_pk"], r["pk"]),
                ChatMessage(
                    role=r["role"], content=from_db(r["content"]), run_id=r["run_id"], created_at=iso(r["created_at"])
                ),
            )
            for r in rows
        ),
        limit,
    )
    next_cursor = sealer.seal(scope, *last) if last is not None else None
    return ChatHistoryPage(session_id=session.session_id, messages=messages, next_cursor=next_cursor)


async def _rows(
    conn: "Conn", query: str, params: list[Any], wanted: int, size: Callable[[asyncpg.Record], int]
) -> list[asyncpg.Record]:
    """The rows of a page query, read in batches and no further than a full page needs: once their
    texts pass RESULT_BUDGET_BYTES characters (each at least a byte of JSON), the page is full."""
    rows: list[asyncpg.Record] = []
    chars = 0
    reader = await conn.cursor(query, *params)
    while len(rows) < wanted and chars <= RESULT_BUDGET_BYTES:
        batch = await reader.fetch(min(_BATCH, wanted - len(rows)))
        if not batch:
            break
        rows.extend(batch)
        chars += sum(map(size, batch))
    return rows


async def tool_call_page(
    conn: "Conn",
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
    name_filter = " AND t.tool_name = $4" if tool_name is not None else ""
    params: list[Any] = [session.session_pk, before, limit + 1, *([to_db(tool_name)] if tool_name is not None else [])]
    rows = await _rows(
        conn,
        "SELECT t.*, r.run_id FROM tool_calls t JOIN runs r ON r.pk = t.run_pk "
        f"WHERE t.session_pk = $1{name_filter} AND t.pk < $2{member_filter} ORDER BY t.pk DESC LIMIT $3",
        params,
        limit + 1,
        lambda row: len(row["arguments"]) + len(row["result"]),
    )
    found, last = fill_page(((r["pk"], row_to_tool_call(r, r["run_id"])) for r in rows), limit)
    next_cursor = sealer.seal(scope, last) if last is not None else None
    return ToolCallPage(session_id=session.session_id, tool_calls=found, next_cursor=next_cursor)


async def context_messages(conn: "Conn", session_pk: int, num_runs: int) -> list[ContextMessage]:
    """The messages of the last `num_runs` completed runs of the leader (no team member's), whole runs only,
    oldest first."""
    if num_runs <= 0:
        return []
    rows = await conn.fetch(
        "SELECT m.role, m.content, m.blocks FROM messages m WHERE m.run_pk IN "
        "(SELECT pk FROM runs WHERE session_pk = $1 AND status = 'completed' AND parent_run_id IS NULL "
        "ORDER BY pk DESC LIMIT $2) "
        "ORDER BY m.run_pk, m.pk",
        session_pk,
        num_runs,
    )
    return [
        ContextMessage(
            role=r["role"], content=from_db(r["content"]), blocks=json.loads(r["blocks"]) if r["blocks"] else None
        )
        for r in rows
    ]


async def runs_for_summary(conn: "Conn", session_pk: int, after: int) -> tuple[list[RunTranscript], int]:
    """The leader's completed runs after the first `after` runs, and how many runs from the start are finished
    or paused (a team member's runs and paused runs are counted, not summarized)."""
    rows = await conn.fetch(
        "SELECT run_id, input, content, status, parent_run_id FROM runs WHERE session_pk = $1 ORDER BY pk OFFSET $2",
        session_pk,
        after,
    )
    runs: list[RunTranscript] = []
    covered = after
    for row in rows:
        if row["status"] == "running":
            break  # it may still complete, and a later summary must see it then: coverage stops before it
        covered += 1  # a paused run is covered, not summarized: finish_continued lowers the summary if it completes
        if row["status"] == "completed" and row["parent_run_id"] is None:
            runs.append(
                RunTranscript(
                    run_id=row["run_id"],
                    input=from_db(row["input"]),
                    content=optional_from_db(row["content"]),
                    position=covered,
                )
            )
    return runs, covered
