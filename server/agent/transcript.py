"""What a turn has produced so far, and the run it makes however the turn ends."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcp_server_sessions.store import NewMessage, NewRun, NewToolCall, RunMetrics
from mcp_server_sessions.store.attachments import NewAttachment
from mcp_server_sessions.store.limits import MAX_TOKENS
from mcp_server_sessions.store.models import Requirement, RunStatus, StoredRunMetrics

if TYPE_CHECKING:
    from anthropic.types import ContentBlockParam, ToolResultBlockParam, Usage


@dataclass
class Tokens:
    """The tokens of a turn's model calls, summed."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0

    @classmethod
    def of(cls, metrics: StoredRunMetrics) -> Tokens:
        """The tokens a stored run counts so far."""
        return cls(
            metrics.input_tokens or 0,
            metrics.output_tokens or 0,
            metrics.cache_read_tokens or 0,
            metrics.cache_write_tokens or 0,
        )

    def add(self, usage: Usage) -> None:
        self.input += usage.input_tokens or 0
        self.output += usage.output_tokens or 0
        self.cache_read += usage.cache_read_input_tokens or 0
        self.cache_write += usage.cache_creation_input_tokens or 0


@dataclass
class Transcript:
    """The user's message, the model's replies and tool calls, and the figures of one turn."""

    run_id: str
    message: str
    model: str
    started: float = field(default_factory=time.perf_counter)
    messages: list[NewMessage] = field(default_factory=list)
    tool_calls: list[NewToolCall] = field(default_factory=list)
    text: str = ""
    """The final answer, once the model gave one."""
    partial: str = ""
    """Text streamed in the current model call, kept if the turn ends before the call does."""
    tokens: Tokens = field(default_factory=Tokens)
    first_token_ms: float | None = None
    continued: bool = False
    """A paused run continued: it holds its message and what came before; `messages` and `tool_calls`
    are what this part of it adds, `tokens`, `earlier_ms` and `tool_call_count` count the whole run."""
    earlier_ms: float = 0.0
    """The run's duration before this part of it."""
    earlier_tool_calls: int = 0
    """The tool calls the run held before this part of it."""
    requirements: list[Requirement] = field(default_factory=list)
    resume: dict[str, Any] | None = None
    """What a run that pauses waits for, and what continuing it needs."""
    attachments: list[NewAttachment] = field(default_factory=list)
    """The media sent with the message, stored with the run (a continued run holds them already)."""

    @property
    def tool_call_count(self) -> int:
        return self.earlier_tool_calls + len(self.tool_calls)

    def streamed(self, delta: str, call_started: float) -> None:
        if self.first_token_ms is None:
            self.first_token_ms = round((time.perf_counter() - call_started) * 1000, 3)
        self.partial += delta

    def replied(self, text: str, blocks: Sequence[ContentBlockParam], *, final: bool) -> None:
        """A whole reply of the model; `final` when it asks for no tool, so its text is the answer."""
        self.messages.append(NewMessage(role="assistant", content=text, blocks=_stored(blocks), is_tool=not final))
        self.partial = ""
        if final:
            self.text = text

    def answered(self, results: Sequence[ToolResultBlockParam], tool_names: Sequence[str]) -> None:
        """The results of a reply's tool calls (of the tools `tool_names`), as the message they went back in."""
        lines = [
            f"{name} -> {'error' if result.get('is_error') else 'ok'}"
            for name, result in zip(tool_names, results, strict=True)
        ]
        self.messages.append(NewMessage(role="tool", content="\n".join(lines), blocks=_stored(results), is_tool=True))

    def record(self, status: RunStatus, error: str | None = None, *, whole: bool = True) -> NewRun:
        """The run as it stands; `whole=False` keeps only the message, status and metrics."""
        content = self.text or self.partial or None
        asked = [] if self.continued else [NewMessage(role="user", content=self.message)]
        messages = [*asked, *(self.messages if whole else [])]
        paused = status == "paused" and whole
        if status != "completed" and self.partial and whole:
            messages.append(NewMessage(role="assistant", content=self.partial))
        return NewRun(
            run_id=self.run_id,
            input=self.message,
            content=content if whole else None,
            status=status,
            messages=messages,
            tool_calls=self.tool_calls if whole else [],
            metrics=self._metrics(),
            error=error,
            requirements=self.requirements if paused else [],
            resume=self.resume if paused else None,
            attachments=[] if self.continued else self.attachments,
        )

    def unclaimed(self) -> NewRun:
        """A continuation that produced nothing: its run to go back to `paused` as it was, its stored
        requirements and resume state kept (a `paused` record with no resume state says so to the store)."""
        return NewRun(run_id=self.run_id, input=self.message, content=None, status="paused", messages=[])

    def _metrics(self) -> RunMetrics:
        # absurd usage must not lose the run: each count is capped where the store caps it
        input_tokens, output_tokens = min(self.tokens.input, MAX_TOKENS), min(self.tokens.output, MAX_TOKENS)
        return RunMetrics(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=min(input_tokens + output_tokens, MAX_TOKENS),
            cache_read_tokens=min(self.tokens.cache_read, MAX_TOKENS),
            cache_write_tokens=min(self.tokens.cache_write, MAX_TOKENS),
            duration_ms=round(self.earlier_ms + (time.perf_counter() - self.started) * 1000, 3),
            time_to_first_token_ms=self.first_token_ms,
            model=self.model,
        )


def _stored(blocks: Sequence[ContentBlockParam]) -> list[dict[str, object]]:
    """Blocks as the store keeps them: JSON objects, sent back as they are in a later turn's context."""
    return [dict(block) for block in blocks]
