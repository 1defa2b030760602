"""Session summaries: the previous summary plus the runs after it, condensed by Claude.

The model answers through a forced tool call, so the summary arrives as structured
`{summary, topics}` rather than free text to parse. Each summary records how many runs of the
session it covers; the next one reads only the runs after those.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from mcp_server_sessions.store import InvalidInput, RunTranscript, SessionSummary, UserSessions
from mcp_server_sessions.store.clock import utc_now

from .gateway import ModelError, ModelGateway, explain_model_error

if TYPE_CHECKING:
    from anthropic.types import Message, ToolParam

DEFAULT_INSTRUCTIONS = (
    "Summarize this conversation session for someone who will continue it later. Keep the facts, "
    "decisions, open questions and user preferences; drop pleasantries. Build on the previous "
    "summary when one is given: the result must cover both it and the new turns. Then list the "
    "main topics as short noun phrases."
)
_TOOL: ToolParam = {
    "name": "record_summary",
    "description": "Record the session summary.",
    "input_schema": {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "description": "The summary, a few sentences to a few paragraphs."},
            "topics": {"type": "array", "items": {"type": "string"}, "description": "Main topics, 1-10."},
        },
        "required": ["summary", "topics"],
    },
}
MAX_TRANSCRIPT_CHARS = 400_000


async def summarize(
    sessions: UserSessions, gateway: ModelGateway, default_model: str, session_id: str, prompt: str | None = None
) -> SessionSummary:
    client = await gateway.client()
    session = await sessions.get_session(session_id)
    previous = session.summary
    runs, run_count = await sessions.runs_for_summary(session_id, previous.run_count if previous else 0)
    if previous is not None and not runs and prompt is None:
        return previous  # nothing new since the last summary
    if previous is None and not runs:
        raise InvalidInput(f"Session {session_id!r} has no completed runs to summarize yet; run or record_run first.")
    transcript, run_count = _transcript(runs, run_count)
    parts = []
    if previous is not None:
        parts.append(f"Previous summary (covers the first {previous.run_count} runs):\n{previous.summary}")
    parts.append(f"New turns:\n{transcript}" if runs else "No new turns.")
    agent = session.agent
    try:
        reply = await client.messages.create(
            model=(agent.model if agent and agent.model else None) or default_model,
            max_tokens=2048,
            system=prompt or DEFAULT_INSTRUCTIONS,
            messages=[{"role": "user", "content": "\n\n".join(parts)}],
            tools=[_TOOL],
            tool_choice={"type": "tool", "name": _TOOL["name"]},
        )
    except Exception as exc:
        raise explain_model_error(exc) from exc
    text, topics = _tool_input(reply)
    summary = SessionSummary(
        summary=text.strip(),
        topics=[str(topic).strip() for topic in topics if str(topic).strip()][:10],
        run_count=run_count,
        updated_at=utc_now(),
    )
    await sessions.set_summary(session_id, summary)
    return summary


def _transcript(runs: list[RunTranscript], run_count: int) -> tuple[str, int]:
    """The runs as text of at most MAX_TRANSCRIPT_CHARS, and the runs it covers (the rest waits for the next
    summary)."""
    turns: list[str] = []
    size = 0
    for run in runs:
        turn = f"[run {run.run_id}]\nUser: {run.input}\nAssistant: {run.content or ''}"
        if turns and size + len(turn) > MAX_TRANSCRIPT_CHARS:
            run_count = run.position - 1
            break
        turns.append(turn[:MAX_TRANSCRIPT_CHARS])
        size += len(turn)
    return "\n\n".join(turns), run_count


def _tool_input(reply: Message) -> tuple[str, list[object]]:
    """The summary and topics of the forced tool call."""
    for block in reply.content:
        if block.type == "tool_use" and block.name == _TOOL["name"]:
            data: object = block.input
            if isinstance(data, str):  # the SDK parses it; a raw string is read as JSON all the same
                data = json.loads(data)
            if isinstance(data, dict) and isinstance(data.get("summary"), str) and isinstance(data.get("topics"), list):
                return data["summary"], data["topics"]
    raise ModelError("The model did not return a summary in the expected shape; try summarize_session again.")
