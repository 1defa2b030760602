"""One Claude turn inside a session: context in, streamed model calls, tool loop, one commit.

The run row is committed `running` first (so a crash leaves a trace the next start marks
`error`), holding a lease the turn renews while it goes on (lease.py); everything else the turn
produced (messages, tool calls, metrics, final status) is committed together at the end, whether it
completed, paused, failed or was cancelled. A reply that calls a client tool pauses the turn: the
server's own tool uses of that reply are run, and the run is stored `paused` with what it waits for
and what continuing it needs (paused.py); continuation.py carries it on later. A continuation that
fails or is cancelled before any model call of it has answered puts the run back to `paused` as it
was, so the same continue_run can be sent again.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio

from mcp_server_sessions.store import AgentConfig, InvalidInput, NewRun, Run, StoreError, UserSessions
from mcp_server_sessions.store.attachments import NewAttachment, prepare_attachments
from mcp_server_sessions.store.limits import MAX_MODEL_CALLS, MAX_TOOL_CALLS_PER_RUN, OUTPUT_TOKENS, text_bytes
from mcp_server_sessions.store.models import RunStatus

from . import attachment_blocks, client_tools, inner_tools, paused, prompt
from .client_tools import ClientTool
from .gateway import ModelError, ModelGateway, explain_model_error
from .inner_tools import InnerTools
from .lease import lease_renewed
from .paused import Pause
from .prompt import Utterance
from .transcript import Transcript

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from anthropic.types import Message, TextBlockParam, ToolParam, ToolResultBlockParam, ToolUseBlockParam

logger = logging.getLogger(__name__)

Progress = Callable[[str], Awaitable[None]]
Outcome = Literal["completed", "paused", "exhausted"]


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
    tools: list[ClientTool] = field(default_factory=list)
    """Client-executed tools the model may call besides the server's own: calling one pauses the run."""
    attachments: list[NewAttachment] = field(default_factory=list)
    """Media with the message: stored with the run, and given to the model where the API takes them."""


@dataclass(frozen=True)
class ModelCall:
    """What every model call of a turn sends besides the conversation."""

    model: str
    max_tokens: int
    system: list[TextBlockParam]
    tools: list[ToolParam]


def _cause(error: ModelError) -> str:
    """What failed, without the advice after it (`explain_model_error` words it `cause; advice.`)."""
    return str(error).split(";")[0].rstrip(".")


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
    client_tools.checked(request.tools)
    prepare_attachments(request.attachments)  # a bad attachment is refused before the run begins
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
    client_tools: list[ClientTool] = field(default_factory=list)
    retry_from: int | None = None
    """A continuation: how many messages its transcript held before its first model call. Failing or
    cancelled with no more than these, it has produced nothing new and the run goes back to `paused`."""

    @property
    def client_tool_names(self) -> set[str]:
        return {tool.name for tool in self.client_tools}

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
            tools=[*inner_tools.definitions(), *client_tools.definitions(request.tools)],
        )
        conversation = prompt.with_new_message(prompt.history_messages(history), request.message)
        attachment_blocks.attach(conversation, request.attachments)
        return cls(
            sessions=sessions,
            session_id=session.session_id,
            client=client,
            call=call,
            conversation=conversation,
            tools=InnerTools(sessions, session.session_id),
            progress=progress,
            transcript=Transcript(
                run_id=str(uuid.uuid4()), message=request.message, model=model, attachments=request.attachments
            ),
            lease_s=lease_s,
            client_tools=request.tools,
        )

    async def run(self) -> Run:
        """Begin the run in the store, then carry it on."""
        await self.sessions.begin_run(self.session_id, self.transcript.run_id, self.transcript.message)
        return await self.carry_on()

    async def carry_on(self) -> Run:
        """At most MAX_MODEL_CALLS model calls, each followed by the tool uses it asks for, until the model
        answers or calls a client tool (the run pauses); the run is stored however it ends."""
        run_id = self.transcript.run_id
        try:
            async with lease_renewed(self.sessions, self.session_id, run_id, self.lease_s):
                outcome = await self.converse()
            if outcome != "exhausted":
                return await self.finish(outcome)
            message = (
                f"The model was still calling tools after {self.transcript.tool_call_count} tool calls in "
                f"{MAX_MODEL_CALLS} model calls at most, so run {run_id!r} was stopped; ask a narrower "
                "question or continue with another run."
            )
            await self.finish("error", message)
            raise ModelError(message)
        except anyio.get_cancelled_exc_class():
            if not await self.paused_again():
                await self.finish("cancelled", CANCELLED)
            raise
        except (ModelError, StoreError):
            raise
        except Exception as exc:
            error = explain_model_error(exc)
            if await self.paused_again():
                raise ModelError(
                    f"{_cause(error)}, so run {run_id!r} is still paused with the same requirements; "
                    "send the same continue_run again in a moment."
                ) from exc
            await self.finish("error", str(error))
            if self.transcript.continued:  # its earlier part is stored: there is nothing left to retry
                raise ModelError(
                    f"{_cause(error)} after the continuation of run {run_id!r} had produced new output, so the "
                    "run was stored with status error and cannot be continued again; start a new run."
                ) from exc
            raise ModelError(f"{str(error)[:-1]} (run {run_id!r} was stored with status error).") from exc

    async def paused_again(self) -> bool:
        """A continuation that has produced nothing new: its run back to `paused` as it was, its
        requirements and resume state untouched (shielded); False when it did produce something, or
        the run is no longer `running` in the store."""
        if self.retry_from is None or len(self.transcript.messages) > self.retry_from:
            return False
        with anyio.CancelScope(shield=True):
            _, released = await self.sessions.finish_continued_run(self.session_id, self.transcript.unclaimed())
        return released

    async def converse(self) -> Outcome:
        """Model calls, each followed by the tool uses it asks for, until the model answers, calls a
        client tool, or the turn reaches MAX_MODEL_CALLS or MAX_TOOL_CALLS_PER_RUN."""
        for _ in range(MAX_MODEL_CALLS):
            uses = self.take_reply(await self.call_model())
            if not uses:
                return "completed"
            if self.transcript.tool_call_count + len(uses) > MAX_TOOL_CALLS_PER_RUN:
                return "exhausted"
            waiting = [use for use in uses if use["name"] in self.client_tool_names]
            results = await self.use_tools([use for use in uses if use["name"] not in self.client_tool_names])
            if waiting:
                self.pause(Pause(waiting, results))
                return "paused"
            self.answer(results, [use["name"] for use in uses])
        return "exhausted"

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

    async def use_tools(self, uses: list[ToolUseBlockParam]) -> list[ToolResultBlockParam]:
        """Each of the server's own tool uses run in order; their results for the model."""
        results: list[ToolResultBlockParam] = []
        for use in uses:
            result_text, call = await self.tools.call(use["name"], use["input"])
            call.tool_call_id = use["id"]
            self.transcript.tool_calls.append(call)  # kept even if the turn ends before the next one
            results.append(
                {"type": "tool_result", "tool_use_id": use["id"], "content": result_text, "is_error": call.is_error}
            )
        return results

    def answer(self, results: list[ToolResultBlockParam], tool_names: list[str]) -> None:
        """The results of a reply's tool uses back to the model, as the next user message."""
        self.conversation.append(Utterance("user", list(results)))
        self.transcript.answered(results, tool_names)

    def pause(self, pause: Pause) -> None:
        """The run waits for the client's tools: what it waits for, and what continuing it needs."""
        self.transcript.requirements = pause.requirements()
        self.transcript.resume = paused.resume_state(
            model=self.call.model,
            max_tokens=self.call.max_tokens,
            system=self.call.system,
            client_tools=self.client_tools,
            conversation=attachment_blocks.without_data(self.conversation),
            pause=pause,
            tool_calls=self.transcript.tool_call_count + len(pause.waiting),
        )

    async def finish(self, status: RunStatus, error: str | None = None) -> Run:
        """The run stored as it stands, shielded: a cancelled run is still stored, as `cancelled`."""
        with anyio.CancelScope(shield=True):
            try:
                run, stored = await self.store(self.transcript.record(status, error))
            except InvalidInput as problem:  # the turn outgrew a limit: keep its outcome, not its content
                logger.warning("run %s stored without its messages: %s", self.transcript.run_id, problem)
                run, stored = await self.store(self.transcript.record("error", str(problem), whole=False))
        if not stored:  # its lease expired first and a server marked it `error`: that stays the run's outcome
            logger.warning(
                "run %s ended %s, but was already marked %s in the store; its outcome was not stored",
                run.run_id,
                status,
                run.status,
            )
        return run

    async def store(self, record: NewRun) -> tuple[Run, bool]:
        """The run's record written over its `running` row: a new run's whole, a continued run's new part."""
        if self.transcript.continued:
            return await self.sessions.finish_continued_run(self.session_id, record)
        return await self.sessions.append_run(self.session_id, record, finishing=True)
