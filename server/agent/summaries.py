"""Session summaries: the previous summary plus the runs after it, condensed by Claude.

The model answers through a forced tool call, so the summary arrives as structured
`{summary, topics}` rather than free text to parse. Each summary records how many runs of the
session it covers; the next one reads only the runs after those.
"""

import json
from typing import Any

from mcp_server_sessions.store import InvalidInput, SessionSummary, UserSessions
from mcp_server_sessions.store.clock import utc_now

from .gateway import ModelError, ModelGateway, explain_model_error

DEFAULT_INSTRUCTIONS = (
    "Summarize this conversation session for someone who will continue it later. Keep the facts, "
    "decisions, open questions and user preferences; drop pleasantries. Build on the previous "
    "summary when one is given: the result must cover both it and the new turns. Then list the "
    "main topics as short noun phrases."
)
_TOOL = {
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
    turns: list[str] = []
    size = 0
    for run in runs:
        turn = f"[run {run.run_id}]\nUser: {run.input}\nAssistant: {run.content or ''}"
        if turns and size + len(turn) > MAX_TRANSCRIPT_CHARS:
            run_count = run.position - 1  # the rest waits for the next summary
            break
        turns.append(turn[:MAX_TRANSCRIPT_CHARS])
        size += len(turn)
    transcript = "\n\n".join(turns)
    parts = []
    if previous is not None:
        parts.append(f"Previous summary (covers the first {previous.run_count} runs):\n{previous.summary}")
    parts.append(f"New turns:\n{transcript}" if runs else "No new turns.")
    agent = session.agent
    request: dict[str, Any] = {
        "model": (agent.model if agent and agent.model else None) or default_model,
        "max_tokens": 2048,
        "system": prompt or DEFAULT_INSTRUCTIONS,
        "messages": [{"role": "user", "content": "\n\n".join(parts)}],
        "tools": [_TOOL],
        "tool_choice": {"type": "tool", "name": _TOOL["name"]},
    }
    try:
        reply = await client.messages.create(**request)
    except Exception as exc:
        raise explain_model_error(exc) from exc
    fields = _tool_input(reply)
    summary = SessionSummary(
        summary=fields["summary"].strip(),
        topics=[str(topic).strip() for topic in fields["topics"] if str(topic).strip()][:10],
        run_count=run_count,
        updated_at=utc_now(),
    )
    await sessions.set_summary(session_id, summary)
    return summary


def _tool_input(reply: Any) -> dict[str, Any]:
    for block in reply.content:
        if block.type == "tool_use" and block.name == _TOOL["name"]:
            data = block.input if isinstance(block.input, dict) else json.loads(block.input)
            if isinstance(data.get("summary"), str) and isinstance(data.get("topics"), list):
                return data
    raise ModelError("The model did not return a summary in the expected shape; try summarize_session again.")
