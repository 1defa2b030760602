"""The session as markdown (server/transcript_markdown.py), in process: a whole document as expected; hostile
text (headings, fences, HTML, list markers, tables, control characters, NUL) parsed back by a CommonMark
parser as the literal text it was, never as structure; fences and code spans no backtick run can close;
long tool results cut with a note; runs numbered after the earlier runs left out."""

import json
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from mcp_server_sessions.server.transcript_markdown import RESULT_CHARS, session_markdown
from mcp_server_sessions.store.models import Session, SessionMetrics, SessionSummary, StoredRunMetrics, ToolCall
from mcp_server_sessions.store.records import RecordedMessage, RunRecord, SessionRecord

WHEN = "2025-03-04T05:06:07.123456Z"
HOSTILE = (
    "# Not a heading\n"
    "```python\n"
    "<script>alert(1)</script> &amp; <b>bold</b>\n"
    "- not a list\n"
    "1. not ordered\n"
    "===\n"
    "    not code\n"
    "| a | b |\n"
    "|---|---|\n"
    "~~~\n"
    "> not a quote\n"
    "<!-- not a comment\n"
    "[link](http://example.com) ![img](x.png) *stars* _under_ `tick` \\ $x$\n"
    "\n"
    "NUL\x00 ESC\x1b[31m DEL\x7f C1\x85 end"
)
HOSTILE_SHOWN = (
    HOSTILE.replace("    not code", "\u00a0" * 4 + "not code")
    .replace("\x00", "\u2400")
    .replace("\x1b", "\u241b")
    .replace("\x7f", "\u2421")
    .replace("\x85", "\ufffd")
)
"""HOSTILE as a reader sees it: leading spaces kept as non-breaking spaces, control characters as pictures."""

markdown = MarkdownIt("commonmark").enable(["table", "strikethrough"])


def session(**fields: Any) -> Session:
    values: dict[str, Any] = {
        "session_id": "trip",
        "user_id": "alice",
        "name": "Fjords",
        "state": {},
        "metadata": {},
        "agent": None,
        "summary": None,
        "run_count": 1,
        "created_at": WHEN,
        "updated_at": "2025-03-04T06:00:00.000000Z",
    }
    return Session(**(values | fields))


def run(run_id: str = "run-1", **fields: Any) -> RunRecord:
    values: dict[str, Any] = {
        "run_id": run_id,
        "session_id": "trip",
        "status": "completed",
        "input": "Plan a trip",
        "content": "Go in June.",
        "tool_calls": [],
        "metrics": StoredRunMetrics(),
        "created_at": WHEN,
        "messages": [RecordedMessage(role="user", content="Plan a trip")],
    }
    return RunRecord(**(values | fields))


def tool_call(**fields: Any) -> ToolCall:
    values: dict[str, Any] = {
        "tool_call_id": "toolu_1",
        "run_id": "run-1",
        "tool_name": "weather",
        "arguments": {},
        "result": None,
        "is_error": False,
        "created_at": WHEN,
        "duration_ms": None,
    }
    return ToolCall(**(values | fields))


def parsed(text: str) -> list[Token]:
    return markdown.parse(text)


def token_types(text: str) -> set[str]:
    """Every kind of token in the document, inline ones included: what structure it has."""
    tokens = parsed(text)
    return {token.type for token in tokens} | {child.type for token in tokens for child in token.children or []}


def texts(text: str) -> list[str]:
    """Each heading, list item and paragraph as a reader sees it: text and code, hard breaks as newlines."""
    shown = []
    for token in parsed(text):
        if token.type == "inline":
            children = token.children or []
            shown.append("".join("\n" if child.type == "hardbreak" else child.content for child in children))
    return shown


def fences(text: str) -> list[tuple[str, str]]:
    return [(token.info, token.content) for token in parsed(text) if token.type == "fence"]


def code_spans(text: str) -> list[str]:
    return [child.content for token in parsed(text) for child in token.children or [] if child.type == "code_inline"]


FACTS = [
    "Session: trip",
    "User: alice",
    "Created: 2025-03-04 05:06:07 UTC",
    "Updated: 2025-03-04 06:00:00 UTC",
]


def test_a_session_renders_as_the_whole_document() -> None:
    summary = SessionSummary(summary="Planning fjords.", topics=["fjords", "kayak"], run_count=1, updated_at=WHEN)
    record = SessionRecord(
        session=session(
            state={"city": "Bergen"},
            summary=summary,
            metrics=SessionMetrics(input_tokens=1200, output_tokens=30),
        ),
        runs=[
            run(
                tool_calls=[tool_call(arguments={"city": "Bergen"}, result="rain", duration_ms=12.0)],
                metrics=StoredRunMetrics(input_tokens=1200, output_tokens=30, duration_ms=2450.0, model="claude-x"),
            )
        ],
    )
    assert session_markdown(record) == (
        "# Fjords\n\n"
        "- **Session:** `trip`\n- **User:** `alice`\n- **Created:** 2025-03-04 05:06:07 UTC\n"
        "- **Updated:** 2025-03-04 06:00:00 UTC\n- **Runs:** 1\n- **Tokens:** 1,200 input, 30 output\n\n"
        "## Summary\n\nPlanning fjords.\n\n**Topics:** fjords, kayak\n\n"
        "*Covers 1 run; written 2025-03-04 05:06:07 UTC.*\n\n"
        '## State\n\n```json\n{\n  "city": "Bergen"\n}\n```\n\n'
        "## Runs\n\n### Run 1\n\n`run-1` · 2025-03-04 05:06:07 UTC\n\n**User:**\n\nPlan a trip\n\n"
        '**Tool call** `weather` · 12 ms\n\nArguments:\n\n```json\n{\n  "city": "Bergen"\n}\n```\n\n'
        "Result:\n\n```text\nrain\n```\n\n**Assistant:**\n\nGo in June.\n\n"
        "*claude-x · 1,200 input, 30 output tokens · 2.5 s*\n"
    )


def test_hostile_text_reads_back_literally_and_adds_no_structure() -> None:
    summary = SessionSummary(summary=HOSTILE, topics=["# t", "`x`"], run_count=1, updated_at=WHEN)
    record = SessionRecord(
        session=session(name=f"{HOSTILE} #", summary=summary),
        runs=[run(input=HOSTILE, content=HOSTILE, status="error", error=HOSTILE)],
    )
    text = session_markdown(record)
    hostile = HOSTILE_SHOWN.split("\n\n")
    assert texts(text) == [
        " ".join(f"{HOSTILE_SHOWN} #".split()),
        *FACTS,
        "Runs: 1",
        "Summary",
        *hostile,
        "Topics: # t, `x`",
        "Covers 1 run; written 2025-03-04 05:06:07 UTC.",
        "Runs",
        "Run 1",
        "run-1 · 2025-03-04 05:06:07 UTC",
        "User:",
        *hostile,
        "Assistant:",
        *hostile,
        f"Status: error: {hostile[0]}",
        *hostile[1:],
    ]
    structure = {"heading_open", "heading_close", "bullet_list_open", "bullet_list_close", "list_item_open"}
    structure |= {"list_item_close", "paragraph_open", "paragraph_close", "inline", "text", "hardbreak"}
    structure |= {"strong_open", "strong_close", "em_open", "em_close", "code_inline"}
    assert token_types(text) == structure  # no HTML, fence, code block, quote, table, link or image
    assert "\x00" not in text and "\x1b" not in text


def test_fences_and_code_spans_hold_any_backtick_run() -> None:
    result = "a ```` b\n```\n`````"
    arguments = {"code": "```\n```` x"}
    call = tool_call(tool_name="we`ath``er", arguments=arguments, result=result, is_error=True)
    text = session_markdown(SessionRecord(session=session(), runs=[run(tool_calls=[call])]))
    assert fences(text) == [("json", json.dumps(arguments, indent=2) + "\n"), ("text", result + "\n")]
    assert code_spans(text) == ["trip", "alice", "run-1", "we`ath``er"]
    assert "Result (error):" in texts(text)


def test_a_long_tool_result_is_cut_with_a_note() -> None:
    calls = [tool_call(result="x" * (RESULT_CHARS + 500)), tool_call(result={"items": list(range(1000))})]
    text = session_markdown(SessionRecord(session=session(), runs=[run(tool_calls=calls)]))
    listed = json.dumps({"items": list(range(1000))}, indent=2)
    assert fences(text) == [("text", "x" * RESULT_CHARS + "\n"), ("json", listed[:RESULT_CHARS] + "\n")]
    notes = [line for line in texts(text) if line.startswith("Cut to")]
    assert notes == [
        f"Cut to the first 2,000 of {RESULT_CHARS + 500:,} characters.",
        f"Cut to the first 2,000 of {len(listed):,} characters.",
    ]


def test_runs_are_numbered_after_the_earlier_runs_left_out() -> None:
    paused = run("run-5", status="paused", content=None, metrics=StoredRunMetrics(output_tokens=7))
    record = SessionRecord(session=session(name=None, run_count=5), runs=[run("run-4"), paused])
    text = session_markdown(record, earlier_runs=3)
    assert texts(text) == [
        "Session trip",
        *FACTS,
        "Runs: 5",
        "Runs",
        "3 earlier runs not shown here.",
        "Run 4",
        "run-4 · 2025-03-04 05:06:07 UTC",
        "User:",
        "Plan a trip",
        "Assistant:",
        "Go in June.",
        "Run 5",
        "run-5 · 2025-03-04 05:06:07 UTC",
        "User:",
        "Plan a trip",
        "Status: paused",
        "7 output tokens",
    ]


def test_a_session_without_runs_says_so() -> None:
    text = session_markdown(SessionRecord(session=session(run_count=0, name="Empty"), runs=[]))
    assert texts(text) == ["Empty", *FACTS, "Runs: 0", "Runs", "No runs yet."]


def test_earlier_runs_left_out_of_an_empty_tail_are_not_called_no_runs() -> None:
    text = session_markdown(SessionRecord(session=session(run_count=4, name="Empty"), runs=[]), earlier_runs=4)
    assert texts(text) == ["Empty", *FACTS, "Runs: 4", "Runs", "4 earlier runs not shown here."]
