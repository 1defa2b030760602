"""Full-text search: word forms, case and accents, ranking, scoping and hostile queries."""

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import anyio
import pytest
from mcp import Client

from mcp_server_sessions.server.agent.inner_tools import InnerTools
from mcp_server_sessions.store import (
    InvalidInput,
    NewMessage,
    NewRun,
    NewToolCall,
    SearchHit,
    SessionStore,
    postgres_search,
    search_query,
    sqlite_search,
)
from mcp_server_sessions.store.limits import MAX_QUERY_CHARS
from tests.helpers import call_ok

pytestmark = pytest.mark.anyio


async def say(store: SessionStore, user: str, session: str, run_id: str, text: str, reply: str = "ok") -> None:
    run = NewRun(
        run_id=run_id,
        input=text,
        content=reply,
        messages=[NewMessage(role="user", content=text), NewMessage(role="assistant", content=reply)],
    )
    await store.for_user(user).append_run(session, run)


async def test_word_forms_case_and_accents_match(store: SessionStore) -> None:
    alice = store.for_user("alice")
    await say(store, "alice", "trip", "r1", "We planned a kayak trip on the Fjords")
    await say(store, "alice", "food", "r1", "Crème brûlée at the CAFÉ")
    await say(store, "alice", "other", "r1", "nothing relevant here")
    [hit] = await alice.search("kayaking fjord")
    assert (hit.session_id, hit.run_id, hit.role) == ("trip", "r1", "user")
    assert "**kayak**" in hit.snippet and "**Fjords**" in hit.snippet
    assert hit.score > 0 and hit.created_at.endswith("Z")
    [accent] = await alice.search("creme brulee cafe")
    assert accent.session_id == "food"


async def test_all_words_rank_before_some_words(store: SessionStore) -> None:
    await say(store, "alice", "a", "r1", "paddle across the lake")
    await say(store, "alice", "b", "r1", "paddle and portage across the lake at dawn")
    await say(store, "alice", "c", "r1", "portage only")
    hits = await store.for_user("alice").search("portage dawn")
    assert [h.session_id for h in hits][:2] == ["b", "c"]
    assert hits[0].score >= hits[1].score


async def test_tool_calls_are_searchable(store: SessionStore) -> None:
    alice = store.for_user("alice")
    run = NewRun(
        run_id="r1",
        input="weather?",
        content="see tool",
        messages=[NewMessage(role="user", content="weather?"), NewMessage(role="assistant", content="see tool")],
        tool_calls=[NewToolCall(tool_name="forecast", arguments={"city": "Trondheim"}, result={"sky": "drizzle"})],
    )
    await alice.append_run("s1", run)
    [hit] = await alice.search("trondheim drizzle")
    assert hit.role == "tool" and hit.run_id == "r1"


async def test_scope_num_sessions_and_exclude(store: SessionStore) -> None:
    alice = store.for_user("alice")
    for i in range(4):
        await say(store, "alice", f"s{i}", "r1", f"glacier hike number {i}")
    assert len(await alice.search("glacier")) == 4
    recent = await alice.search("glacier", num_sessions=2)
    assert {h.session_id for h in recent} == {"s2", "s3"}
    excluded = await alice.search("glacier", exclude_session_id="s3")
    assert {h.session_id for h in excluded} == {"s0", "s1", "s2"}
    assert len(await alice.search("glacier", exclude_session_id="not-mine")) == 4
    assert len(await alice.search("glacier", limit=2)) == 2


async def test_search_never_crosses_users(store: SessionStore) -> None:
    bob = store.for_user("bob")
    await say(store, "alice", "s1", "r1", "alice's private volcano")
    await say(store, "bob", "s1", "r1", "bob's lake")
    assert await bob.search("volcano") == []
    assert [h.snippet for h in await bob.search("lake")] == ["bob's **lake**"]
    assert await store.for_user("nobody").search("lake") == []


@pytest.mark.parametrize(
    "query",
    [
        '"',
        "'",
        "AND",
        "OR NOT",
        "NEAR(a b)",
        "*",
        "owner:1",
        "body:volcano",
        "'; DROP TABLE sessions; --",
        "^",
        "()",
        '"unbalanced',
        "",
        "   ",
        "!!!",
        "🚣",
        "x" * 2000,
        "\x00",
        "a-b",
        "{owner body}: x",
    ],
)
async def test_any_string_is_a_valid_query(store: SessionStore, query: str) -> None:
    alice = store.for_user("alice")
    await say(store, "alice", "s1", "r1", "plain words about a volcano")
    await say(store, "bob", "s1", "r1", "bob volcano owner")
    hits = await alice.search(query)
    assert all(h.session_id == "s1" for h in hits)
    assert (await alice.list_sessions()).total == 1


async def test_operator_words_are_plain_words(store: SessionStore) -> None:
    alice = store.for_user("alice")
    await say(store, "alice", "s1", "r1", "rock AND roll")
    await say(store, "alice", "s2", "r1", "near the shore")
    assert [h.session_id for h in await alice.search("NEAR")] == ["s2"]
    assert [h.session_id for h in await alice.search("AND roll")] == ["s1"]


async def test_a_huge_message_repeating_the_word_gets_a_snippet_without_stalling(store: SessionStore) -> None:
    alice = store.for_user("alice")
    await say(store, "alice", "big", "r1", "lorem ipsum " * 75_000)  # FTS5 snippet() takes ~30 s on this
    await say(store, "alice", "small", "r1", "Kayaking lorem once")
    with anyio.fail_after(10):
        hits = await alice.search("ipsum")
    assert [h.session_id for h in hits] == ["big"]
    assert hits[0].snippet.startswith("lorem **ipsum** lorem") and len(hits[0].snippet) <= 400
    [small] = await alice.search("kayak")
    assert small.snippet == "**Kayaking** lorem once"


async def test_very_common_words_act_as_stop_words(store: SessionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    alice = store.for_user("alice")
    monkeypatch.setattr(sqlite_search, "COMMON_WORD_MATCHES", 3)  # 2,000 in production
    monkeypatch.setattr(postgres_search, "COMMON_WORD_MATCHES", 3)
    # "paddle", not "the": PostgreSQL's English configuration leaves out stop words altogether
    texts = ["paddle fjord trip", "paddle lake", "paddle mountain", "paddle glacier", "paddle fjord again"]
    for i, text in enumerate(texts):
        await say(store, "alice", f"s{i}", "r1", text)
    await say(store, "bob", "b1", "r1", "fjord")
    fjord = await alice.search("paddle fjord")
    assert {h.session_id for h in fjord} == {"s0", "s4"} and all(h.score > 0 for h in fjord)
    assert all("**fjord**" in h.snippet for h in fjord)
    only_common = await alice.search("PADDLE", limit=2)
    assert [h.session_id for h in only_common] == ["s4", "s3"]  # newest first, unranked
    assert all(h.score == 0.0 for h in only_common)
    assert [h.session_id for h in await store.for_user("bob").search("paddle fjord")] == ["b1"]  # bob's own counts


def _traced_search(db_path: Path, user_id: str, query: str) -> tuple[list[SearchHit], list[str]]:
    """`search_user` on a connection of our own to the store's file, and the SQL it ran."""
    statements: list[str] = []
    with closing(sqlite3.connect(db_path)) as raw:
        raw.row_factory = sqlite3.Row
        [user_pk] = raw.execute("SELECT pk FROM users WHERE user_id = ?", (user_id,)).fetchone()
        raw.set_trace_callback(statements.append)
        words = search_query.quoted(search_query.terms(query))
        hits = sqlite_search.search_user(raw, user_pk, words, None, None, 10)
    return hits, statements


async def test_a_large_text_with_a_nul_near_its_start_gets_its_snippet_without_highlight(
    store: SessionStore, db_path: Path
) -> None:
    # SQLite's length() of a TEXT stops at a NUL, so this text used to pass for a one-character one
    # and got highlight() over all of it: 89 s for a search at 960 KB.
    await say(store, "alice", "big", "r1", "a\x00 the fjord trip " + "kayak lake shore " * 10_000)
    hits, statements = _traced_search(db_path, "alice", "fjord")
    assert [h.session_id for h in hits] == ["big"]
    assert not [sql for sql in statements if "highlight(" in sql]
    assert "**fjord**" in hits[0].snippet and len(hits[0].snippet) <= 400


@pytest.mark.parametrize("noise", ["\x00", "\x01\x02\x1b[31m\x7f", "\ufeff\u200b\x0b\x0c", "é\x00\x00"])
async def test_control_characters_in_a_huge_text_give_a_normal_result(store: SessionStore, noise: str) -> None:
    text = noise + " the fjord trip " + noise + ("kayak lake shore " + noise) * 30_000
    await say(store, "alice", "big", "r1", text)
    await say(store, "alice", "small", "r1", "a fjord again")
    with anyio.fail_after(10):
        hits = await store.for_user("alice").search("fjord trip")
    assert [h.session_id for h in hits] == ["big", "small"]
    assert "**fjord** **trip**" in hits[0].snippet and len(hits[0].snippet) <= 400


async def test_a_large_text_matching_only_past_its_first_bytes_gets_its_start_as_snippet(store: SessionStore) -> None:
    await say(store, "alice", "big", "r1", "Opening words here. " + "kayak lake shore " * 5_000 + "the fjord at last")
    [hit] = await store.for_user("alice").search("fjord")
    assert hit.snippet.startswith("Opening words here. kayak lake") and hit.snippet.endswith("…")


@pytest.mark.parametrize("size", [5_000, 1_000_000])
async def test_a_long_query_uses_its_first_words(client: Client, size: int) -> None:
    await call_ok(client, "record_run", session_id="s1", run_id="r1", input="a fjord trip", output="ok")
    query = ("fjord " + "zzz " * size)[:size]
    found = await call_ok(client, "search_previous_sessions", query=query)
    assert [r["session_id"] for r in found["results"]] == ["s1"]


def test_a_query_is_read_up_to_its_first_max_query_chars_characters() -> None:
    head = "x " * (MAX_QUERY_CHARS // 2 - 3) + "fjords"  # its last word ends right at the limit
    assert len(head) == MAX_QUERY_CHARS
    assert search_query.terms(head + "ide lake") == ["x"]  # "fjordside" is cut by the limit: left out
    assert search_query.terms(head + " lake") == ["x", "fjords"]
    assert search_query.terms(" ".join(f"w{i}" for i in range(100))) == [f"w{i}" for i in range(search_query.MAX_TERMS)]


async def test_the_models_search_tool_takes_a_long_query(store: SessionStore) -> None:
    await say(store, "alice", "earlier", "r1", "a fjord trip")
    text, record = await InnerTools(store.for_user("alice"), "current").call(
        "search_previous_sessions", {"query": "fjord " + "zzz " * 10_000}
    )
    assert not record.is_error, text
    assert [hit["session_id"] for hit in json.loads(text)] == ["earlier"]


async def test_a_snippet_keeps_the_texts_own_spacing(store: SessionStore) -> None:
    alice = store.for_user("alice")
    run = NewRun(
        run_id="r1",
        input="which city?",
        content="Oslo",
        messages=[NewMessage(role="user", content="which city?")],
        tool_calls=[NewToolCall(tool_name="lookup", arguments={"q": "capital Norway"}, result="Oslo")],
    )
    await alice.append_run("s1", run)
    await say(store, "alice", "s2", "r1", "(Norway)\n\n\t  has  fjords")
    hit = (await alice.search("capital Norway"))[0]
    assert hit.snippet == 'lookup {"q":"**capital** **Norway**"} Oslo'
    [spaced] = await alice.search("fjords")
    assert spaced.snippet == "(Norway) has **fjords**"


async def test_a_large_texts_snippet_finds_words_in_any_case(store: SessionStore) -> None:
    await say(store, "alice", "big", "r1", "From İstanbul to the FJORDS by train. " + "kayak lake shore " * 5_000)
    [hit] = await store.for_user("alice").search("fjord")
    assert hit.snippet.startswith("From İstanbul to the **FJORDS** by train.")


async def test_a_lone_surrogate_in_the_part_of_a_query_read_is_refused(store: SessionStore) -> None:
    alice = store.for_user("alice")
    await say(store, "alice", "s1", "r1", "hello there")
    for query in ("\ud800", "hello \udfff"):
        with pytest.raises(InvalidInput, match="query contains an unpaired surrogate"):
            await alice.search(query)
    assert [h.session_id for h in await alice.search("hello " * 1_000 + "\ud800")] == ["s1"]  # never read
