"""One Claude turn inside a session: context in, streamed model calls, tool loop, one commit.

The run row is committed `running` first (so a crash leaves a trace the next start marks
`error`); everything else the turn produced (messages, tool calls, metrics, final status) is
committed together at the end, whether it completed, failed or was cancelled.
"""

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from mcp_server_sessions.store import (
    AgentConfig,
    InvalidInput,
    NewMessage,
    NewRun,
    NewToolCall,
    Run,
    RunMetrics,
    StoreError,
    UserSessions,
)
from mcp_server_sessions.store.limits import MAX_TOKENS, MAX_TOOL_CALLS_PER_RUN, text_bytes

from . import inner_tools, prompt
from .gateway import ModelError, ModelGateway, explain_model_error

logger = logging.getLogger(__name__)

MAX_MODEL_CALLS = 8
DEFAULT_MAX_TOKENS = 4096

Progress = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class RunRequest:
    session_id: str | None
    message: str
    num_history_runs: int | None = None
    system: str | None = None
    model: str | None = None
    max_tokens: int | None = None


@dataclass
class _Turn:
    """What the run has produced so far; stored as it stands however the run ends."""

    run_id: str
    message: str
    model: str
    started: float = field(default_factory=time.perf_counter)
    messages: list[NewMessage] = field(default_factory=list)
    tool_calls: list[NewToolCall] = field(default_factory=list)
    text: str = ""
    partial: str = ""
    usage: dict[str, int] = field(default_factory=lambda: {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0})
    first_token_ms: float | None = None

    def record(self, status: str, error: str | None = None, *, whole: bool = True) -> NewRun:
        """The run as it stands; `whole=False` keeps only the message, status and metrics."""
        content = self.text or self.partial or None
        messages = [NewMessage(role="user", content=self.message), *(self.messages if whole else [])]
        if status != "completed" and self.partial and whole:
            messages.append(NewMessage(role="assistant", content=self.partial))
        u = {kind: min(count, MAX_TOKENS) for kind, count in self.usage.items()}  # absurd usage must not lose the run
        metrics = RunMetrics(
            input_tokens=u["input"],
            output_tokens=u["output"],
            total_tokens=min(u["input"] + u["output"], MAX_TOKENS),
            cache_read_tokens=u["cache_read"],
            cache_write_tokens=u["cache_write"],
            duration_ms=round((time.perf_counter() - self.started) * 1000, 3),
            time_to_first_token_ms=self.first_token_ms,
            model=self.model,
        )
        return NewRun(
            run_id=self.run_id,
            input=self.message,
            content=content if whole else None,
            status=status,  # type: ignore[arg-type]
            messages=messages,
            tool_calls=self.tool_calls if whole else [],
            metrics=metrics,
            error=error,
        )


async def run_turn(
    sessions: UserSessions, gateway: ModelGateway, default_model: str, request: RunRequest, progress: Progress
) -> Run:
    """Run one turn; raises ModelError (after storing the run as `error`) when the model fails."""
    client = await gateway.client()
    text_bytes(request.message, "message")  # refuse before paying for a model call the store would refuse
    session, _ = await sessions.start_session(request.session_id)
    config = session.agent or AgentConfig()
    num_runs = request.num_history_runs if request.num_history_runs is not None else config.num_history_runs
    history = await sessions.context_messages(session.session_id, num_runs)
    turn = _Turn(
        run_id=str(uuid.uuid4()), message=request.message, model=request.model or config.model or default_model
    )
    tools = inner_tools.InnerTools(sessions, session.session_id)
    params = {
        "model": turn.model,
        "max_tokens": request.max_tokens or config.max_tokens or DEFAULT_MAX_TOKENS,
        "system": prompt.system_blocks(session, request.system),
        "tools": inner_tools.definitions(),
    }
    conversation = prompt.with_new_message(prompt.history_messages(history), request.message)

    async def finish(status: str, error: str | None = None) -> Run:
        with anyio.CancelScope(shield=True):  # a cancelled run is still stored, as `cancelled`
            try:
                run, _ = await sessions.append_run(session.session_id, turn.record(status, error), finishing=True)
            except InvalidInput as problem:  # the turn outgrew a limit: keep its outcome, not its content
                logger.warning("run %s stored without its messages: %s", turn.run_id, problem)
                run, _ = await sessions.append_run(
                    session.session_id, turn.record("error", str(problem), whole=False), finishing=True
                )
        return run

    try:
        await sessions.begin_run(session.session_id, turn.run_id, request.message)
        for _ in range(MAX_MODEL_CALLS):
            reply = await _stream_call(client, params, conversation, turn, progress)
            blocks = [prompt.stored_block(block) for block in reply.content]
            uses = [block for block in blocks if block["type"] == "tool_use"]
            if reply.stop_reason != "tool_use" and uses:  # cut off mid-call (max_tokens): keep the text only
                blocks, uses = [block for block in blocks if block["type"] != "tool_use"], []
            text = "".join(block["text"] for block in blocks if block["type"] == "text")
            conversation.append({"role": "assistant", "content": blocks})
            turn.messages.append(NewMessage(role="assistant", content=text, blocks=blocks, is_tool=bool(uses)))
            turn.partial = ""
            if not uses:
                turn.text = text
                return await finish("completed")
            if len(turn.tool_calls) + len(uses) > MAX_TOOL_CALLS_PER_RUN:
                break
            results = []
            for use in uses:
                result_text, call = await tools.call(use["name"], use["input"])
                call.tool_call_id = use["id"]
                turn.tool_calls.append(call)
                results.append(
                    {"type": "tool_result", "tool_use_id": use["id"], "content": result_text, "is_error": call.is_error}
                )
            conversation.append({"role": "user", "content": results})
            lines = [f"{c.tool_name} -> {'error' if c.is_error else 'ok'}" for c in turn.tool_calls[-len(uses) :]]
            turn.messages.append(NewMessage(role="tool", content="\n".join(lines), blocks=results, is_tool=True))
        message = (
            f"The model was still calling tools after {len(turn.tool_calls)} tool calls in "
            f"{MAX_MODEL_CALLS} model calls at most, so run {turn.run_id!r} was stopped; ask a narrower "
            "question or continue with another run."
        )
        await finish("error", message)
        raise ModelError(message)
    except anyio.get_cancelled_exc_class():
        await finish("cancelled", "The client cancelled the run.")
        raise
    except (ModelError, StoreError):
        raise
    except Exception as exc:
        error = explain_model_error(exc)
        await finish("error", str(error))
        raise ModelError(f"{str(error)[:-1]} (run {turn.run_id!r} was stored with status error).") from exc


async def _stream_call(
    client: Any, params: dict[str, Any], conversation: list[dict[str, Any]], turn: _Turn, progress: Progress
) -> Any:
    started = time.perf_counter()
    async with client.messages.stream(messages=prompt.mark_cache_point(conversation), **params) as stream:
        async for event in stream:
            if event.type == "text":
                if turn.first_token_ms is None:
                    turn.first_token_ms = round((time.perf_counter() - started) * 1000, 3)
                turn.partial += event.text
                await progress(event.text)
        reply = await stream.get_final_message()
    usage = reply.usage
    turn.usage["input"] += usage.input_tokens or 0
    turn.usage["output"] += usage.output_tokens or 0
    turn.usage["cache_read"] += usage.cache_read_input_tokens or 0
    turn.usage["cache_write"] += usage.cache_creation_input_tokens or 0
    return reply
