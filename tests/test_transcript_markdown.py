"""The session as markdown (server/transcript_markdown.py), in process: a whole document as expected; hostile
text (headings, fences, HTML, list markers, tables, control characters, NUL) parsed back by a CommonMark
parser as the literal text it was, never as structure; fences and code spans no backtick run can close;
long tool results cut with a note; runs numbered after the earlier runs left out; a team's member runs
labelled as the leader's requests (never the user's), a workflow run's steps, attachments as references
(never their bytes) and what a paused run waits for."""

import json
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from mcp_server_sessions.server.transcript_markdown import RESULT_CHARS, session_markdown
from mcp_server_sessions.store import models
from mcp_server_sessions.store.attachments import AttachmentRecord
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


def test_a_team_session_labels_member_runs_as_the_leaders_requests() -> None:
    leader = run("L1", input="Find fjord tours", content="Here are three.", agent_id="lead")
    member = run("M1", input="Search tours near Bergen", content="Found three.", parent_run_id="L1")
    member.agent_id = "researcher"
    anonymous = run("M2", input="Check prices", content="All under 100.", parent_run_id="L1")
    record = SessionRecord(
        session=session(session_type="team", team_id="planners", agent_id="lead", run_count=3),
        runs=[leader, member, anonymous],
    )
    text = session_markdown(record)
    assert texts(text) == [
        "Fjords",
        *FACTS[:2],
        "Type: team",
        "Agent: lead",
        "Team: planners",
        *FACTS[2:],
        "Runs: 3",
        "Runs",
        "Run 1 · agent lead",
        "L1 · 2025-03-04 05:06:07 UTC",
        "User:",
        "Find fjord tours",
        "Assistant:",
        "Here are three.",
        "Run 2 · member run of agent researcher for run L1",
        "M1 · 2025-03-04 05:06:07 UTC",
        "Asked by the leader:",
        "Search tours near Bergen",
        "Member's answer:",
        "Found three.",
        "Run 3 · member run for run L1",
        "M2 · 2025-03-04 05:06:07 UTC",
        "Asked by the leader:",
        "Check prices",
        "Member's answer:",
        "All under 100.",
    ]
    assert text.count("**User:**\n") == 1 and text.count("**Assistant:**") == 1  # the leader's run only
    assert "### Run 2 · member run of agent `researcher` for run `L1`" in text


def test_a_workflow_run_lists_its_steps_cut_like_tool_results() -> None:
    steps = [
        models.WorkflowStep(name="fetch", input={"city": "Bergen"}, output="x" * (RESULT_CHARS + 10), duration_ms=1500),
        models.WorkflowStep(name="rank `best`", status="skipped"),
        models.WorkflowStep(name="write", input=HOSTILE, output=["a", 1], status="error"),
    ]
    record = SessionRecord(
        session=session(session_type="workflow", workflow_id="tour-builder"), runs=[run(steps=steps)]
    )
    text = session_markdown(record)
    shown = texts(text)
    assert shown[3:5] == ["Type: workflow", "Workflow: tour-builder"]
    assert [line for line in shown if line.startswith("Step")] == [
        "Step fetch · completed · 1.5 s",
        "Step rank `best` · skipped",
        "Step write · error",
    ]
    assert fences(text) == [
        ("json", json.dumps({"city": "Bergen"}, indent=2) + "\n"),
        ("text", "x" * RESULT_CHARS + "\n"),
        ("text", HOSTILE_SHOWN.replace("\u00a0", " ") + "\n"),  # a fence keeps the indentation as it is
        ("json", json.dumps(["a", 1], indent=2) + "\n"),
    ]
    assert f"Cut to the first 2,000 of {RESULT_CHARS + 10:,} characters." in shown
    assert shown.count("Input:") == 2 and shown.count("Output:") == 2


def test_attachments_are_listed_as_references_never_bytes() -> None:
    uri = "session://trip/attachments/{}"
    attachments = [
        AttachmentRecord(
            attachment_id="a1",
            type="image",
            mime_type="image/png",
            name="map <1>.png",
            size=2048,
            url=None,
            uri=uri.format("a1"),
            data="iVBORw0KGgoSECRETBYTES",
        ),
        AttachmentRecord(
            attachment_id="a2",
            type="file",
            mime_type="application/pdf",
            name=None,
            size=0,
            url="https://example.com/guide.pdf",
            uri=uri.format("a2"),
        ),
    ]
    text = session_markdown(SessionRecord(session=session(), runs=[run(attachments=attachments)]))
    assert "SECRETBYTES" not in text and "iVBOR" not in text
    items = texts(text)[texts(text).index("Attachments:") + 1 :][:2]
    assert items == [
        "image · image/png · map <1>.png · 2,048 bytes · session://trip/attachments/a1",
        "file · application/pdf · url https://example.com/guide.pdf · session://trip/attachments/a2",
    ]
    assert "link_open" not in token_types(text) and "html_inline" not in token_types(text)


def test_a_paused_run_shows_what_it_waits_for() -> None:
    requirements = [
        models.Requirement(tool_call_id="toolu_9", tool_name="confirm_booking", arguments={"tour": "```fjord```"}),
        models.Requirement(tool_call_id="toolu_10", tool_name="ask_user"),
    ]
    paused = run("run-2", status="paused", content=None, requirements=requirements)
    record = SessionRecord(session=session(run_count=2, paused_run_ids=["run-2"]), runs=[run(), paused])
    text = session_markdown(record)
    shown = texts(text)
    assert "Paused runs waiting: run-2" in shown
    assert shown[shown.index("Run 2") :] == [
        "Run 2",
        "run-2 · 2025-03-04 05:06:07 UTC",
        "User:",
        "Plan a trip",
        "Waiting for confirm_booking · call toolu_9",
        "Arguments:",
        "Waiting for ask_user · call toolu_10",
        "Status: paused",
    ]
    assert fences(text) == [("json", json.dumps({"tour": "```fjord```"}, indent=2) + "\n")]
