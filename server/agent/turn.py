"""One Claude turn inside a session: context in, streamed model calls, tool loop, one commit.

The run row is committed `running` first (so a crash leaves a trace the next start marks
`error`), holding a lease the turn renews every third of its length while it goes on (so a server
that stops renewing leaves a run any server marks `error` once the lease expires); everything else
the turn produced (messages, tool calls, metrics, final status) is committed together at the end,
whether it completed, failed or was cancelled.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from mcp_server_sessions.store import AgentConfig, InvalidInput, Run, StoreError, UserSessions
from mcp_server_sessions.store.limits import MAX_MODEL_CALLS, MAX_TOOL_CALLS_PER_RUN, OUTPUT_TOKENS, text_bytes
from mcp_server_sessions.store.models import RunStatus

from . import inner_tools, prompt
from .gateway import ModelError, ModelGateway, explain_model_error
from .inner_tools import InnerTools
from .prompt import Utterance
from .transcript import Transcript

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from anthropic.types import Message, TextBlockParam, ToolParam, ToolResultBlockParam, ToolUseBlockParam

logger = logging.getLogger(__name__)

Progress = Callable[[str], Awaitable[None]]


CANCELLED = "The run was cancelled before it finished: by its client, or by the server shutting down."


@dataclass(frozen=True)
class RunRequest:
    """A `run` call: the message, and what it overrides of the session's agent config for this run."""

    session_id: str | None
    message: str
    num_history_runs: int | None = None
    system: str | None = None
    model: str | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class ModelCall:
    """What every model call of a turn sends besides the conversation."""

    model: str
    max_tokens: int
    system: list[TextBlockParam]
    tools: list[ToolParam]


async def run_turn(
    sessions: UserSessions,
    gateway: ModelGateway,
    default_model: str,
    request: RunRequest,
    progress: Progress,
    *,
    lease_s: float,
) -> Run:
    """Run one turn, renewing its run's lease (the store's `lease_s`) while it goes on; raises ModelError
    (after storing the run as `error`) when the model fails."""
    client = await gateway.client()
    text_bytes(request.message, "message")  # refuse before paying for a model call the store would refuse
    turn = await Turn.prepare(sessions, client, default_model, request, progress, lease_s=lease_s)
    return await turn.run()


@dataclass
class Turn:
    """A turn's steps over its session: prepare, then model calls and tool uses, then finish."""

    sessions: UserSessions
    session_id: str
    client: AsyncAnthropic
    call: ModelCall
    conversation: list[Utterance]
    tools: InnerTools
    progress: Progress
    transcript: Transcript
    lease_s: float
    """How long the run's lease lasts; it is renewed every third of that while the turn goes on."""

    @classmethod
    async def prepare(
        cls,
        sessions: UserSessions,
        client: AsyncAnthropic,
        default_model: str,
        request: RunRequest,
        progress: Progress,
        *,
        lease_s: float,
    ) -> Turn:
        """The session (started when new), the context the model sees, and the fixed part of every call."""
        session, _ = await sessions.start_session(request.session_id)
        config = session.agent or AgentConfig()
        num_runs = request.num_history_runs if request.num_history_runs is not None else config.num_history_runs
        history = await sessions.context_messages(session.session_id, num_runs)
        model = request.model or config.model or default_model
        call = ModelCall(
            model=model,
            max_tokens=request.max_tokens or config.max_tokens or OUTPUT_TOKENS,
            system=prompt.system_blocks(session, request.system),
            tools=inner_tools.definitions(),
        )
        return cls(
            sessions=sessions,
            session_id=session.session_id,
            client=client,
            call=call,
            conversation=prompt.with_new_message(prompt.history_messages(history), request.message),
            tools=InnerTools(sessions, session.session_id),
            progress=progress,
            transcript=Transcript(run_id=str(uuid.uuid4()), message=request.message, model=model),
            lease_s=lease_s,
        )

    async def run(self) -> Run:
        """At most MAX_MODEL_CALLS model calls, each followed by the tool uses it asks for; the run is
        stored however it ends."""
        run_id = self.transcript.run_id
        try:
            await self.sessions.begin_run(self.session_id, run_id, self.transcript.message)
            async with self.lease_renewed():
                answered = await self.converse()
            if answered:
                return await self.finish("completed")
            message = (
                f"The model was still calling tools after {len(self.transcript.tool_calls)} tool calls in "
                f"{MAX_MODEL_CALLS} model calls at most, so run {run_id!r} was stopped; ask a narrower "
                "question or continue with another run."
            )
            await self.finish("error", message)
            raise ModelError(message)
        except anyio.get_cancelled_exc_class():
            await self.finish("cancelled", CANCELLED)
            raise
        except (ModelError, StoreError):
            raise
        except Exception as exc:
            error = explain_model_error(exc)
            await self.finish("error", str(error))
            raise ModelError(f"{str(error)[:-1]} (run {run_id!r} was stored with status error).") from exc

    async def converse(self) -> bool:
        """Model calls, each followed by the tool uses it asks for, until the model answers (True) or
        the turn reaches MAX_MODEL_CALLS or MAX_TOOL_CALLS_PER_RUN (False)."""
        for _ in range(MAX_MODEL_CALLS):
            uses = self.take_reply(await self.call_model())
            if not uses:
                return True
            if len(self.transcript.tool_calls) + len(uses) > MAX_TOOL_CALLS_PER_RUN:
                return False
            await self.use_tools(uses)
        return False

    @asynccontextmanager
    async def lease_renewed(self) -> AsyncIterator[None]:
        """The run's lease renewed in the background while the body runs, and no longer once it has
        ended, however it ends; the body's exception comes out as it is, not in an exception group."""
        failure: Exception | None = None
        async with anyio.create_task_group() as renewals:
            renewals.start_soon(self.renew_lease)
            try:
                yield
            except Exception as exc:
                failure = exc
            finally:
                renewals.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def renew_lease(self) -> None:
        """Every third of the lease, extend it; a renewal that fails is logged and the run goes on
        (a run no longer `running` in the store is not renewed again)."""
        run_id = self.transcript.run_id
        while True:
            await anyio.sleep(self.lease_s / 3)
            try:
                renewed = await self.sessions.renew_lease(self.session_id, run_id)
            except StoreError as problem:
                logger.warning("the lease of run %s was not renewed: %s", run_id, problem)
                continue
            if not renewed:
                logger.warning(
                    "run %s is no longer running in the store (its lease expired and a server marked it error, "
                    "or its session was deleted); it goes on, but its outcome will not replace that",
                    run_id,
                )
                return

    async def call_model(self) -> Message:
        """One streamed model call over the conversation so far; its text is reported as it arrives."""
        started = time.perf_counter()
        async with self.client.messages.stream(
            messages=prompt.request_messages(self.conversation),
            model=self.call.model,
            max_tokens=self.call.max_tokens,
            system=self.call.system,
            tools=self.call.tools,
        ) as stream:
            async for event in stream:
                if event.type == "text":
                    self.transcript.streamed(event.text, started)
                    await self.progress(event.text)
            reply = await stream.get_final_message()
        self.transcript.tokens.add(reply.usage)
        return reply

    def take_reply(self, reply: Message) -> list[ToolUseBlockParam]:
        """The reply into the conversation and the transcript; the tool uses it asks for (none: it is the answer)."""
        blocks = [prompt.stored_block(block) for block in reply.content]
        uses = [block for block in blocks if block["type"] == "tool_use"]
        if reply.stop_reason != "tool_use" and uses:  # cut off mid-call (max_tokens): keep the text only
            blocks, uses = [block for block in blocks if block["type"] != "tool_use"], []
        text = "".join(block["text"] for block in blocks if block["type"] == "text")
        self.conversation.append(Utterance("assistant", blocks))
        self.transcript.replied(text, blocks, final=not uses)
        return uses

    async def use_tools(self, uses: list[ToolUseBlockParam]) -> None:
        """Each tool use run in order; the results go back to the model as the next user message."""
        results: list[ToolResultBlockParam] = []
        for use in uses:
            result_text, call = await self.tools.call(use["name"], use["input"])
            call.tool_call_id = use["id"]
            self.transcript.tool_calls.append(call)  # kept even if the turn ends before the next one
            results.append(
                {"type": "tool_result", "tool_use_id": use["id"], "content": result_text, "is_error": call.is_error}
            )
        self.conversation.append(Utterance("user", list(results)))
        self.transcript.answered(results)

    async def finish(self, status: RunStatus, error: str | None = None) -> Run:
        """The run stored as it stands, shielded: a cancelled run is still stored, as `cancelled`."""
        with anyio.CancelScope(shield=True):
            try:
                run, stored = await self.sessions.append_run(
                    self.session_id, self.transcript.record(status, error), finishing=True
                )
            except InvalidInput as problem:  # the turn outgrew a limit: keep its outcome, not its content
                logger.warning("run %s stored without its messages: %s", self.transcript.run_id, problem)
                record = self.transcript.record("error", str(problem), whole=False)
                run, stored = await self.sessions.append_run(self.session_id, record, finishing=True)
        if not stored:  # its lease expired first and a server marked it `error`: that stays the run's outcome
            logger.warning(
                "run %s ended %s, but was already marked %s in the store; its outcome was not stored",
                run.run_id,
                status,
                run.status,
            )
        return run
