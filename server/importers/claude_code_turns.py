"""One turn of a Claude Code transcript while it is read: the prompt, then the assistant's entries and
the tool results that come back, until the next prompt makes it a Turn."""

from dataclasses import dataclass, field
from typing import Any

from mcp_server_sessions.store.limits import MAX_TOKENS
from mcp_server_sessions.store.models import RunStatus, StoredRunMetrics

from .fitting import as_list, as_object, fitted_name, milliseconds_between
from .turns import Turn, tool_call

_SYNTHETIC_MODEL = "<synthetic>"  # what Claude Code names its own messages (API errors, interruptions)
_USAGE = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_input_tokens": "cache_read_tokens",
    "cache_creation_input_tokens": "cache_write_tokens",
}


def message_text(content: object) -> str:
    """A message's text: a string as it is, text blocks joined, `[image]` for an image block."""
    if isinstance(content, str):
        return content
    parts = []
    for block in as_list(content):
        block = as_object(block)
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            parts.append(block["text"])
        elif block.get("type") == "image":
            parts.append("[image]")
    return "\n".join(parts)


@dataclass
class _Call:
    tool_call_id: str
    name: str
    arguments: Any
    created_at: str
    result: str | None = None
    is_error: bool = False
    answered_at: str | None = None


@dataclass
class OpenTurn:
    run_id: str
    prompt: str
    created_at: str
    command: bool = False
    """Started by a slash command: a command nothing answered (/model, /clear ...) is no turn."""
    last_time: str = ""
    texts: list[str] = field(default_factory=list)
    calls: dict[str, _Call] = field(default_factory=dict)
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each model response's usage by message id: Claude Code repeats it on every entry of a response."""
    model: str | None = None
    status: RunStatus = "completed"
    error: str | None = None
    answered: bool = False
    """An assistant text came after the last tool result (or, with no tool results, at all)."""
    stop_reason: object = None
    """How the last assistant entry of the turn stopped, as the entry says."""

    def reply(self, entry: dict[str, Any], message: dict[str, Any], time: str) -> None:
        """An assistant entry: a response's text and tool_use blocks, its usage and model."""
        self.last_time = max(self.last_time, time)
        response = message.get("id") or entry.get("uuid") or str(len(self.usage))
        model = message.get("model")
        if entry.get("isApiErrorMessage") or model == _SYNTHETIC_MODEL:
            if entry.get("isApiErrorMessage"):
                self.status, self.error = "error", message_text(message.get("content")) or "API error."
            return
        if isinstance(model, str):
            self.model = model
        self.stop_reason = message.get("stop_reason")
        if isinstance(message.get("usage"), dict):
            self.usage[str(response)] = message["usage"]
        content = message.get("content")
        for block in [{"type": "text", "text": content}] if isinstance(content, str) else as_list(content):
            block = as_object(block)
            if block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"].strip():
                if block["text"] not in self.texts[-1:]:  # an entry repeated as a response streamed
                    self.texts.append(block["text"])
                self.answered = True
            elif block.get("type") == "tool_use" and isinstance(block.get("id"), str):
                name = str(block.get("name") or "unknown")
                self.calls.setdefault(block["id"], _Call(block["id"], name, block.get("input") or {}, time))

    def answer(self, results: list[Any], time: str) -> None:
        """The tool_result blocks of a user entry, each for a tool_use of this turn."""
        self.last_time = max(self.last_time, time)
        for block in results:
            call = self.calls.get(block.get("tool_use_id"))
            if call is not None:
                self.answered = False
                call.result, call.is_error = message_text(block.get("content")), block.get("is_error") is True
                call.answered_at = time

    def interrupted(self, time: str) -> None:
        self.last_time = max(self.last_time, time)
        self.status, self.error = "cancelled", "The person interrupted this turn in Claude Code."

    @property
    def in_progress(self) -> bool:
        """Still being answered when the transcript was read: no interruption or API error ended it, and
        no final answer came (a tool call waits for its result, the last response stopped to call tools,
        or no assistant text followed the last tool result)."""
        if self.status != "completed":
            return False
        waiting = any(call.answered_at is None for call in self.calls.values())
        return waiting or self.stop_reason == "tool_use" or not self.answered

    def turn(self) -> Turn | None:
        """The finished turn; None for a command nothing answered."""
        if self.command and not self.texts and not self.calls and self.status == "completed":
            return None
        return Turn(
            run_id=self.run_id,
            input=self.prompt,
            content="\n\n".join(self.texts) or None,
            created_at=self.created_at,
            status=self.status,
            error=self.error,
            tool_calls=[
                tool_call(
                    call.tool_call_id,
                    call.name,
                    call.arguments,
                    call.result,
                    is_error=call.is_error,
                    created_at=call.created_at,
                    duration_ms=milliseconds_between(call.created_at, call.answered_at) if call.answered_at else None,
                )
                for call in self.calls.values()
            ],
            metrics=self._metrics(),
        )

    def _metrics(self) -> StoredRunMetrics:
        duration = milliseconds_between(self.created_at, self.last_time) if self.last_time else None
        model = fitted_name(self.model) if self.model else None
        if not self.usage:
            return StoredRunMetrics(duration_ms=duration, model=model)
        totals = dict.fromkeys(_USAGE.values(), 0)
        for usage in self.usage.values():
            for key, name in _USAGE.items():
                value = usage.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    totals[name] = min(totals[name] + value, MAX_TOKENS)
        return StoredRunMetrics(
            **totals,
            total_tokens=min(totals["input_tokens"] + totals["output_tokens"], MAX_TOKENS),
            duration_ms=duration,
            model=model,
        )
