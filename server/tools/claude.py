"""The tools that call Claude: `run` (a turn inside a session) and `summarize_session`."""

import json
import logging
from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from mcp_server_sessions.store import Run, UserSessions
from mcp_server_sessions.store.limits import (
    HISTORY_RUNS,
    ID_PATTERN,
    MAX_HISTORY_RUNS,
    MAX_MESSAGE_CHARS,
    MAX_MODEL_CHARS,
    MAX_OUTPUT_TOKENS,
    MAX_PROMPT_CHARS,
    MAX_SYSTEM_CHARS,
)

from .. import rendering
from ..agent.client_tools import MAX_CLIENT_TOOLS, ClientTool
from ..agent.summaries import summarize
from ..agent.turn import Progress, RunRequest, run_turn
from ..attachments import Attachments
from ..context import AppContext, app, user_sessions
from .common import SessionId, UserId, result, run_result

logger = logging.getLogger(__name__)


class SummaryResult(BaseModel):
    session_id: str
    summary: str
    topics: list[str]
    run_count: int = Field(description="Runs the summary covers.")
    updated_at: str


async def run(
    ctx: Context,
    message: Annotated[str, Field(min_length=1, max_length=MAX_MESSAGE_CHARS, description="The user's message.")],
    session_id: Annotated[
        str | None,
        Field(pattern=ID_PATTERN, description="Session to continue or start; omit for a new one."),
    ] = None,
    user_id: UserId = None,
    num_history_runs: Annotated[
        int | None, Field(ge=0, le=MAX_HISTORY_RUNS, description=f"Earlier runs in context (default {HISTORY_RUNS}).")
    ] = None,
    system: Annotated[
        str | None, Field(max_length=MAX_SYSTEM_CHARS, description="System prompt for this run only.")
    ] = None,
    model: Annotated[
        str | None, Field(max_length=MAX_MODEL_CHARS, description="Claude model id for this run only.")
    ] = None,
    max_tokens: Annotated[
        int | None, Field(ge=1, le=MAX_OUTPUT_TOKENS, description="Output token cap per call.")
    ] = None,
    tools: Annotated[
        list[ClientTool] | None,
        Field(
            max_length=MAX_CLIENT_TOOLS,
            description="Tools you run: calling one pauses the run; answer with continue_run.",
        ),
    ] = None,
    attachments: Attachments = None,
) -> Annotated[CallToolResult, Run]:
    """Send a message to Claude in a session: it sees the summary, state and recent runs, may use session
    tools; the turn is stored and progress streams the text."""
    context = app(ctx)
    sessions = user_sessions(ctx, user_id)
    request = RunRequest(
        session_id, message, num_history_runs, system, model, max_tokens, tools or [], list(attachments or [])
    )
    finished = await run_turn(
        sessions,
        context.gateway,
        context.settings.model,
        request,
        streamed_progress(ctx),
        lease_s=context.store.lease_s,
    )
    session = await sessions.get_session(finished.session_id)
    if session.agent is not None and session.agent.auto_summary and finished.status != "paused":
        context.background.start_soon(_refresh_summary, context, sessions, finished.session_id)
    return run_result(finished, run_text(finished))


def streamed_progress(ctx: Context) -> Progress:
    """Progress notifications carrying the model's text as it arrives (sent only if the client asked)."""
    streamed = 0

    async def progress(delta: str) -> None:
        nonlocal streamed
        streamed += len(delta)
        await ctx.report_progress(streamed, message=delta)

    return progress


def run_text(run: Run) -> str:
    """A finished turn's short text: its answer, or what a paused run waits for."""
    if run.status == "paused":
        calls = "; ".join(
            f"{r.tool_name}({json.dumps(r.arguments, ensure_ascii=False)[:200]}) as tool_call_id {r.tool_call_id!r}"
            for r in run.requirements
        )
        return f"Run {run.run_id!r} is paused, waiting for client tool results: {calls}. Answer with continue_run."
    return run.content or rendering.run_line(run)


async def summarize_session(
    ctx: Context,
    session_id: SessionId,
    user_id: UserId = None,
    prompt: Annotated[
        str | None,
        Field(max_length=MAX_PROMPT_CHARS, description="Replaces the default instructions."),
    ] = None,
) -> Annotated[CallToolResult, SummaryResult]:
    """Summarize a session with Claude, building on its previous summary; stored, and used in later runs'
    context."""
    context = app(ctx)
    sessions = user_sessions(ctx, user_id)
    summary = await summarize(sessions, context.gateway, context.settings.model, session_id, prompt)
    data = SummaryResult(session_id=session_id, **summary.model_dump())
    return result(data, f"{summary.summary}\nTopics: {', '.join(summary.topics)}")


async def _refresh_summary(context: AppContext, sessions: UserSessions, session_id: str) -> None:
    try:
        await summarize(sessions, context.gateway, context.settings.model, session_id)
    except Exception:
        logger.warning("automatic summary of session %r failed", session_id, exc_info=True)
