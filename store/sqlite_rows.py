"""Converting between the contract's models and SQLite rows.

`prepare_run` does all validation and serialization before the write transaction starts, so
the transaction itself only inserts and holds the write lock as briefly as possible.
"""

import json
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any

from . import sqlite_search_index as search_index
from .errors import InvalidInput
from .limits import MAX_RUN_BYTES, MAX_SESSION_TOKENS, MAX_TOOL_CALLS_PER_RUN, check_id, dump_json, text_bytes
from .models import (
    NewRun,
    Run,
    Session,
    SessionMetrics,
    SessionSummary,
    StoredAgentConfig,
    StoredRunMetrics,
    ToolCall,
)


@dataclass(frozen=True)
class PreparedMessage:
    role: str
    content: str
    blocks: str | None
    is_tool: bool


@dataclass(frozen=True)
class PreparedToolCall:
    tool_call_id: str
    tool_name: str
    arguments: str
    result: str
    is_error: bool
    duration_ms: float | None
    search_text: str


@dataclass(frozen=True)
class PreparedRun:
    run_id: str
    status: str
    input: str
    content: str | None
    metrics: str
    tokens: tuple[int, int, int, int]
    """input, output, cache read and cache write tokens, added to the session's totals."""
    error: str | None
    messages: list[PreparedMessage]
    tool_calls: list[PreparedToolCall]


def prepare_run(run: NewRun) -> PreparedRun:
    check_id(run.run_id, "run_id")
    if len(run.tool_calls) > MAX_TOOL_CALLS_PER_RUN:
        raise InvalidInput(f"A run may carry at most {MAX_TOOL_CALLS_PER_RUN} tool calls; got {len(run.tool_calls)}.")
    text_bytes(run.input, "input")
    if run.content is not None:
        text_bytes(run.content, "output")
    total = 0
    calls = []
    for index, call in enumerate(run.tool_calls):
        text_bytes(call.tool_name, f"tool_calls[{index}].tool_name")
        arguments = dump_json(call.arguments, f"tool_calls[{index}].arguments")
        result = dump_json(call.result, f"tool_calls[{index}].result")
        total += len(arguments) + len(result)
        calls.append(
            PreparedToolCall(
                tool_call_id=call.tool_call_id or f"call_{uuid.uuid4().hex[:24]}",
                tool_name=call.tool_name,
                arguments=arguments,
                result=result,
                is_error=call.is_error,
                duration_ms=call.duration_ms,
                search_text=search_index.tool_call_text(call.tool_name, arguments, call.result, result),
            )
        )
    messages = []
    for message in run.messages:
        total += text_bytes(message.content, f"{message.role} message")
        blocks = dump_json(message.blocks, "message blocks", MAX_RUN_BYTES) if message.blocks is not None else None
        total += len(blocks or "")
        messages.append(PreparedMessage(message.role, message.content, blocks, message.is_tool))
    if total > MAX_RUN_BYTES:
        raise InvalidInput(f"The run is {total:,} bytes in all, over the limit of {MAX_RUN_BYTES:,}.")
    return PreparedRun(
        run_id=run.run_id,
        status=run.status,
        input=run.input,
        content=run.content,
        metrics=run.metrics.model_dump_json(exclude_none=True),
        tokens=(
            run.metrics.input_tokens or 0,
            run.metrics.output_tokens or 0,
            run.metrics.cache_read_tokens or 0,
            run.metrics.cache_write_tokens or 0,
        ),
        error=run.error,
        messages=messages,
        tool_calls=calls,
    )


def row_to_session(row: sqlite3.Row, user_id: str) -> Session:
    input_tokens, output_tokens = _total(row["input_tokens"]), _total(row["output_tokens"])
    return Session(
        session_id=row["session_id"],
        user_id=user_id,
        name=row["name"],
        state=json.loads(row["state"]),
        metadata=json.loads(row["metadata"]),
        agent=StoredAgentConfig.model_validate_json(row["agent"]) if row["agent"] else None,
        summary=SessionSummary.model_validate_json(row["summary"]) if row["summary"] else None,
        run_count=row["run_count"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        metrics=SessionMetrics(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=_total(input_tokens + output_tokens),
            cache_read_tokens=_total(row["cache_read_tokens"]),
            cache_write_tokens=_total(row["cache_write_tokens"]),
        ),
    )


def _total(value: float) -> int:
    """A session's token total, saturated and whole even where an older version let it overflow into a REAL."""
    return min(int(value), MAX_SESSION_TOKENS)


def row_to_tool_call(row: sqlite3.Row) -> ToolCall:
    return ToolCall(
        tool_call_id=row["tool_call_id"],
        run_id=row["run_id"],
        tool_name=row["tool_name"],
        arguments=json.loads(row["arguments"]),
        result=json.loads(row["result"]),
        is_error=bool(row["is_error"]),
        created_at=row["created_at"],
        duration_ms=row["duration_ms"],
    )


def row_to_run(row: sqlite3.Row, session_id: str, tool_calls: list[ToolCall]) -> Run:
    metrics: dict[str, Any] = json.loads(row["metrics"])
    return Run(
        run_id=row["run_id"],
        session_id=session_id,
        status=row["status"],
        input=row["input"],
        content=row["content"],
        tool_calls=tool_calls,
        metrics=StoredRunMetrics.model_validate(metrics),
        created_at=row["created_at"],
        error=row["error"],
    )


def write_run(
    raw: sqlite3.Connection, user_pk: int, session_pk: int, run: PreparedRun, run_pk: int | None, now: str
) -> int:
    if run_pk is None:
        run_pk = raw.execute(
            "INSERT INTO runs (session_pk, run_id, status, input, content, metrics, error, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (session_pk, run.run_id, run.status, run.input, run.content, run.metrics, run.error, now),
        ).lastrowid
        assert run_pk is not None
    else:
        raw.execute(
            "UPDATE runs SET status = ?, content = ?, metrics = ?, error = ?, owner = NULL WHERE pk = ?",
            (run.status, run.content, run.metrics, run.error, run_pk),
        )
    for message in run.messages:
        message_pk = raw.execute(
            "INSERT INTO messages (session_pk, run_pk, role, content, blocks, is_tool) VALUES (?, ?, ?, ?, ?, ?)",
            (session_pk, run_pk, message.role, message.content, message.blocks, message.is_tool),
        ).lastrowid
        assert message_pk is not None
        search_index.add_message(raw, message_pk, user_pk, session_pk, message.content, message.is_tool)
    for call in run.tool_calls:
        call_pk = raw.execute(
            "INSERT INTO tool_calls (session_pk, run_pk, tool_call_id, tool_name, arguments, result, is_error, "
            "duration_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session_pk,
                run_pk,
                call.tool_call_id,
                call.tool_name,
                call.arguments,
                call.result,
                call.is_error,
                call.duration_ms,
                now,
            ),
        ).lastrowid
        assert call_pk is not None
        search_index.add_tool_call(raw, call_pk, user_pk, session_pk, call.search_text)
    return run_pk


def load_run(raw: sqlite3.Connection, run_pk: int, session_id: str) -> Run:
    row = raw.execute("SELECT * FROM runs WHERE pk = ?", (run_pk,)).fetchone()
    calls = raw.execute(
        "SELECT t.*, ? AS run_id FROM tool_calls t WHERE t.run_pk = ? ORDER BY t.pk", (row["run_id"], run_pk)
    ).fetchall()
    return row_to_run(row, session_id, [row_to_tool_call(call) for call in calls])


def ensure_session(raw: sqlite3.Connection, user_pk: int, session_id: str, now: str) -> int:
    """The pk of the user's session, created empty if it does not exist yet."""
    raw.execute(
        "INSERT OR IGNORE INTO sessions (user_pk, session_id, created_at, updated_at) VALUES (?, ?, ?, ?)",
        (user_pk, session_id, now, now),
    )
    row = raw.execute("SELECT pk FROM sessions WHERE user_pk = ? AND session_id = ?", (user_pk, session_id)).fetchone()
    return int(row[0])


_ADD_TOKENS = ", ".join(
    f"{column} = min({column} + ?, {MAX_SESSION_TOKENS})"
    for column in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
)


def add_to_session(raw: sqlite3.Connection, session_pk: int, runs: int, tokens: tuple[int, ...], now: str) -> None:
    """Count new runs and their tokens (input, output, cache read, cache write) in the session's totals.

    Each total saturates at MAX_SESSION_TOKENS rather than overflowing SQLite's 64-bit integers into a REAL.
    """
    raw.execute(
        f"UPDATE sessions SET run_count = run_count + ?, updated_at = ?, {_ADD_TOKENS} WHERE pk = ?",
        (runs, now, *tokens, session_pk),
    )
