"""Hostile input for every tool: each bad call is one clear sentence, writes nothing, and the server keeps serving.

Every error case checks: isError, a single sentence (no traceback, no driver or pydantic text), a hint naming
the offending argument or how to fix it, and unchanged row counts of every table.
"""

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from tests.helpers import STORE_TOOLS as TOOLS
from tests.helpers import call_error, call_ok, table_counts

pytestmark = pytest.mark.anyio

MISSING = object()


# Valid arguments of each tool on the session seeded by `seed`; error cases override one of them.
BASE: dict[str, dict[str, Any]] = {
    "start_session": {"session_id": "fresh"},
    "record_run": {"session_id": "s1", "input": "hello again", "output": "hi"},
    "get_chat_history": {"session_id": "s1"},
    "get_tool_call_history": {"session_id": "s1"},
    "search_previous_sessions": {"query": "hello"},
    "list_sessions": {},
    "get_session": {"session_id": "s1"},
    "update_session": {"session_id": "s1"},
    "delete_session": {"session_id": "s1"},
    "fork_session": {"session_id": "s1"},
}


async def seed(client: Client) -> dict[str, Any]:
    """Alice's session s1 with one run and one tool call; returns the session as stored."""
    await call_ok(
        client,
        "record_run",
        session_id="s1",
        input="hello there",
        output="general kenobi",
        run_id="r1",
        tool_calls=[{"tool_name": "lookup", "arguments": {"q": "jedi"}, "result": "found"}],
    )
    await call_ok(client, "update_session", session_id="s1", name="Seed", state={"k": 1}, metadata={"m": "x"})
    return await call_ok(client, "get_session", session_id="s1")


def check_sentence(message: str) -> None:
    """One short sentence with nothing of the implementation leaking through."""
    assert message.endswith("."), message
    assert len(message) <= 400, f"{len(message)} characters: {message[:200]}"
    assert not re.search(r"[.!?]\s+[A-Z]", message), f"more than one sentence: {message}"
    for leak in ("Traceback", "pydantic", "validation error", "Input should", "errors.pydantic.dev", "unexpectedly"):
        assert leak not in message, message


def mentions(message: str, hints: tuple[str, ...]) -> bool:
    low = message.lower()
    return any(h.lower() in low or h.lower().replace("_", " ") in low for h in hints)


async def rejected(client: Client, db_path: Path, tool: str, hints: str | tuple[str, ...], **arguments: Any) -> str:
    """Call `tool`, expect a clean one-sentence error that names a hint, and no row written."""
    before = table_counts(db_path)
    message = await call_error(client, tool, **arguments)
    assert table_counts(db_path) == before, f"{tool} failed but wrote rows: {message}"
    check_sentence(message)
    hints = (hints,) if isinstance(hints, str) else hints
    assert mentions(message, hints), f"{tool}: {message!r} names none of {hints}"
    return message


def with_args(tool: str, override: dict[str, Any]) -> dict[str, Any]:
    arguments = {**BASE[tool], **override}
    return {k: v for k, v in arguments.items() if v is not MISSING}


def b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# -- ids ------------------------------------------------------------------------------------------

BAD_IDS = [
    "",
    "x" * 5000,
    "x" * 129,
    "a/b",
    "../../etc/passwd",
    "..\\windows",
    "it's",
    'say"hi"',
    "a\x00b",
    "\x00",
    "a b",
    " s1",
    "a\nb",
    "s1\n",
    "tab\t",
    "ünïcode",
    "s1;DROP TABLE sessions",
    "%",
    "*",
    "\u202es1",
    "🦊",
    "\ud800",
]

ID_ARGUMENTS = (
    [(tool, "session_id") for tool in TOOLS if "session_id" in BASE[tool]]
    + [(tool, "user_id") for tool in TOOLS]
    + [("record_run", "run_id"), ("search_previous_sessions", "exclude_session_id")]
)


@pytest.mark.parametrize(("tool", "field"), ID_ARGUMENTS, ids=[f"{t}.{f}" for t, f in ID_ARGUMENTS])
async def test_malformed_ids_are_refused_by_every_tool(client: Client, db_path: Path, tool: str, field: str) -> None:
    session = await seed(client)
    for bad in BAD_IDS:
        message = await rejected(client, db_path, tool, field, **with_args(tool, {field: bad}))
        if bad != "\ud800":
            assert "128" in message or "characters" in message, message
    assert await call_ok(client, "get_session", session_id="s1") == session
    await call_ok(client, tool, **BASE[tool])


@pytest.mark.parametrize("odd", [".", "..", "...", "-", "_", ":", "@", "a.b:c@d-e_f", "x" * 128])
async def test_punctuation_only_ids_are_ordinary_ids(client: Client, db_path: Path, odd: str) -> None:
    """`.` is an allowed id character, so `..` is just a name: no path is ever built from an id."""
    started = await call_ok(client, "start_session", session_id=odd, user_id=odd)
    assert (started["session_id"], started["user_id"], started["created"]) == (odd, odd, True)
    await call_ok(client, "record_run", session_id=odd, user_id=odd, input="dots", output="fine", run_id=odd)
    history = await call_ok(client, "get_chat_history", session_id=odd, user_id=odd)
    assert [m["content"] for m in history["messages"]] == ["dots", "fine"]
    assert sorted(p.name for p in db_path.parent.iterdir() if not p.name.startswith("sessions.db")) == []
    await call_ok(client, "delete_session", session_id=odd, user_id=odd)
    await rejected(client, db_path, "get_session", ("session", "start_session"), session_id=odd, user_id=odd)


# -- wrong types, missing fields, out of range ---------------------------------------------------------

BAD_ARGUMENTS: dict[str, list[tuple[dict[str, Any], str]]] = {
    "start_session": [
        ({"session_id": 5}, "session_id"),
        ({"session_id": ["s1"]}, "session_id"),
        ({"name": 7}, "name"),
        ({"name": "x" * 513}, "name"),
        ({"state": [1, 2]}, "state"),
        ({"state": "x"}, "state"),
        ({"metadata": 3}, "metadata"),
        ({"agent": "claude"}, "agent"),
        ({"agent": {"num_history_runs": -1}}, "num_history_runs"),
        ({"agent": {"max_tokens": 0}}, "max_tokens"),
        ({"agent": {"auto_summary": "sometimes"}}, "auto_summary"),
        ({"agent": {"bogus": 1}}, "bogus"),
        ({"user_id": 5}, "user_id"),
    ],
    "record_run": [
        ({"session_id": MISSING}, "session_id"),
        ({"input": MISSING}, "input"),
        ({"output": MISSING}, "output"),
        ({"input": MISSING, "output": MISSING}, "input"),
        ({"input": ""}, "input"),
        ({"input": 5}, "input"),
        ({"output": None}, "output"),
        ({"output": ["a"]}, "output"),
        ({"tool_calls": "x"}, "tool_calls"),
        ({"tool_calls": {"tool_name": "t"}}, "tool_calls"),
        ({"tool_calls": [5]}, "tool_calls"),
        ({"tool_calls": [{"arguments": {}}]}, "tool_name"),
        ({"tool_calls": [{"tool_name": ""}]}, "tool_name"),
        ({"tool_calls": [{"tool_name": "t" * 201}]}, "tool_name"),
        ({"tool_calls": [{"tool_name": "t", "arguments": "x"}]}, "arguments"),
        ({"tool_calls": [{"tool_name": "t", "is_error": "maybe"}]}, "is_error"),
        ({"tool_calls": [{"tool_name": "t", "duration_ms": -1}]}, "duration_ms"),
        ({"tool_calls": [{"tool_name": "t", "tool_call_id": "x" * 129}]}, "tool_call_id"),
        ({"tool_calls": [{"tool_name": "t", "surprise": 1}]}, "surprise"),
        ({"metrics": {"input_tokens": -1}}, "input_tokens"),
        ({"metrics": {"output_tokens": "many"}}, "output_tokens"),
        ({"metrics": {"duration_ms": -0.5}}, "duration_ms"),
        ({"metrics": {"input_tokens": 10**30}}, "input_tokens"),
        ({"metrics": {"cache_write_tokens": 1_000_000_001}}, "cache_write_tokens"),
        ({"metrics": {"time_to_first_token_ms": 10**10 + 1}}, "time_to_first_token_ms"),
        ({"tool_calls": [{"tool_name": "t", "duration_ms": 1e11}]}, "duration_ms"),
        ({"metrics": "fast"}, "metrics"),
        ({"metrics": {"bogus": 1}}, "bogus"),
        ({"run_id": 5}, "run_id"),
        ({"user_id": ["bob"]}, "user_id"),
    ],
    "get_chat_history": [
        ({"session_id": MISSING}, "session_id"),
        ({"session_id": None}, "session_id"),
        ({"limit": "ten"}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": -5}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": 2**70}, "limit"),
        ({"limit": 1.5}, "limit"),
        ({"limit": None}, "limit"),
        ({"last_n_runs": 0}, "last_n_runs"),
        ({"last_n_runs": -1}, "last_n_runs"),
        ({"last_n_runs": 10**12}, "last_n_runs"),
        ({"last_n_runs": "all"}, "last_n_runs"),
        ({"include_tool_messages": "maybe"}, "include_tool_messages"),
        ({"include_tool_messages": [True]}, "include_tool_messages"),
        ({"cursor": 5}, "cursor"),
        ({"cursor": "x" * 1001}, "cursor"),
    ],
    "get_tool_call_history": [
        ({"session_id": MISSING}, "session_id"),
        ({"limit": "ten"}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": 10**30}, "limit"),
        ({"tool_name": 5}, "tool_name"),
        ({"tool_name": "x" * 201}, "tool_name"),
        ({"cursor": []}, "cursor"),
    ],
    "search_previous_sessions": [
        ({"query": MISSING}, "query"),
        ({"query": None}, "query"),
        ({"query": 5}, "query"),
        ({"query": ["fox"]}, "query"),
        ({"query": {"q": "fox"}}, "query"),
        ({"limit": 0}, "limit"),
        ({"limit": -3}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"num_sessions": 0}, "num_sessions"),
        ({"num_sessions": -1}, "num_sessions"),
        ({"num_sessions": 100_001}, "num_sessions"),
        ({"num_sessions": "all"}, "num_sessions"),
        ({"exclude_session_id": 5}, "exclude_session_id"),
    ],
    "list_sessions": [
        ({"limit": "ten"}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": 201}, "limit"),
        ({"limit": 10**30}, "limit"),
        ({"sort_by": "name"}, "sort_by"),
        ({"sort_by": "updated_at; DROP TABLE sessions"}, "sort_by"),
        ({"sort_by": None}, "sort_by"),
        ({"order": "up"}, "order"),
        ({"order": 1}, "order"),
        ({"name_contains": 5}, "name_contains"),
        ({"name_contains": "x" * 513}, "name_contains"),
        ({"cursor": 5}, "cursor"),
    ],
    "get_session": [
        ({"session_id": MISSING}, "session_id"),
        ({"session_id": None}, "session_id"),
        ({"session_id": ["s1"]}, "session_id"),
        ({"session_id": {"id": "s1"}}, "session_id"),
        ({"session_id": 1.5}, "session_id"),
    ],
    "update_session": [
        ({"session_id": MISSING}, "session_id"),
        ({"name": 7}, "name"),
        ({"name": "x" * 513}, "name"),
        ({"state": [1, 2]}, "state"),
        ({"state": "x"}, "state"),
        ({"state": 5}, "state"),
        ({"metadata": "x"}, "metadata"),
        ({"metadata": [1]}, "metadata"),
        ({"merge_state": "maybe"}, "merge_state"),
        ({"merge_state": [1]}, "merge_state"),
        ({"merge_state": None}, "merge_state"),
    ],
    "delete_session": [
        ({"session_id": MISSING}, "session_id"),
        ({"session_id": None}, "session_id"),
        ({"session_id": {"id": "s1"}}, "session_id"),
        ({"user_id": 5}, "user_id"),
    ],
    "fork_session": [
        ({"session_id": MISSING}, "session_id"),
        ({"new_session_id": 5}, "new_session_id"),
        ({"up_to_run_id": ["r1"]}, "up_to_run_id"),
        ({"up_to_run_id": ""}, "up_to_run_id"),
        ({"user_id": 5}, "user_id"),
    ],
}


@pytest.mark.parametrize("tool", TOOLS)
async def test_wrong_types_missing_fields_and_out_of_range_numbers(client: Client, db_path: Path, tool: str) -> None:
    session = await seed(client)
    for override, hint in BAD_ARGUMENTS[tool]:
        message = await rejected(client, db_path, tool, hint, **with_args(tool, override))
        if MISSING in override.values():
            assert "needs" in message or "missing" in message.lower() or "required" in message.lower(), message
    assert await call_ok(client, "get_session", session_id="s1") == session
    await call_ok(client, tool, **BASE[tool])


async def test_largest_allowed_numbers_are_accepted(client: Client) -> None:
    await seed(client)
    history = await call_ok(client, "get_chat_history", session_id="s1", limit=1000, last_n_runs=10_000)
    assert [m["content"] for m in history["messages"]] == ["hello there", "general kenobi"]
    assert len((await call_ok(client, "get_tool_call_history", session_id="s1", limit=200))["tool_calls"]) == 1
    hits = await call_ok(client, "search_previous_sessions", query="kenobi", num_sessions=100_000, limit=100)
    assert [h["session_id"] for h in hits["results"]] == ["s1"]
    assert (await call_ok(client, "list_sessions", limit=200))["total"] == 1
    one = await call_ok(client, "get_chat_history", session_id="s1", limit=1, last_n_runs=1)
    assert [m["content"] for m in one["messages"]] == ["hello there"] and one["next_cursor"]


async def test_unknown_session_is_a_clear_not_found_for_every_reading_tool(client: Client, db_path: Path) -> None:
    await seed(client)
    for tool in ("get_chat_history", "get_tool_call_history", "get_session", "update_session", "delete_session"):
        message = await rejected(client, db_path, tool, ("start_session", "list_sessions"), session_id="nope")
        assert "nope" in message
    await call_ok(client, "get_session", session_id="s1")


# -- sizes ----------------------------------------------------------------------------------------------


async def test_oversize_text_is_refused_naming_the_limit(client: Client, db_path: Path) -> None:
    await seed(client)
    new = {"session_id": "fresh", "user_id": "newcomer"}  # a refused call must not even create these
    huge = "y" * 1_100_000
    message = await rejected(client, db_path, "record_run", ("input",), input=huge, output="ok", **new)
    assert "1,000,000" in message and "1,100,000" in message
    message = await rejected(client, db_path, "record_run", ("output",), input="ok", output=huge, **new)
    assert "1,000,000" in message
    # 300,000 characters but 1,200,000 bytes of UTF-8: the limit is in bytes, and says so
    message = await rejected(client, db_path, "record_run", ("input",), input="🦊" * 300_000, output="ok", **new)
    assert "bytes" in message and "1,000,000" in message
    # within every per-field limit, but 16.2 MB in all
    calls = [{"tool_name": "t", "arguments": {"a": "word " * 180_000}}] * 18
    message = await rejected(
        client, db_path, "record_run", ("16,000,000",), input="x", output="y", tool_calls=calls, **new
    )
    assert "limit" in message
    assert (await call_ok(client, "list_sessions", user_id="newcomer"))["total"] == 0
    await call_ok(client, "record_run", input="still serving", output="yes", **new)


async def test_900k_characters_are_stored_and_read_back_intact(client: Client) -> None:
    text = ("lorem ipsum dolor sit amet, consectetur café " * 21_000)[:899_987] + " zanzibar 🦊Ω!"
    assert len(text) == 900_000 and len(text.encode()) < 1_000_000
    reply = text[::-1]
    run = await call_ok(client, "record_run", session_id="big", input=text, output=reply)
    assert run["input"] == text and run["content"] == reply
    history = await call_ok(client, "get_chat_history", session_id="big")
    assert [m["content"] for m in history["messages"]] == [text, reply]
    # a long text's snippet window is looked for in its first 16,000 bytes only (README: Search); a word
    # beyond them still finds the message, whose snippet is then the text's start
    [hit] = (await call_ok(client, "search_previous_sessions", query="zanzibar"))["results"]
    assert hit["session_id"] == "big" and hit["snippet"].startswith("lorem ipsum dolor") and len(hit["snippet"]) < 1000
    [hit] = (await call_ok(client, "search_previous_sessions", query="consectetur", limit=1))["results"]
    assert hit["session_id"] == "big" and "**consectetur**" in hit["snippet"] and len(hit["snippet"]) < 1000


async def test_oversize_state_and_metadata_are_refused_and_change_nothing(client: Client, db_path: Path) -> None:
    session = await seed(client)
    over = {"blob": "z" * 1_100_000}
    await rejected(client, db_path, "start_session", ("state",), session_id="fresh", state=over)
    await rejected(client, db_path, "start_session", ("metadata",), session_id="fresh", metadata=over)
    await rejected(client, db_path, "update_session", ("state",), session_id="s1", state=over)
    await rejected(client, db_path, "update_session", ("metadata",), session_id="s1", metadata=over)
    assert await call_ok(client, "get_session", session_id="s1") == session
    # two halves that are each allowed, but merged exceed the limit
    half = "h" * 600_000
    grown = await call_ok(client, "update_session", session_id="s1", state={"a": half})
    message = await rejected(client, db_path, "update_session", ("state",), session_id="s1", state={"b": half})
    assert "1,000,000" in message
    assert await call_ok(client, "get_session", session_id="s1") == grown
    replaced = await call_ok(client, "update_session", session_id="s1", state={"b": half}, merge_state=False)
    assert replaced["state"] == {"b": half}


async def test_tool_call_count_limit(client: Client, db_path: Path) -> None:
    await seed(client)
    calls = [{"tool_name": f"t{i}", "arguments": {"i": i}} for i in range(129)]
    message = await rejected(
        client,
        db_path,
        "record_run",
        ("tool_calls", "128"),
        session_id="fresh",
        input="x",
        output="y",
        tool_calls=calls,
    )
    assert "128" in message and "129" in message
    run = await call_ok(client, "record_run", session_id="fresh", input="x", output="y", tool_calls=calls[:128])
    assert [c["tool_name"] for c in run["tool_calls"]] == [f"t{i}" for i in range(128)]
    page = await call_ok(client, "get_tool_call_history", session_id="fresh", limit=200)
    assert [c["arguments"]["i"] for c in page["tool_calls"]] == list(range(127, -1, -1))


async def test_tool_call_within_documented_limits_is_accepted(client: Client) -> None:
    call = {"tool_name": "t", "arguments": {"a": "x" * 600_000}, "result": "y" * 600_000}
    run = await call_ok(client, "record_run", session_id="s1", input="x", output="y", tool_calls=[call])
    assert run["tool_calls"][0]["result"] == call["result"]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({"tool_name": "t", "arguments": {"a": "x" * 1_100_000}}, "arguments"),
        ({"tool_name": "t", "result": "x" * 1_100_000}, "result"),
        ({"tool_name": "t", "arguments": {"a": "\ud800"}}, "arguments"),
        ({"tool_name": "t", "result": "\udfff"}, "result"),
    ],
    ids=["oversize-arguments", "oversize-result", "surrogate-arguments", "surrogate-result"],
)
async def test_bad_tool_call_field_is_named(client: Client, db_path: Path, call: dict[str, Any], field: str) -> None:
    message = await rejected(
        client, db_path, "record_run", ("tool_calls",), session_id="s1", input="x", output="y", tool_calls=[call]
    )
    assert field in message, message


# -- text fidelity and invalid Unicode ---------------------------------------------------------------------

STRANGE_TEXTS = [
    "nul \x00 inside",
    "\x00",
    "controls \x01\x02\x07\x08\x0b\x0c\x1b[31mred\x1b[0m \x7f \x9f",
    "tab\tnewline\ncarriage\r\nend",
    "\u202eRTL override\u202c \u200fRLM \u200eLRM \u2067isolate\u2069 שָׁלוֹם مرحبا",
    "emoji 🦊 👩‍👩‍👧‍👦 🏳️‍🌈 \U0001f600 keycap 1️⃣",
    "combining e\u0301 cafe\u0301 n\u0303 Z\u0351\u0352\u0353algo",
    "bom \ufeff nonchar \uffff max \U0010ffff private \ue000",
    "line sep \u2028 para sep \u2029 nel \u0085",
    "  leading and trailing spaces  ",
    '\'; DROP TABLE messages; -- "quoted" `tick` $1 %s {}',
]


async def test_strange_text_is_stored_and_read_back_faithfully(client: Client) -> None:
    for i, text in enumerate(STRANGE_TEXTS):
        call = {"tool_name": f"tool{i}", "arguments": {"text": text, text: i}, "result": text}
        run = await call_ok(client, "record_run", session_id="w", input=text, output=text[::-1], tool_calls=[call])
        assert (run["input"], run["content"]) == (text, text[::-1])
    history = await call_ok(client, "get_chat_history", session_id="w", limit=1000)
    assert [m["content"] for m in history["messages"]] == [x for t in STRANGE_TEXTS for x in (t, t[::-1])]
    calls = (await call_ok(client, "get_tool_call_history", session_id="w", limit=200))["tool_calls"]
    for call in calls:
        text = STRANGE_TEXTS[int(call["tool_name"][4:])]
        assert call["arguments"] == {"text": text, text: int(call["tool_name"][4:])}
        assert call["result"] == text
    for text in STRANGE_TEXTS:
        started = await call_ok(client, "start_session", name=text, state={text: text}, metadata={"m": [text]})
        fetched = await call_ok(client, "get_session", session_id=started["session_id"])
        assert (fetched["name"], fetched["state"], fetched["metadata"]) == (text, {text: text}, {"m": [text]})


SURROGATES = [
    ("record_run", {"session_id": "s1", "input": "\ud800", "output": "y"}, "input"),
    ("record_run", {"session_id": "s1", "input": "x", "output": "a\udfffb"}, "output"),
    (
        "record_run",
        {"session_id": "s1", "input": "x", "output": "y", "tool_calls": [{"tool_name": "t\ud800"}]},
        "tool_name",
    ),
    (
        "record_run",
        {
            "session_id": "s1",
            "input": "x",
            "output": "y",
            "tool_calls": [{"tool_name": "t", "arguments": {"a": "\ud800"}}],
        },
        "surrogate",
    ),
    (
        "record_run",
        {"session_id": "s1", "input": "x", "output": "y", "tool_calls": [{"tool_name": "t", "result": ["\udc00"]}]},
        "surrogate",
    ),
    ("record_run", {"session_id": "s1", "input": "x", "output": "y", "metrics": {"model": "\ud800"}}, "model"),
    ("start_session", {"session_id": "fresh", "name": "\ud800"}, "name"),
    ("start_session", {"session_id": "fresh", "state": {"k": "\ud800"}}, "state"),
    ("start_session", {"session_id": "fresh", "metadata": {"k": ["ok", "\udbff"]}}, "metadata"),
    ("start_session", {"session_id": "fresh", "agent": {"system": "\ud800"}}, "system"),
    ("update_session", {"session_id": "s1", "name": "\ud800"}, "name"),
    ("update_session", {"session_id": "s1", "state": {"k": "\ud800"}}, "state"),
    ("update_session", {"session_id": "s1", "metadata": {"k": "\ud800"}}, "metadata"),
    ("search_previous_sessions", {"query": "\ud800"}, "query"),
    ("search_previous_sessions", {"query": "hello \udfff"}, "query"),
    ("list_sessions", {"name_contains": "\ud800"}, "name_contains"),
    ("get_tool_call_history", {"session_id": "s1", "tool_name": "\ud800"}, "tool_name"),
    ("get_chat_history", {"session_id": "s1", "cursor": "\ud800"}, "cursor"),
]


@pytest.mark.parametrize(
    ("tool", "arguments", "hint"), SURROGATES, ids=[f"{t}-{h}-{i}" for i, (t, _, h) in enumerate(SURROGATES)]
)
async def test_lone_surrogates_are_refused(
    client: Client, db_path: Path, tool: str, arguments: dict[str, Any], hint: str
) -> None:
    session = await seed(client)
    message = await rejected(client, db_path, tool, hint, **arguments)
    assert "surrogate" in message or "unicode" in message.lower(), message
    assert await call_ok(client, "get_session", session_id="s1") == session
    await call_ok(client, tool, **BASE[tool])


# -- search ------------------------------------------------------------------------------------------------


async def seed_search(client: Client) -> None:
    for session_id, said, reply in [
        ("fox", "the quick brown fox", "jumped over the lazy dog"),
        ("sql", "please drop table sessions", "done"),
        ("col", "col term here", "okay"),
        ("emoji", "party 🎉 time", "okay"),
    ]:
        await call_ok(client, "record_run", session_id=session_id, input=said, output=reply)
    await call_ok(client, "record_run", session_id="fox", user_id="bob", input="fox of bob", output="bob dog")


SEARCHES = [
    ('"', set()),
    ("'", set()),
    ('""', set()),
    ("AND", set()),
    ("OR NOT", set()),
    ("NOT", set()),
    ("NEAR(a b)", set()),
    ("NEAR(fox dog)", {"fox"}),
    ("*", set()),
    ("fox*", {"fox"}),
    ("col:term", {"col"}),
    ("body:fox", {"fox"}),
    ("owner:1", set()),
    ("{owner body}: fox", {"fox"}),
    ("'; DROP TABLE sessions; --", {"sql"}),
    ("SELECT * FROM sessions WHERE 1=1", {"sql"}),
    ("1=1 OR 'x'='x'", set()),
    ("^", set()),
    ("^fox", {"fox"}),
    ("()", set()),
    ("(fox", {"fox"}),
    ('"unbalanced', set()),
    ('"fox', {"fox"}),
    ('fox"', {"fox"}),
    ('"fox" "dog', {"fox"}),
    ("", set()),
    ("   ", set()),
    ("!@#$%^&*()[]{}<>?/\\|~`-+=;:,.", set()),
    ("_", set()),
    ("__init__", set()),
    ("🎉", set()),
    ("🦊 fox", {"fox"}),
    ("-fox", {"fox"}),
    ("fox AND", {"fox"}),
    ("AND fox OR", {"fox"}),
    ("FOX", {"fox"}),
    ("foxes", {"fox"}),
    ("\x00fox\x01", {"fox"}),
    ("\u202efox", {"fox"}),
    ("x" * 2000, set()),
    ("fox " * 500, {"fox"}),
    (" ".join(f"w{i}" for i in range(31)) + " fox", {"fox"}),  # 32 distinct words: all are used
]


async def test_any_string_is_a_valid_query(client: Client, db_path: Path) -> None:
    """One server for all the queries (a fixture per query would triple the file's runtime); every query is
    checked and the wrong ones are reported together."""
    await seed_search(client)
    before = table_counts(db_path)
    wrong = []
    for query, expected in SEARCHES:
        hits = (await call_ok(client, "search_previous_sessions", query=query, limit=100))["results"]
        if {h["session_id"] for h in hits} != expected or not all(
            h["score"] > 0 and "**" in h["snippet"] for h in hits
        ):
            wrong.append((query[:60], expected, [(h["session_id"], h["snippet"]) for h in hits]))
    assert wrong == []
    assert table_counts(db_path) == before
    assert (await call_ok(client, "list_sessions"))["total"] == 4  # DROP TABLE did nothing


async def test_hostile_filters_are_plain_text(client: Client, db_path: Path) -> None:
    for name in ["100% sure", "a_b", "back\\slash", "plain", "it's"]:
        await call_ok(client, "start_session", name=name)
    for needle, names in [
        ("%", ["100% sure"]),
        ("_", ["a_b"]),
        ("\\", ["back\\slash"]),
        ("'", ["it's"]),
        ("%_%", []),
        ("' OR 1=1 --", []),
    ]:
        page = await call_ok(client, "list_sessions", name_contains=needle)
        assert [s["name"] for s in page["sessions"]] == names and page["total"] == len(names), needle
    await seed(client)
    for tool_name in ["'; DROP TABLE tool_calls; --", "%", "lookup' OR '1'='1", "\x00"]:
        assert (await call_ok(client, "get_tool_call_history", session_id="s1", tool_name=tool_name))[
            "tool_calls"
        ] == []
    assert len((await call_ok(client, "get_tool_call_history", session_id="s1", tool_name="lookup"))["tool_calls"]) == 1
    assert table_counts(db_path)["tool_calls"] == 1


# -- cursors -------------------------------------------------------------------------------------------------

LIST_TOOLS = {
    "get_chat_history": {"session_id": "s1"},
    "get_tool_call_history": {"session_id": "s1"},
    "list_sessions": {},
}

GARBAGE_CURSORS = [
    "garbage",
    "!!!!",
    "x" * 1000,
    "eyJ",
    "====",
    "a b c",
    "\x00",
    "🦊",
    b64(b"\xff\xfe\x00junk"),
    b64(b"not json"),
    b64({}),
    b64([]),
    b64(None),
    b64("messages"),
    b64(["messages"]),
    b64(["messages", "a", "b"]),
    b64(["messages", 1.5, 2]),
    b64(["messages", True, 1]),
    b64(["tool_calls", "1"]),
    b64(["tool_calls", 1, 2]),
    b64(["sessions:updated_at:desc", 1, 1]),
    b64(["sessions:name:desc", "2020", 1]),
    b64(["nonsense", 1, 1]),
]


@pytest.mark.parametrize("tool", LIST_TOOLS)
async def test_garbage_cursors_are_refused(client: Client, db_path: Path, tool: str) -> None:
    await seed(client)
    for cursor in GARBAGE_CURSORS:
        await rejected(client, db_path, tool, "cursor", cursor=cursor, **LIST_TOOLS[tool])
    await call_ok(client, tool, **LIST_TOOLS[tool])


async def test_cursors_only_continue_the_list_they_came_from(client: Client, db_path: Path) -> None:
    for i in range(3):
        await call_ok(
            client,
            "record_run",
            session_id=f"s{i}",
            input=f"q{i}",
            output=f"a{i}",
            tool_calls=[{"tool_name": "t", "arguments": {"i": i}}, {"tool_name": "t", "arguments": {"j": i}}],
        )
    sessions = (await call_ok(client, "list_sessions", limit=1))["next_cursor"]
    history = (await call_ok(client, "get_chat_history", session_id="s1", limit=1))["next_cursor"]
    calls = (await call_ok(client, "get_tool_call_history", session_id="s1", limit=1))["next_cursor"]
    assert sessions and history and calls
    for tool, arguments, cursor in [
        ("get_chat_history", {"session_id": "s1"}, sessions),
        ("get_chat_history", {"session_id": "s1"}, calls),
        ("get_tool_call_history", {"session_id": "s1"}, sessions),
        ("get_tool_call_history", {"session_id": "s1"}, history),
        ("list_sessions", {}, history),
        ("list_sessions", {}, calls),
        ("list_sessions", {"order": "asc"}, sessions),
        ("list_sessions", {"sort_by": "created_at"}, sessions),
        ("list_sessions", {"sort_by": "created_at", "order": "asc"}, sessions),
        ("list_sessions", {}, sessions[:-2]),
        ("list_sessions", {}, sessions + "AA"),
    ]:
        await rejected(client, db_path, tool, "cursor", cursor=cursor, **arguments)
    # the genuine cursors still work
    rest = await call_ok(client, "list_sessions", limit=1, cursor=sessions)
    assert [s["session_id"] for s in rest["sessions"]] == ["s1"]
    more = await call_ok(client, "get_chat_history", session_id="s1", cursor=history)
    assert [m["content"] for m in more["messages"]] == ["a1"]


@pytest.mark.parametrize(
    ("tool", "cursor"),
    [
        ("get_chat_history", b64(["messages", 2**70, 0])),
        ("get_tool_call_history", b64(["tool_calls", 2**70])),
        ("list_sessions", b64(["sessions:updated_at:desc", "2030", 2**70])),
    ],
)
async def test_forged_cursor_with_huge_number_is_refused_as_a_bad_cursor(
    client: Client, db_path: Path, tool: str, cursor: str
) -> None:
    await seed(client)
    await rejected(client, db_path, tool, "cursor", cursor=cursor, **LIST_TOOLS[tool])
