"""Short text renderings of tool results, beside the structured content that carries everything.

Long texts are cut (SHORT characters each): the rendering is for a person or a quick look, and
the structured content has the full values.
"""

import json

from mcp_server_sessions.store import (
    ChatHistoryPage,
    Run,
    SearchHit,
    Session,
    SessionPage,
    ToolCallPage,
)


def started(session: Session, created: bool) -> str:
    if created:
        return f"Started session {session.session_id!r} for user {session.user_id!r}."
    return f"Continuing session {session.session_id!r} ({session.run_count} runs so far)."


def session(s: Session) -> str:
    lines = [
        f"Session {s.session_id!r}" + (f" ({s.name})" if s.name else "") + f": {s.run_count} runs, "
        f"updated {s.updated_at}."
    ]
    owners = [
        f"{what} {value}"
        for what, value in (("agent", s.agent_id), ("team", s.team_id), ("workflow", s.workflow_id))
        if value
    ]
    if s.session_type != "agent" or owners:
        lines.append(f"A {s.session_type} session" + (f" of {', '.join(owners)}." if owners else "."))
    if s.paused_run_ids:
        lines.append(f"Paused runs waiting for tool results: {', '.join(s.paused_run_ids)}.")
    if s.state:
        lines.append(f"State: {_short(_json(s.state))}")
    if s.summary:
        lines.append(f"Summary (covers {s.summary.run_count} runs): {_short(s.summary.summary)}")
    return "\n".join(lines)


def sessions(page: SessionPage) -> str:
    if not page.sessions:
        return "No sessions."
    lines = [f"{len(page.sessions)} of {page.total} sessions:"]
    lines += [
        f"- {s.session_id}" + (f" ({s.name})" if s.name else "") + f": {s.run_count} runs, updated {s.updated_at}"
        for s in page.sessions
    ]
    return "\n".join(lines + _more(page.next_cursor))


def run_line(run: Run) -> str:
    parts = [f"{len(run.tool_calls)} tool calls"] if run.tool_calls else []
    parts += [f"{len(run.steps)} workflow steps"] if run.steps else []
    served = f" (a member's run under {run.parent_run_id!r})" if run.parent_run_id else ""
    details = f" with {' and '.join(parts)}" if parts else ""
    return f"Run {run.run_id!r} in session {run.session_id!r}{served} is {run.status}{details}."


def history(page: ChatHistoryPage) -> str:
    if not page.messages:
        return f"No messages in session {page.session_id!r}."
    lines = [f"{m.role}: {_short(m.content)}" for m in page.messages]
    return "\n".join(lines + _more(page.next_cursor))


def tool_calls(page: ToolCallPage) -> str:
    if not page.tool_calls:
        return f"No tool calls in session {page.session_id!r}."
    lines = [
        f"- {c.tool_name}({_short(_json(c.arguments))}) -> {'error: ' if c.is_error else ''}"
        f"{_short(c.result if isinstance(c.result, str) else _json(c.result))}"
        for c in page.tool_calls
    ]
    return "\n".join(lines + _more(page.next_cursor))


def search(hits: list[SearchHit]) -> str:
    if not hits:
        return "No matches."
    return "\n".join(f"- [{h.session_id} / {h.role}] {h.snippet}" for h in hits)


def _more(cursor: str | None) -> list[str]:
    return [f"(more: pass cursor={cursor!r})"] if cursor else []


SHORT = 300


def _short(text: str) -> str:
    return text if len(text) <= SHORT else text[: SHORT - 1] + "…"


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)
