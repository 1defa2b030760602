"""The export format in process (server/export_format.py): one deterministic JSON line per session with
the versioned `format` field first, read back to the same record and the same bytes; only `\\n` ends a
line; each kind of bad line named by its number in one sentence; what the store would refuse and the same
session twice caught before anything is written; a binary file refused without being read whole."""

import io
import json
from typing import Any

import pytest

from mcp_server_sessions.server.export_format import FormatError, RecordChecks, decode, encode, read_export
from mcp_server_sessions.store.records import SessionRecord

HOSTILE = 'NUL\x00 CR\r CRLF\r\n LS\u2028 PS\u2029 NEL\x85 FS\x1c Zürich ☕ 𝄞 "quoted" \\back'
"""Text with every character some line splitter takes for a line end, and more beyond ASCII."""


def session(session_id: str = "trip", user_id: str = "alice", **fields: Any) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "user_id": user_id,
        "name": None,
        "state": {},
        "metadata": {},
        "agent": None,
        "summary": None,
        "run_count": 0,
        "created_at": "2025-01-02T03:04:05.000006Z",
        "updated_at": "2025-01-02T03:04:05.000006Z",
        "metrics": {
            "input_tokens": 0,
            "output_tokens": 0,
            "total_tokens": 0,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
        },
        **fields,
    }


def rich_record(session_id: str = "trip", user_id: str = "alice") -> SessionRecord:
    """A record with a run, a tool call, content blocks, metrics, a summary, agent settings and state."""
    run = {
        "run_id": "run-1",
        "session_id": session_id,
        "status": "completed",
        "input": HOSTILE,
        "content": f"Answer: {HOSTILE}",
        "tool_calls": [
            {
                "tool_call_id": "toolu_01",
                "run_id": "run-1",
                "tool_name": "weather",
                "arguments": {"city": HOSTILE, "days": 3},
                "result": {"forecast": [1, 2.5, None, True], "text": HOSTILE},
                "is_error": False,
                "created_at": "2025-01-02T03:04:06.000000Z",
                "duration_ms": 12.5,
            }
        ],
        "metrics": {"input_tokens": 120, "output_tokens": 30, "duration_ms": 812.25, "model": "m-1"},
        "created_at": "2025-01-02T03:04:05.500000Z",
        "error": None,
        "messages": [
            {"role": "user", "content": HOSTILE, "blocks": None, "is_tool": False},
            {"role": "assistant", "content": "", "blocks": [{"type": "tool_use", "id": "toolu_01"}], "is_tool": False},
            {"role": "tool", "content": "weather -> snow", "blocks": None, "is_tool": True},
        ],
    }
    fields = {
        "name": f"Trip {HOSTILE}",
        "state": {"zeta": 1, "alpha": {"nested": [1, 2.5, None]}, "text": HOSTILE},
        "metadata": {"tags": ["a", "b"]},
        "agent": {"model": "m-1", "system": HOSTILE, "num_history_runs": 2, "max_tokens": None, "auto_summary": False},
        "summary": {"summary": HOSTILE, "topics": ["fjords"], "run_count": 1, "updated_at": "2025-01-02T03:04:07Z"},
        "run_count": 1,
    }
    return SessionRecord.model_validate({"session": session(session_id, user_id, **fields), "runs": [run]})


def line_of(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, ensure_ascii=False) + "\n").encode()


def exported(record: SessionRecord) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(encode(record))
    return value


def read(content: bytes, name: str = "backup.jsonl") -> list[tuple[int, SessionRecord]]:
    return list(read_export(io.BytesIO(content), name))


def test_a_record_is_one_line_of_compact_json_with_the_format_first() -> None:
    record = SessionRecord.model_validate({"session": session(name="Zürich\x00\u2028\r"), "runs": []})
    assert encode(record) == (
        '{"format":"mcp-server-sessions/1","session":{"session_id":"trip","user_id":"alice",'
        '"name":"Zürich\\u0000\u2028\\r","state":{},"metadata":{},"agent":null,"summary":null,"run_count":0,'
        '"created_at":"2025-01-02T03:04:05.000006Z","updated_at":"2025-01-02T03:04:05.000006Z",'
        '"metrics":{"input_tokens":0,"output_tokens":0,"total_tokens":0,"cache_read_tokens":0,'
        '"cache_write_tokens":0},"session_type":"agent","agent_id":null,"team_id":null,"workflow_id":null,'
        '"paused_run_ids":[]},"runs":[]}\n'
    )


def test_a_decoded_line_is_the_record_and_encodes_to_the_same_bytes() -> None:
    record = rich_record()
    line = encode(record)
    assert line.count("\n") == 1 and line.endswith("\n")
    assert list(exported(record)["session"]["state"]) == ["zeta", "alpha", "text"]
    decoded = decode(line.encode())
    assert decoded == record
    assert encode(decoded) == line


def test_only_a_newline_ends_a_line() -> None:
    first, second = rich_record("one"), rich_record("two", user_id="bob")
    content = (encode(first) + encode(second)).encode()
    assert [(number, record) for number, record in read(content)] == [(1, first), (2, second)]


def test_blank_lines_are_passed_over_and_still_counted() -> None:
    first, second = rich_record("one"), rich_record("two")
    content = f"\n{encode(first)}\n  \n{encode(second)}".rstrip("\n").encode()  # no line end after the last
    assert read(content) == [(2, first), (5, second)]


def bad(mutate: Any) -> bytes:
    value = exported(rich_record())
    mutate(value)
    return line_of(value)


FIX = "; fix or remove it, then import again."


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"\xff\xfe{}\n", "is not UTF-8 text" + FIX),
        (b'{"format": "mcp-server-sessions/1", "session":\n', "is not JSON (the error is at character 48)" + FIX),
        (b'{"format": "mcp-server-sessions/1", "x": NaN}\n', "holds NaN, which JSON does not allow" + FIX),
        (b"[1, 2]\n", "is not a JSON object" + FIX),
        (
            bad(lambda v: v.pop("format")),
            'has no "format" field (it should be "mcp-server-sessions/1"), so export did not write it' + FIX,
        ),
        (
            bad(lambda v: v.update(format="mcp-server-sessions/2")),
            'is in format "mcp-server-sessions/2", newer than this version reads; upgrade mcp-server-sessions to '
            "import it.",
        ),
        (
            bad(lambda v: v.update(format="agno/1")),
            'is in an unknown format "agno/1" (this version reads "mcp-server-sessions/1")' + FIX,
        ),
        (
            bad(lambda v: v.update(format=1)),
            'is in an unknown format 1 (this version reads "mcp-server-sessions/1")' + FIX,
        ),
        (
            bad(lambda v: v["runs"][0]["metrics"].update(cost=1)),
            "has a field this version does not know (runs[0].metrics.cost); upgrade mcp-server-sessions if a newer "
            "version wrote the file, or remove the field.",
        ),
        (
            bad(lambda v: v.update(extra=1)),
            "has a field this version does not know (extra); upgrade mcp-server-sessions if a newer version wrote "
            "the file, or remove the field.",
        ),
        (bad(lambda v: v["session"].pop("user_id")), "lacks the field session.user_id" + FIX),
        (
            bad(lambda v: v["session"].update(run_count="1")),
            "has a wrong value at session.run_count (input should be a valid integer)" + FIX,
        ),
        (
            bad(lambda v: v["runs"][0].update(status="done")),
            "has a wrong value at runs[0].status (input should be 'running', 'completed', 'paused', 'cancelled' or "
            "'error')" + FIX,
        ),
    ],
    ids=[
        "not-utf8",
        "not-json",
        "nan",
        "not-object",
        "no-format",
        "newer-format",
        "unknown-format",
        "format-not-text",
        "unknown-nested-field",
        "unknown-top-field",
        "missing-field",
        "wrong-type",
        "wrong-status",
    ],
)
def test_a_bad_line_is_named_by_its_number(line: bytes, problem: str) -> None:
    content = encode(rich_record("good")).encode() + b"\n" + line + encode(rich_record("never-read")).encode()
    with pytest.raises(FormatError) as raised:
        read(content)
    assert str(raised.value) == f"backup.jsonl line 3 {problem}"


@pytest.mark.parametrize(
    ("content", "problem"),
    [(b"\x89PNG\r\n\x1a\n", "is not UTF-8 text"), (b"id,name\n1,x\n", "is not JSON (the error is at character 1)")],
    ids=["binary", "csv"],
)
def test_a_first_line_that_is_not_json_says_the_file_is_no_export(content: bytes, problem: str) -> None:
    with pytest.raises(FormatError) as raised:
        read(content, "photo.png")
    assert str(raised.value) == f"photo.png is not JSON Lines (line 1 {problem}); name a file that `export` wrote."


def test_a_binary_file_without_line_ends_is_refused_without_being_read_whole() -> None:
    file = io.BytesIO(b"\x00\xff" * 5_000_000)
    with pytest.raises(FormatError, match=r"^blob is not JSON Lines \(line 1 is not UTF-8 text\)"):
        list(read_export(file, "blob"))
    assert file.tell() == 65_536


def test_a_long_line_is_read_whole() -> None:
    record = SessionRecord.model_validate({"session": session(name="x" * 200_000), "runs": []})
    assert read(encode(record).encode()) == [(1, record)]


def test_checks_refuse_what_the_store_would_refuse_and_a_session_twice() -> None:
    checks = RecordChecks()
    checks.check(rich_record("trip"), "f line 1")
    checks.check(rich_record("trip", user_id="bob"), "f line 2")  # another user's session of the same id
    with pytest.raises(FormatError) as raised:
        checks.check(rich_record("trip"), "f line 3")
    assert str(raised.value) == (
        "f line 3 holds session 'trip' of user 'alice' again (first at f line 1); "
        "keep one of the two, then import again."
    )
    bad_id = SessionRecord.model_validate({"session": session("no spaces"), "runs": []})
    with pytest.raises(FormatError) as raised:
        checks.check(bad_id, "f line 4")
    assert str(raised.value) == (
        "f line 4 cannot be imported: session_id must be 1 to 128 letters, digits or ._:@- characters; "
        "got 'no spaces'; fix or remove it, then import again."
    )
    checks.close()
