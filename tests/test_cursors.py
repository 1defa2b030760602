"""Page cursors are opaque and continue only the list they came from: same user, same session, same filters,
same database file. Anything else, or any changed byte, is refused with the one cursor sentence."""

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_server_sessions.store import InvalidInput, NewMessage, NewRun, NewToolCall, SqliteStore
from tests.helpers import call_error, call_ok

pytestmark = pytest.mark.anyio

BAD_CURSOR = "cursor is not valid for this list; pass next_cursor from the previous call unchanged, or omit it."


def turn(run_id: str) -> NewRun:
    return NewRun(
        run_id=run_id,
        input=f"question {run_id}",
        content=f"answer {run_id}",
        messages=[
            NewMessage(role="user", content=f"question {run_id}"),
            NewMessage(role="tool", content="lookup()", is_tool=True),
            NewMessage(role="assistant", content=f"answer {run_id}"),
        ],
        tool_calls=[NewToolCall(tool_name="lookup"), NewToolCall(tool_name="fetch")],
    )


async def seed(client: Client) -> None:
    for i in range(3):
        await call_ok(client, "start_session", session_id=f"s{i}", name=f"Trip {i}")
        await call_ok(
            client,
            "record_run",
            session_id="s1",
            input=f"question {i}",
            output=f"answer {i}",
            tool_calls=[{"tool_name": "lookup"}, {"tool_name": "fetch"}],
        )


def raw_bytes(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def as_cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# Each list with the arguments its first page was read with, and the same list read with another filter.
LISTS: list[tuple[str, dict[str, Any], list[dict[str, Any]]]] = [
    (
        "list_sessions",
        {"name_contains": "Trip"},
        [
            {},
            {"name_contains": "trip "},
            {"name_contains": "Trip", "order": "asc"},
            {"name_contains": "Trip", "sort_by": "created_at"},
        ],
    ),
    (
        "get_chat_history",
        {"session_id": "s1", "include_tool_messages": True, "last_n_runs": 3},
        [
            {"session_id": "s1", "last_n_runs": 3},
            {"session_id": "s1", "include_tool_messages": True},
            {"session_id": "s1", "include_tool_messages": True, "last_n_runs": 2},
        ],
    ),
    (
        "get_tool_call_history",
        {"session_id": "s1", "tool_name": "lookup"},
        [{"session_id": "s1"}, {"session_id": "s1", "tool_name": "fetch"}],
    ),
]


@pytest.mark.parametrize(("tool", "arguments", "others"), LISTS, ids=[entry[0] for entry in LISTS])
async def test_a_cursor_is_refused_with_other_filters(
    client: Client, tool: str, arguments: dict[str, Any], others: list[dict[str, Any]]
) -> None:
    await seed(client)
    cursor = (await call_ok(client, tool, limit=1, **arguments))["next_cursor"]
    assert cursor
    for other in others:
        assert await call_error(client, tool, cursor=cursor, **other) == BAD_CURSOR, other
    await call_ok(client, tool, cursor=cursor, **arguments)


@pytest.mark.parametrize(("tool", "arguments", "_"), LISTS, ids=[entry[0] for entry in LISTS])
async def test_a_tampered_cursor_is_refused(client: Client, tool: str, arguments: dict[str, Any], _: Any) -> None:
    await seed(client)
    cursor = (await call_ok(client, tool, limit=1, **arguments))["next_cursor"]
    raw = raw_bytes(cursor)
    for index in range(len(raw)):
        flipped = raw[:index] + bytes([raw[index] ^ 1]) + raw[index + 1 :]
        assert await call_error(client, tool, cursor=as_cursor(flipped), **arguments) == BAD_CURSOR, index
    for changed in (raw[:-1], raw + b"\x00", raw[1:]):
        assert await call_error(client, tool, cursor=as_cursor(changed), **arguments) == BAD_CURSOR
    for junk in ("!", " ", "\n", "*"):  # a character outside the alphabet is not skipped over
        middle = len(cursor) // 2
        spoilt = cursor[:middle] + junk + cursor[middle:]
        assert await call_error(client, tool, cursor=spoilt, **arguments) == BAD_CURSOR, repr(junk)


async def test_a_cursor_shows_neither_row_ids_nor_timestamps(client: Client) -> None:
    await seed(client)
    first = await call_ok(client, "list_sessions", limit=1, sort_by="created_at")
    again = await call_ok(client, "list_sessions", limit=1, sort_by="created_at")
    for cursor in (first["next_cursor"], again["next_cursor"]):
        raw = raw_bytes(cursor)
        with pytest.raises(ValueError):
            json.loads(raw)
        assert first["sessions"][0]["created_at"].encode() not in raw
        assert first["sessions"][0]["created_at"][:4].encode() not in raw  # not even the year
    assert first["next_cursor"] != again["next_cursor"]  # a fresh nonce each time: nothing to compare or count
    for cursor in (first["next_cursor"], again["next_cursor"]):
        rest = await call_ok(client, "list_sessions", cursor=cursor, sort_by="created_at")
        assert [s["session_id"] for s in rest["sessions"]] == ["s1", "s0"]


async def test_a_cursor_from_another_database_file_is_refused(tmp_path: Path) -> None:
    stores = [await SqliteStore.open(tmp_path / f"{name}.db") for name in ("one", "two")]
    try:
        for store in stores:
            for i in range(2):
                await store.for_user("alice").append_run("s1", turn(f"r{i}"))
        one, two = (store.for_user("alice") for store in stores)
        messages = (await one.get_chat_history("s1", limit=1)).next_cursor
        calls = (await one.get_tool_calls("s1", limit=1)).next_cursor
        await one.start_session("s2")
        await two.start_session("s2")
        sessions = (await one.list_sessions(limit=1)).next_cursor
        reads = (
            lambda: two.get_chat_history("s1", cursor=messages),
            lambda: two.get_tool_calls("s1", cursor=calls),
            lambda: two.list_sessions(cursor=sessions),
        )
        for read in reads:
            with pytest.raises(InvalidInput, match=r"^cursor is not valid for this list"):
                await read()
    finally:
        for store in stores:
            await store.close()


async def test_a_cursor_still_works_after_the_file_is_reopened(db_path: Path) -> None:
    store = await SqliteStore.open(db_path)
    try:
        for i in range(2):
            await store.for_user("alice").append_run("s1", turn(f"r{i}"))
        cursor = (await store.for_user("alice").get_chat_history("s1", limit=2)).next_cursor
    finally:
        await store.close()
    reopened = await SqliteStore.open(db_path)
    try:
        rest = await reopened.for_user("alice").get_chat_history("s1", cursor=cursor)
        assert [m.content for m in rest.messages] == ["question r1", "answer r1"]
    finally:
        await reopened.close()
