"""list_sessions' name_contains matches anywhere in the whole name, NUL characters included, case-insensitive
for ASCII letters, and `total` counts exactly the sessions it matches."""

import pytest
from mcp import Client

from tests.helpers import call_ok

pytestmark = pytest.mark.anyio

NAMES = {"nul-first": "\x00Fjord trip", "nul-inside": "Fjord\x00trip", "plain": "fjord TRIP", "none": None}


async def matches(client: Client, needle: str) -> tuple[set[str], int]:
    page = await call_ok(client, "list_sessions", name_contains=needle, limit=200)
    assert len(page["sessions"]) == page["total"]
    return {s["session_id"] for s in page["sessions"]}, page["total"]


async def test_name_contains_matches_the_whole_name_nul_characters_included(client: Client) -> None:
    for session_id, name in NAMES.items():
        await call_ok(client, "start_session", session_id=session_id, **({"name": name} if name else {}))
    assert await matches(client, "trip") == ({"nul-first", "nul-inside", "plain"}, 3)
    assert await matches(client, "FJORD") == ({"nul-first", "nul-inside", "plain"}, 3)
    assert await matches(client, "\x00") == ({"nul-first", "nul-inside"}, 2)
    assert await matches(client, "\x00f") == ({"nul-first"}, 1)
    assert await matches(client, "d\x00T") == ({"nul-inside"}, 1)
    assert await matches(client, "fjord trip") == ({"nul-first", "plain"}, 2)
    assert await matches(client, "trip\x00") == (set(), 0)
    assert await matches(client, "É") == (set(), 0)
