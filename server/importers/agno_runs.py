"""One run of an Agno session as a Turn: the input, the answer, the status, the run's own messages, tool
calls and metrics, a workflow run's steps, and the run it served (a team member's run served its
leader's; a workflow step's agent or team run, the workflow's)."""

import json
from typing import Any

from mcp_server_sessions.store.limits import MAX_JSON_BYTES, MAX_RUN_BYTES, MAX_STEPS_PER_RUN, MAX_TOKENS
from mcp_server_sessions.store.models import RunStatus, StoredRunMetrics, ToolCall, WorkflowStep
from mcp_server_sessions.store.records import RecordedMessage

from .fitting import (
    as_list,
    as_object,
    fitted_id,
    fitted_json,
    fitted_name,
    fitted_text,
    from_epoch,
    plain_json,
    seconds_to_ms,
)
from .turns import Turn, history_line, tool_call

_STATUSES: dict[str, tuple[RunStatus, str | None]] = {
    "COMPLETED": ("completed", None),
    "ERROR": ("error", "The run ended in error in Agno."),
    "CANCELLED": ("cancelled", None),
    "PAUSED": ("cancelled", "The run was paused in Agno, waiting for a confirmation or input, when it was imported."),
    "REGENERATED": ("cancelled", "Agno regenerated this run: a later run took its place."),
}
_TOKENS = ("input_tokens", "output_tokens", "total_tokens", "cache_read_tokens", "cache_write_tokens")
_UNFINISHED: tuple[RunStatus, str] = ("error", "The run had not finished in Agno when it was imported.")


def run_key(run: dict[str, Any]) -> str:
    """The run's id as the store keeps it (one made from the run's contents when Agno kept none)."""
    raw = run.get("run_id")
    return fitted_id(raw if isinstance(raw, str) else json.dumps(plain_json(run), sort_keys=True), "run")


def agno_turn(run: dict[str, Any], parent_run_id: str | None, fallback_time: str) -> Turn:
    """One run of the session: its own tool calls, metrics and messages, the steps of a workflow run,
    the run it served (`parent_run_id`: a team leader's or a workflow's); `fallback_time` if it has none."""
    created_at = from_epoch(run.get("created_at")) or fallback_time
    run_id = run_key(run)
    status, error = _STATUSES.get(str(run.get("status")).upper(), _UNFINISHED)
    content, agent_id = run.get("content"), run.get("agent_id")
    return Turn(
        run_id=run_id,
        input=_input(run),
        content=None if content is None else _text(content),
        created_at=created_at,
        status=status,
        error=error,
        tool_calls=_tool_calls(run, run_id, created_at),
        metrics=_metrics(run),
        messages=_messages(run),
        parent_run_id=parent_run_id,
        agent_id=fitted_id(agent_id, "agent") if isinstance(agent_id, str) else None,
        steps=_steps(run),
    )


def _tool_calls(run: dict[str, Any], run_id: str, fallback_time: str) -> list[ToolCall]:
    calls = []
    for index, tool in enumerate(as_list(run.get("tools"))):
        if not isinstance(tool, dict):
            continue
        metrics = as_object(tool.get("metrics"))
        tool_call_id = tool.get("tool_call_id")
        calls.append(
            tool_call(
                tool_call_id if isinstance(tool_call_id, str) else f"{run_id}:tool:{index}",
                str(tool.get("tool_name") or "unknown"),
                tool.get("tool_args") or {},
                tool.get("result"),
                is_error=bool(tool.get("tool_call_error")),
                created_at=from_epoch(tool.get("created_at")) or fallback_time,
                duration_ms=seconds_to_ms(metrics.get("duration")),
            )
        )
    return calls


def _steps(run: dict[str, Any]) -> list[WorkflowStep]:
    """A workflow run's steps as they ended (the first MAX_STEPS_PER_RUN), each output within its share of
    a quarter of what a run may hold."""
    reported = [step for step in as_list(run.get("step_results")) if isinstance(step, dict)][:MAX_STEPS_PER_RUN]
    share = min(MAX_JSON_BYTES, MAX_RUN_BYTES // 4 // max(len(reported), 1))
    steps = []
    for number, step in enumerate(reported, start=1):
        failed = step.get("success") is False
        output = step.get("error") if failed and step.get("error") else step.get("content")
        steps.append(
            WorkflowStep(
                name=fitted_name(str(step.get("step_name") or f"step {number}")) or f"step {number}",
                output=fitted_json(output, share),
                status="error" if failed else "paused" if step.get("is_paused") else "completed",
                duration_ms=seconds_to_ms(as_object(step.get("metrics")).get("duration")),
            )
        )
    return steps


def _input(run: dict[str, Any]) -> str:
    raw = run.get("input")
    if isinstance(raw, dict) and "input_content" in raw:
        raw = raw["input_content"]
    if raw is None:
        messages = as_list(run.get("messages"))
        asked = [m for m in messages if isinstance(m, dict) and m.get("role") == "user" and not m.get("from_history")]
        raw = asked[0].get("content") if asked else None
    return _text(raw)


def _text(value: object) -> str:
    """Agno content as text: a string as it is, text parts joined, anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "role" in value and "content" in value:
        return _text(value["content"])
    if isinstance(value, list) and value and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in value):
        return "\n".join(part["text"] for part in value)
    return json.dumps(plain_json(value), ensure_ascii=False)


def _messages(run: dict[str, Any]) -> list[RecordedMessage] | None:
    """The run's own user, assistant and tool messages; None when Agno kept none."""
    messages = []
    for message in as_list(run.get("messages")):
        if not isinstance(message, dict) or message.get("from_history"):
            continue
        role, content = message.get("role"), message.get("content")
        if role == "user":
            messages.append(RecordedMessage(role="user", content=fitted_text(_text(content))))
        elif role == "assistant":
            asks = bool(message.get("tool_calls"))
            messages.append(RecordedMessage(role="assistant", content=fitted_text(_text(content)), is_tool=asks))
        elif role == "tool":
            name = str(message.get("tool_name") or "tool")
            arguments, failed = plain_json(message.get("tool_args") or {}), bool(message.get("tool_call_error"))
            messages.append(history_line(name, arguments, plain_json(content), failed))
    return messages or None


def _metrics(run: dict[str, Any]) -> StoredRunMetrics:
    """The run's own tokens, timing and model (a team member's and a step's runs are runs of their own)."""
    model = fitted_name(run["model"]) if isinstance(run.get("model"), str) else None
    metrics = as_object(run.get("metrics"))
    if not any(key in metrics for key in _TOKENS):  # none reported (a workflow reports its steps' only)
        return StoredRunMetrics(duration_ms=seconds_to_ms(metrics.get("duration")), model=model)
    input_tokens, output_tokens = _count(metrics.get("input_tokens")), _count(metrics.get("output_tokens"))
    return StoredRunMetrics(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=min(input_tokens + output_tokens, MAX_TOKENS),
        cache_read_tokens=_count(metrics.get("cache_read_tokens")),
        cache_write_tokens=_count(metrics.get("cache_write_tokens")),
        duration_ms=seconds_to_ms(metrics.get("duration")),
        time_to_first_token_ms=seconds_to_ms(metrics.get("time_to_first_token")),
        model=model,
    )


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 or value == float("inf"):
        return 0
    return min(int(value), MAX_TOKENS)
