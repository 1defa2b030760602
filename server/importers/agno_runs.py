"""One run of an Agno session, with the runs under it (a team member's, a workflow step's), as a Turn:
the input, the answer, the status, the run's own messages, every tool call (the runs under it
included, and each workflow step as a `workflow_step` call) and the tokens of them all."""

import json
from typing import Any

from mcp_server_sessions.store.limits import MAX_TOKENS
from mcp_server_sessions.store.models import RunStatus, StoredRunMetrics, ToolCall
from mcp_server_sessions.store.records import RecordedMessage

from .fitting import as_list, as_object, fitted_id, fitted_name, fitted_text, from_epoch, plain_json, seconds_to_ms
from .turns import Turn, history_line, tool_call

_STATUSES: dict[str, tuple[RunStatus, str | None]] = {
    "COMPLETED": ("completed", None),
    "ERROR": ("error", "The run ended in error in Agno."),
    "CANCELLED": ("cancelled", None),
    "PAUSED": ("cancelled", "The run was paused in Agno, waiting for a confirmation or input, when it was imported."),
    "REGENERATED": ("cancelled", "Agno regenerated this run: a later run took its place."),
}
_UNFINISHED: tuple[RunStatus, str] = ("error", "The run had not finished in Agno when it was imported.")


def agno_turn(top: dict[str, Any], descendants: list[dict[str, Any]], fallback_time: str) -> Turn:
    """The session's run `top` with the runs under it folded in; `fallback_time` when it has no time."""
    created_at = from_epoch(top.get("created_at")) or fallback_time
    raw_id = top.get("run_id")
    run_id = fitted_id(raw_id if isinstance(raw_id, str) else json.dumps(plain_json(top), sort_keys=True), "run")
    status, error = _STATUSES.get(str(top.get("status")).upper(), _UNFINISHED)
    calls = _tool_calls(top, run_id, created_at) + _step_calls(top, run_id, created_at)
    for child in descendants:
        child_id = child.get("run_id")
        calls += _tool_calls(child, child_id if isinstance(child_id, str) else run_id, created_at)
    calls.sort(key=lambda call: call.created_at)  # stable: calls of one second keep their order
    content = top.get("content")
    return Turn(
        run_id=run_id,
        input=_input(top),
        content=None if content is None else _text(content),
        created_at=created_at,
        status=status,
        error=error,
        tool_calls=calls,
        metrics=_metrics(top, descendants),
        messages=_messages(top),
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


def _step_calls(run: dict[str, Any], run_id: str, created_at: str) -> list[ToolCall]:
    """A workflow run's steps, each as a `workflow_step` call with the step's output as its result."""
    calls = []
    for index, step in enumerate(as_list(run.get("step_results"))):
        if not isinstance(step, dict):
            continue
        failed = step.get("success") is False
        about = ("step_name", "step_type", "executor_type", "executor_name")
        metrics = as_object(step.get("metrics"))
        step_id = step.get("step_id") or step.get("step_run_id")
        calls.append(
            tool_call(
                step_id if isinstance(step_id, str) else f"{run_id}:step:{index}",
                "workflow_step",
                {key: step[key] for key in about if step.get(key) is not None},
                step.get("error") if failed and step.get("error") else step.get("content"),
                is_error=failed,
                created_at=created_at,
                duration_ms=seconds_to_ms(metrics.get("duration")),
            )
        )
    return calls


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


def _metrics(top: dict[str, Any], descendants: list[dict[str, Any]]) -> StoredRunMetrics:
    """The run's own timing and model, with its tokens and those of the runs under it summed."""
    own = as_object(top.get("metrics"))
    models = [run.get("model") for run in (top, *descendants) if isinstance(run.get("model"), str)]
    model = fitted_name(models[0]) if models else None
    figures = [run["metrics"] for run in (top, *descendants) if isinstance(run.get("metrics"), dict)]
    if not figures:
        return StoredRunMetrics(model=model)

    def summed(key: str) -> int:
        return min(sum(_count(metrics.get(key)) for metrics in figures), MAX_TOKENS)

    input_tokens, output_tokens = summed("input_tokens"), summed("output_tokens")
    return StoredRunMetrics(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=min(input_tokens + output_tokens, MAX_TOKENS),
        cache_read_tokens=summed("cache_read_tokens"),
        cache_write_tokens=summed("cache_write_tokens"),
        duration_ms=seconds_to_ms(own.get("duration")),
        time_to_first_token_ms=seconds_to_ms(own.get("time_to_first_token")),
        model=model,
    )


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0 or value == float("inf"):
        return 0
    return min(int(value), MAX_TOKENS)
