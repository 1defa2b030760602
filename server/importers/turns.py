"""A turn read from another tool, made into the runs of a record and the record of a whole session.

A run holds at most MAX_TOOL_CALLS_PER_RUN tool calls and MAX_RUN_BYTES in all, and a coding agent's
turn can make hundreds of calls: such a turn becomes several runs, the first with the turn's own id,
input, answer and metrics, and each next one (`<run id>:2`, `:3` ...) with the calls that did not fit.
The same turn always splits the same way, so a second import finds the same run ids.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mcp_server_sessions.store.limits import (
    MAX_JSON_BYTES,
    MAX_RUN_BYTES,
    MAX_SESSION_TOKENS,
    MAX_TOOL_CALLS_PER_RUN,
    TOOL_CALL_LINE_CHARS,
)
from mcp_server_sessions.store.models import (
    RunStatus,
    Session,
    SessionMetrics,
    SessionSummary,
    StoredRunMetrics,
    ToolCall,
    WorkflowStep,
)
from mcp_server_sessions.store.records import RecordedMessage, RunRecord, SessionRecord
from mcp_server_sessions.store.run_inputs import NewToolCall

from .fitting import fitted_id, fitted_json, fitted_name, fitted_text, json_size

_LINE_BYTES = TOOL_CALL_LINE_CHARS * 4  # a tool call's line in the history, at most, in UTF-8
_MESSAGES_BUDGET = MAX_RUN_BYTES // 2
"""The most a turn's own messages may take; beyond it they give way to the input and answer alone."""


@dataclass
class Turn:
    """One exchange as the source kept it: what was asked, what was answered, the calls in between."""

    run_id: str
    input: str
    content: str | None
    created_at: str
    status: RunStatus = "completed"
    error: str | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    """Fitted calls (see `tool_call`) in the order they were made; their run_id is set per run."""
    metrics: StoredRunMetrics = field(default_factory=StoredRunMetrics)
    messages: list[RecordedMessage] | None = None
    """The source's own messages of the turn; None: the user's input, a line per call and per step, the
    answer."""
    parent_run_id: str | None = None
    agent_id: str | None = None
    steps: list[WorkflowStep] = field(default_factory=list)


def tool_call(
    tool_call_id: str,
    tool_name: str,
    arguments: Any,
    result: Any,
    *,
    is_error: bool,
    created_at: str,
    duration_ms: float | None,
) -> ToolCall:
    """A call as the store can hold it (id, name, arguments and result fitted), not yet in a run."""
    return ToolCall(
        tool_call_id=fitted_id(tool_call_id, "call"),
        run_id="",
        tool_name=fitted_name(tool_name) or "unknown",
        arguments=_arguments(arguments),
        result=fitted_json(result),
        is_error=is_error,
        created_at=created_at,
        duration_ms=duration_ms,
    )


def history_line(tool_name: str, arguments: Any, result: Any, is_error: bool) -> RecordedMessage:
    """A tool message of the history, written as `record_run` writes one."""
    call = NewToolCall.model_construct(tool_name=tool_name, arguments=arguments, result=result, is_error=is_error)
    return RecordedMessage(role="tool", content=fitted_text(call.history_line()), is_tool=True)


def runs_of(turn: Turn, session_id: str) -> list[RunRecord]:
    """The turn as one run, or as several when its tool calls do not fit in one (the steps go with the
    first; each run keeps the run the turn served)."""
    input_text = fitted_text(turn.input)
    content = fitted_text(turn.content) if turn.content is not None else None
    own = turn.messages if turn.messages is not None and _size(turn.messages) <= _MESSAGES_BUDGET else None
    question = RecordedMessage(role="user", content=input_text)
    answer = [RecordedMessage(role="assistant", content=content)] if content is not None else []
    steps = [RecordedMessage(role="tool", content=step.history_line(), is_tool=True) for step in turn.steps]
    leading = own if own is not None else [question, *steps, *answer]
    room = MAX_RUN_BYTES - _size(leading) - json_size([step.model_dump() for step in turn.steps])
    runs = []
    for number, calls in enumerate(_batches(turn.tool_calls, room), start=1):
        first = number == 1
        run_id = turn.run_id if first else fitted_id(f"{turn.run_id}:{number}", "run")
        lines = [history_line(call.tool_name, call.arguments, call.result, call.is_error) for call in calls]
        if not first:
            messages = lines
        elif own is not None:
            messages = list(own)
        else:
            messages = [question, *lines, *steps, *answer]  # as NewRun.recorded lays a turn out
        runs.append(
            RunRecord(
                run_id=run_id,
                session_id=session_id,
                status=turn.status,
                input=input_text,
                content=content if first else None,
                tool_calls=[call.model_copy(update={"run_id": run_id}) for call in calls],
                metrics=turn.metrics if first else StoredRunMetrics(),
                created_at=turn.created_at if first or not calls else max(turn.created_at, calls[0].created_at),
                error=turn.error,
                messages=messages,
                parent_run_id=turn.parent_run_id,
                agent_id=turn.agent_id,
                steps=turn.steps if first else [],
            )
        )
    return runs


def session_record(
    session: Session, runs: Iterable[RunRecord], summary: tuple[str, list[str], str] | None = None
) -> SessionRecord:
    """The whole session: `session`'s fields with its run count, token totals and last update taken
    from `runs` (a run id that comes again is left out), and the summary (text, topics, time), which
    covers the runs begun by its time."""
    kept: list[RunRecord] = []
    seen: set[str] = set()
    for run in runs:
        if run.run_id not in seen:
            seen.add(run.run_id)
            kept.append(run)
    totals = [0, 0, 0, 0]
    for run in kept:
        figures = (run.metrics.input_tokens, run.metrics.output_tokens)
        caches = (run.metrics.cache_read_tokens, run.metrics.cache_write_tokens)
        for index, figure in enumerate((*figures, *caches)):
            totals[index] = min(totals[index] + (figure or 0), MAX_SESSION_TOKENS)
    metrics = SessionMetrics(
        input_tokens=totals[0],
        output_tokens=totals[1],
        total_tokens=min(totals[0] + totals[1], MAX_SESSION_TOKENS),
        cache_read_tokens=totals[2],
        cache_write_tokens=totals[3],
    )
    stored_summary = None
    if summary is not None:
        text, topics, updated_at = summary
        covered = sum(1 for run in kept if run.created_at <= updated_at)
        stored_summary = SessionSummary(summary=text, topics=topics, run_count=covered, updated_at=updated_at)
    updated_at = max([session.updated_at, *(run.created_at for run in kept)])
    return SessionRecord(
        session=session.model_copy(
            update={"run_count": len(kept), "metrics": metrics, "summary": stored_summary, "updated_at": updated_at}
        ),
        runs=kept,
    )


def fitted_object(value: Any, what: str, notes: dict[str, Any], room: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """A JSON object (state, metadata) as it is when it fits in `room` bytes; else an empty one, with a
    note in `notes` saying what was left out."""
    if not isinstance(value, dict) or not value:
        return {}
    fitted = fitted_json(value, room)
    if isinstance(fitted, dict):
        return fitted
    notes[f"{what}_left_out"] = f"The {what} was {json_size(value):,} bytes, over the store's limit."
    return {}


def _arguments(value: Any) -> dict[str, Any]:
    fitted = fitted_json(value if isinstance(value, dict) else {"value": value})
    return fitted if isinstance(fitted, dict) else {"cut_on_import": fitted}


def _size(messages: list[RecordedMessage]) -> int:
    return sum(len(message.content.encode()) for message in messages)


def _batches(calls: list[ToolCall], first_room: int) -> list[list[ToolCall]]:
    """Calls in order, in runs of at most MAX_TOOL_CALLS_PER_RUN calls and their bytes (each with
    its history line) within a run's room; always at least one, maybe empty, run."""
    batches: list[list[ToolCall]] = [[]]
    room = first_room
    for call in calls:
        size = json_size(call.arguments) + json_size(call.result) + _LINE_BYTES
        if batches[-1] and (len(batches[-1]) == MAX_TOOL_CALLS_PER_RUN or size > room):
            batches.append([])
            room = MAX_RUN_BYTES
        batches[-1].append(call)
        room -= size
    return batches
