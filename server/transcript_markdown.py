"""A session as markdown, to read or paste into a document: what `show --format markdown` prints and the
`session://` resource serves.

Whatever a session holds is shown as written and never changes the document's structure: message text
becomes literal paragraphs (every markdown character escaped, line breaks and indentation kept), JSON and
tool results go in fences longer than any backtick run they hold, and control characters (NUL included)
are shown as Unicode control pictures.

A team's member run is labelled as such (its input is what the leader asked, never the user's words), a
workflow run lists its steps, a run's attachments are listed as references (never their bytes), and a
paused run shows the tool calls it waits for.
"""

import json
import re
from typing import Any

from mcp_server_sessions.store.attachments import AttachmentRef
from mcp_server_sessions.store.models import Requirement, Session, StoredRunMetrics, ToolCall, WorkflowStep
from mcp_server_sessions.store.records import RunRecord, SessionRecord

from .terminal_output import utc_time, visible

RESULT_CHARS = 2_000
"""A tool call's arguments or result longer than this is cut in the transcript (the record keeps it whole)."""

_MARKDOWN_CHARACTERS = re.compile(r"([\\`*_\[\]<>&|~#$])")  # what can start markup anywhere in a line
_LINE_START_MARKUP = re.compile(r"^([+\-=])|^(\d+)([.)])")  # list items and setext underlines
_BACKTICK_RUNS = re.compile(r"`+")
_NBSP = "\u00a0"


def session_markdown(record: SessionRecord, *, earlier_runs: int = 0) -> str:
    """The session as one markdown document: title, id, kind, dates, summary, state, then each run (the
    input and its attachments, the workflow steps, the tool calls, the answer, what a paused run waits
    for, the status when not completed, the metrics). `earlier_runs` says how many earlier runs the
    record leaves out (the runs are numbered from there)."""
    session = record.session
    blocks = [f"# {_inline(session.name) if session.name else 'Session ' + _code(session.session_id)}"]
    blocks.append(_facts(session))
    if session.summary is not None:
        summary = session.summary
        blocks += ["## Summary", _paragraphs(summary.summary)]
        if summary.topics:
            blocks.append("**Topics:** " + ", ".join(_inline(topic) for topic in summary.topics))
        blocks.append(f"*Covers {_count(summary.run_count, 'run')}; written {_inline(utc_time(summary.updated_at))}.*")
    for title, value in (("State", session.state), ("Metadata", session.metadata)):
        if value:
            blocks += [f"## {title}", _fenced(_json(value), "json")]
    blocks.append("## Runs")
    if earlier_runs > 0:
        blocks.append(f"*{_count(earlier_runs, 'earlier run')} not shown here.*")
    if not record.runs and earlier_runs == 0:
        blocks.append("*No runs yet.*")
    for number, run in enumerate(record.runs, start=earlier_runs + 1):
        blocks += _run(number, run)
    return "\n\n".join(blocks) + "\n"


def _facts(session: Session) -> str:
    facts = [
        f"- **Session:** {_code(session.session_id)}",
        f"- **User:** {_code(session.user_id)}",
    ]
    if session.session_type != "agent":
        facts.append(f"- **Type:** {_inline(session.session_type)}")
    for label, value in (("Agent", session.agent_id), ("Team", session.team_id), ("Workflow", session.workflow_id)):
        if value is not None:
            facts.append(f"- **{label}:** {_code(value)}")
    facts += [
        f"- **Created:** {_inline(utc_time(session.created_at))}",
        f"- **Updated:** {_inline(utc_time(session.updated_at))}",
        f"- **Runs:** {session.run_count:,}",
    ]
    totals = session.metrics
    if totals.input_tokens or totals.output_tokens:
        facts.append(f"- **Tokens:** {totals.input_tokens:,} input, {totals.output_tokens:,} output")
    if session.paused_run_ids:
        waiting = ", ".join(_code(run_id) for run_id in session.paused_run_ids)
        facts.append(f"- **Paused runs waiting:** {waiting}")
    return "\n".join(facts)


def _run(number: int, run: RunRecord) -> list[str]:
    """A run; a team's member run says whose it is and shows its input as the leader's request, its
    answer as the member's, so neither reads as the user's or the assistant's own turn."""
    heading = f"### Run {number:,}"
    if run.parent_run_id is not None:
        agent = f" of agent {_code(run.agent_id)}" if run.agent_id is not None else ""
        heading += f" · member run{agent} for run {_code(run.parent_run_id)}"
    elif run.agent_id is not None:
        heading += f" · agent {_code(run.agent_id)}"
    blocks = [heading, f"{_code(run.run_id)} · {_inline(utc_time(run.created_at))}"]
    member = run.parent_run_id is not None
    blocks += ["**Asked by the leader:**" if member else "**User:**", _paragraphs(run.input)]
    if run.attachments:
        blocks += ["**Attachments:**", "\n".join(_attachment(attachment) for attachment in run.attachments)]
    for step in run.steps:
        blocks += _step(step)
    for call in run.tool_calls:
        blocks += _tool_call(call)
    if run.content:
        blocks += ["**Member's answer:**" if member else "**Assistant:**", _paragraphs(run.content)]
    for requirement in run.requirements:
        blocks += _requirement(requirement)
    if run.status != "completed":
        blocks.append(f"**Status:** {run.status}" + (f": {_paragraphs(run.error)}" if run.error else ""))
    metrics = _metrics(run.metrics)
    if metrics:
        blocks.append(f"*{metrics}*")
    return blocks


def _attachment(attachment: AttachmentRef) -> str:
    """One attachment as a list item: what it is and where its bytes are (never the bytes)."""
    parts = [_inline(attachment.type), _code(attachment.mime_type)]
    if attachment.name is not None:
        parts.append(_inline(attachment.name) or "*(no name)*")
    if attachment.url is None:
        parts.append(_count(attachment.size, "byte"))
    else:
        parts.append("url " + _code(attachment.url))
    parts.append(_code(attachment.uri))
    return "- " + " · ".join(parts)


def _step(step: WorkflowStep) -> list[str]:
    heading = f"**Step** {_code(step.name)} · {_inline(step.status)}"
    if step.duration_ms is not None:
        heading += f" · {_duration(step.duration_ms)}"
    blocks = [heading]
    for label, value in (("Input:", step.input), ("Output:", step.output)):
        if value is not None:
            blocks += [label, *_cut_value(value)]
    return blocks


def _requirement(requirement: Requirement) -> list[str]:
    blocks = [f"**Waiting for** {_code(requirement.tool_name)} · call {_code(requirement.tool_call_id)}"]
    if requirement.arguments:
        blocks += ["Arguments:", *_cut_fenced(_json(requirement.arguments), "json")]
    return blocks


def _tool_call(call: ToolCall) -> list[str]:
    heading = f"**Tool call** {_code(call.tool_name)}"
    if call.duration_ms is not None:
        heading += f" · {_duration(call.duration_ms)}"
    blocks = [heading]
    if call.arguments:
        blocks += ["Arguments:", *_cut_fenced(_json(call.arguments), "json")]
    label = "Result (error):" if call.is_error else "Result:"
    if call.result is None:
        blocks.append(f"{label} none.")
    else:
        blocks += [label, *_cut_value(call.result)]
    return blocks


def _cut_value(value: Any) -> list[str]:
    """A JSON value fenced and cut: a string as text, anything else as JSON."""
    return _cut_fenced(value, "text") if isinstance(value, str) else _cut_fenced(_json(value), "json")


def _metrics(metrics: StoredRunMetrics) -> str:
    parts = [_inline(metrics.model)] if metrics.model else []
    tokens = [
        f"{count:,} {kind}"
        for count, kind in (
            (metrics.input_tokens, "input"),
            (metrics.output_tokens, "output"),
            (metrics.cache_read_tokens, "cache read"),
            (metrics.cache_write_tokens, "cache write"),
        )
        if count is not None
    ]
    if tokens:
        parts.append(", ".join(tokens) + " tokens")
    if metrics.duration_ms is not None:
        parts.append(_duration(metrics.duration_ms))
    return " · ".join(parts)


def _cut_fenced(text: str, info: str) -> list[str]:
    """`text` fenced, cut to RESULT_CHARS with a note saying so."""
    if len(text) <= RESULT_CHARS:
        return [_fenced(text, info)]
    note = f"*Cut to the first {RESULT_CHARS:,} of {len(text):,} characters.*"
    return [_fenced(text[:RESULT_CHARS], info), note]


def _fenced(text: str, info: str) -> str:
    """A fenced block that no backtick run of `text` can close."""
    body = visible(text)
    longest = max((len(run) for run in _BACKTICK_RUNS.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body}\n{fence}"


def _paragraphs(text: str) -> str:
    """`text` as literal markdown: each line escaped and kept as a line (a hard break), blank lines
    between paragraphs, leading indentation kept as non-breaking spaces."""
    paragraphs: list[list[str]] = [[]]
    for line in visible(text).split("\n"):
        if not line.strip():
            if paragraphs[-1]:
                paragraphs.append([])
            continue
        paragraphs[-1].append(_literal_line(line))
    return "\n\n".join("\\\n".join(lines) for lines in paragraphs if lines) or "*(empty)*"


def _literal_line(line: str) -> str:
    body = line.lstrip(" \t")
    indent = line[: len(line) - len(body)].replace("\t", "    ").replace(" ", _NBSP)
    escaped = _LINE_START_MARKUP.sub(_escape_line_start, _MARKDOWN_CHARACTERS.sub(r"\\\1", body.rstrip()))
    return indent + escaped


def _escape_line_start(match: re.Match[str]) -> str:
    if match.group(1):
        return "\\" + match.group(1)
    return f"{match.group(2)}\\{match.group(3)}"


def _inline(text: str) -> str:
    """`text` as literal markdown on one line (its line breaks become spaces)."""
    return _MARKDOWN_CHARACTERS.sub(r"\\\1", " ".join(visible(text).split()))


def _code(text: str) -> str:
    """`text` as an inline code span on one line, delimited by more backticks than it holds."""
    body = " ".join(visible(text).split("\n"))
    longest = max((len(run) for run in _BACKTICK_RUNS.findall(body)), default=0)
    ticks = "`" * (longest + 1)
    if body.startswith(("`", " ")) or body.endswith(("`", " ")):
        body = f" {body} "
    return f"{ticks}{body}{ticks}"


def _duration(milliseconds: float) -> str:
    return f"{milliseconds:,.0f} ms" if milliseconds < 1_000 else f"{milliseconds / 1_000:,.1f} s"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _count(count: int, word: str) -> str:
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"
