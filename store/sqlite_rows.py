"""Converting between the contract's models and SQLite rows, without touching the database.

`prepare_run` does all validation and serialization before the write transaction starts, so
the transaction itself only inserts and holds the write lock as briefly as possible.
"""

import json
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from .attachments import PreparedAttachment, prepare_attachments
from .errors import InvalidInput
from .limits import (
    MAX_PAUSED_RUN_IDS,
    MAX_RUN_BYTES,
    MAX_SESSION_TOKENS,
    MAX_STEPS_PER_RUN,
    MAX_TOOL_CALLS_PER_RUN,
    check_id,
    dump_json,
    text_bytes,
)
from .models import (
    Requirement,
    Run,
    Session,
    SessionMetrics,
    SessionSummary,
    StoredAgentConfig,
    StoredRunMetrics,
    ToolCall,
    WorkflowStep,
)
from .run_inputs import NewRun
from .sqlite_search_index import tool_call_text


@dataclass(frozen=True)
class PreparedMessage:
    role: str
    content: str
    blocks: str | None
    is_tool: bool
    searchable: bool
    """Whether its text enters the search index: a tool message only for a workflow step (a tool call's
    message is not, the call itself is)."""


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
    size: int
    """UTF-8 bytes of its texts and JSON: what writing it costs."""
    parent_run_id: str | None = None
    agent_id: str | None = None
    steps: str | None = None
    requirements: str | None = None
    resume: str | None = None
    """JSON text of the run's steps, requirements and resume state; None when it has none."""
    attachments: tuple[PreparedAttachment, ...] = ()
    """Its media, checked and decoded (not counted in `size`: they have their own limit)."""

    @property
    def run_columns(self) -> tuple[str | None, ...]:
        """parent_run_id, agent_id, steps, requirements and resume, as RUN_EXTRA_COLUMNS names them."""
        return (self.parent_run_id, self.agent_id, self.steps, self.requirements, self.resume)


RUN_EXTRA_COLUMNS = ("parent_run_id", "agent_id", "steps", "requirements", "resume")
"""The runs columns of a team, workflow or paused run, written alike by both backends."""


def prepare_run(run: NewRun) -> PreparedRun:
    check_id(run.run_id, "run_id")
    if len(run.tool_calls) > MAX_TOOL_CALLS_PER_RUN:
        raise InvalidInput(f"A run may carry at most {MAX_TOOL_CALLS_PER_RUN} tool calls; got {len(run.tool_calls)}.")
    if len(run.requirements) > MAX_TOOL_CALLS_PER_RUN:
        raise InvalidInput(
            f"A run may wait for at most {MAX_TOOL_CALLS_PER_RUN} client tool calls; got {len(run.requirements)}."
        )
    if len(run.steps) > MAX_STEPS_PER_RUN:
        raise InvalidInput(f"A run may carry at most {MAX_STEPS_PER_RUN} steps; got {len(run.steps)}.")
    for value, what in ((run.parent_run_id, "parent_run_id"), (run.agent_id, "agent_id")):
        if value is not None:
            check_id(value, what)
    text_bytes(run.input, "input")
    attachments = prepare_attachments(run.attachments)
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
                search_text=tool_call_text(call.tool_name, arguments, call.result, result),
            )
        )
    messages = []
    step_lines = {step.history_line() for step in run.steps}
    for message in run.messages:
        total += text_bytes(message.content, f"{message.role} message")
        blocks = dump_json(message.blocks, "message blocks", MAX_RUN_BYTES) if message.blocks is not None else None
        total += len(blocks or "")
        searchable = bool(message.content) and (not message.is_tool or message.content in step_lines)
        messages.append(PreparedMessage(message.role, message.content, blocks, message.is_tool, searchable))
    steps = _json_list([step.model_dump() for step in run.steps], "steps")
    requirements = _json_list([requirement.model_dump() for requirement in run.requirements], "requirements")
    resume = dump_json(run.resume, "resume", MAX_RUN_BYTES) if run.resume is not None else None
    total += len(steps or "") + len(requirements or "") + len(resume or "")
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
        size=total,
        parent_run_id=run.parent_run_id,
        agent_id=run.agent_id,
        steps=steps,
        requirements=requirements,
        resume=resume,
        attachments=attachments,
    )


def _json_list(items: list[dict[str, Any]], what: str) -> str | None:
    """A list of steps or requirements as stored: None for none, so a plain run's row stays as it was."""
    return dump_json(items, what, MAX_RUN_BYTES) if items else None


PAUSED_RUN_IDS = (
    "(SELECT json_group_array(run_id) FROM (SELECT run_id FROM runs WHERE session_pk = s.pk AND status = 'paused' "
    f"ORDER BY pk LIMIT {MAX_PAUSED_RUN_IDS})) AS paused_run_ids"
)
"""A select column of `sessions s`: its oldest paused runs' ids as a JSON array (through the runs_paused index)."""


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
        session_type=row["session_type"],
        agent_id=row["agent_id"],
        team_id=row["team_id"],
        workflow_id=row["workflow_id"],
        paused_run_ids=json.loads(row["paused_run_ids"]),
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
        parent_run_id=row["parent_run_id"],
        agent_id=row["agent_id"],
        steps=stored_list(WorkflowStep, row["steps"]),
        requirements=stored_list(Requirement, row["requirements"]),
    )


Item = TypeVar("Item", bound=BaseModel)


def stored_list(model: type[Item], text: str | None) -> list[Item]:
    """Steps or requirements as stored (JSON text, or NULL for none)."""
    return [model.model_validate(item) for item in json.loads(text)] if text else []
