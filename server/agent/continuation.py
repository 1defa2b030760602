"""Continuing a paused run: the client's tool results back to the model, in the context the run paused in.

The run is claimed in the store first (paused -> running with a lease, in one conditional update, so
of two concurrent continuations exactly one goes on), after the store has checked that the results
answer exactly what the run waits for. The turn then goes on from the stored resume state as any
turn does: it may complete, pause again, fail or be cancelled, and its new messages and tool calls
are added to the run's when it ends. Failing or cancelled before any model call of it has answered,
it puts the run back to `paused` as it was (turn.py), so the same continue_run can be sent again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcp_server_sessions.store import InvalidInput, Run, UserSessions

from . import attachment_blocks, inner_tools
from .client_tools import definitions
from .gateway import ModelGateway
from .inner_tools import InnerTools
from .paused import ToolResult, check_answers, client_answers, read_resume
from .transcript import Tokens, Transcript
from .turn import ModelCall, Progress, Turn

if TYPE_CHECKING:
    from mcp_server_sessions.store.sqlite_paused import PausedRun


async def continue_turn(
    sessions: UserSessions,
    gateway: ModelGateway,
    run_id: str,
    answers: list[ToolResult],
    progress: Progress,
    *,
    lease_s: float,
) -> Run:
    """Continue the caller's paused run `run_id` with the client's tool results; the run as it ends
    (raises InvalidInput, changing nothing, when the run cannot be continued with these results)."""
    client = await gateway.client()  # no credentials: refused before the run is claimed
    claimed = await sessions.claim_paused_run(run_id, check_answers(answers))
    transcript = _continued_transcript(claimed)
    try:
        state = read_resume(run_id, claimed.resume)
        conversation = await attachment_blocks.with_data(sessions, claimed.run, state.utterances())
    except InvalidInput as problem:  # it can never be continued: it ends, as a failed turn would
        await sessions.finish_continued_run(claimed.run.session_id, transcript.record("error", str(problem)))
        raise
    transcript.model = state.model
    transcript.earlier_tool_calls = state.tool_calls - len(claimed.run.requirements)
    turn = Turn(
        sessions=sessions,
        session_id=claimed.run.session_id,
        client=client,
        call=ModelCall(
            model=state.model,
            max_tokens=state.max_tokens,
            system=state.system_blocks(),
            tools=[*inner_tools.definitions(), *definitions(state.client_tools)],
        ),
        conversation=conversation,
        tools=InnerTools(sessions, claimed.run.session_id),
        progress=progress,
        transcript=transcript,
        lease_s=lease_s,
        client_tools=state.client_tools,
    )
    answered = client_answers(state, claimed.run.requirements, answers)
    transcript.tool_calls.extend(answered.calls)
    turn.answer(answered.results, answered.tool_names)
    turn.retry_from = len(transcript.messages)  # failing before a model call answers, the run is paused again
    return await turn.carry_on()


def _continued_transcript(claimed: PausedRun) -> Transcript:
    """The run's transcript from where it paused: its figures so far, nothing of its own added yet."""
    run = claimed.run
    return Transcript(
        run_id=run.run_id,
        message=run.input,
        model=run.metrics.model or "",
        tokens=Tokens.of(run.metrics),
        first_token_ms=run.metrics.time_to_first_token_ms,
        continued=True,
        earlier_ms=run.metrics.duration_ms or 0.0,
    )
