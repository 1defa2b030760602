"""Every result fits RESULT_BUDGET_BYTES: a page over large items ends early and its next_cursor goes on, and
a Run too large for the budget comes back with its longest texts cut, while the history tools return them whole."""

import json
from typing import Any

import pytest
from mcp import Client

from mcp_server_sessions.store.limits import MAX_RUN_BYTES, RESULT_BUDGET_BYTES
from tests.helpers import call_ok

pytestmark = pytest.mark.anyio

BIG = 900_000  # bytes; an item of this size is legal, and five of them pass the budget


def json_bytes(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def big_text(label: str, size: int = BIG) -> str:
    """`size` bytes of UTF-8, a quarter of them in two-byte characters."""
    return f"{label}:" + "é" * (size // 8) + "x" * (size - 2 * (size // 8) - len(label) - 1)


async def all_pages(client: Client, tool: str, items: str, **arguments: Any) -> list[list[Any]]:
    """The items of every page, each page checked to fit the budget."""
    pages, cursor = [], None
    while True:
        page = await call_ok(client, tool, **arguments, **({"cursor": cursor} if cursor else {}))
        assert json_bytes(page) <= RESULT_BUDGET_BYTES
        pages.append(page[items])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


async def test_a_history_page_of_large_messages_ends_at_the_budget(client: Client) -> None:
    for i in range(4):
        await call_ok(client, "record_run", session_id="big", input=big_text(f"q{i}"), output=big_text(f"a{i}"))
    pages = await all_pages(client, "get_chat_history", "messages", session_id="big", limit=1000)
    assert len(pages) > 1 and all(pages)
    contents = [m["content"] for page in pages for m in page]
    assert contents == [big_text(f"{kind}{i}") for i in range(4) for kind in ("q", "a")]  # each once, in order


async def test_a_tool_call_page_of_large_calls_ends_at_the_budget(client: Client) -> None:
    calls = [{"tool_name": "fetch", "arguments": {"page": big_text(f"arg{i}")}, "result": f"r{i}"} for i in range(6)]
    await call_ok(client, "record_run", session_id="big", input="fetch them", output="done", tool_calls=calls)
    pages = await all_pages(client, "get_tool_call_history", "tool_calls", session_id="big", limit=100)
    assert len(pages) > 1 and all(pages)
    arguments = [c["arguments"]["page"] for page in pages for c in page]
    assert arguments == [big_text(f"arg{i}") for i in reversed(range(6))]


async def test_a_session_list_of_large_states_ends_at_the_budget(client: Client) -> None:
    for i in range(6):
        await call_ok(client, "start_session", session_id=f"s{i}", state={"notes": big_text(f"state{i}")})
    pages = []
    cursor = None
    while True:
        page = await call_ok(client, "list_sessions", limit=200, **({"cursor": cursor} if cursor else {}))
        assert json_bytes(page) <= RESULT_BUDGET_BYTES and page["total"] == 6 and page["sessions"]
        pages.append(page["sessions"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(pages) > 1
    states = [s["state"]["notes"] for page in pages for s in page]
    assert states == [big_text(f"state{i}") for i in reversed(range(6))]


async def test_a_maximal_run_comes_back_cut_to_the_budget_and_whole_from_the_history_tools(client: Client) -> None:
    calls = [
        {
            "tool_name": "fetch",
            "arguments": {"page": big_text(f"arg{i}", 990_000)},
            "result": big_text(f"res{i}", 990_000),
        }
        for i in range(7)
    ]
    question, answer = big_text("question", 999_000), big_text("answer", 999_000)
    sent = {"session_id": "big", "input": question, "output": answer, "tool_calls": calls}
    assert MAX_RUN_BYTES - 500_000 < json_bytes(sent) < MAX_RUN_BYTES
    run = await call_ok(client, "record_run", run_id="r1", **sent)
    assert json_bytes(run) <= RESULT_BUDGET_BYTES
    assert run["run_id"] == "r1" and run["status"] == "completed" and len(run["tool_calls"]) == 7
    texts = [run["input"], run["content"]]
    texts += [text for call in run["tool_calls"] for text in (call["arguments"]["page"], call["result"])]
    assert all("[cut: " in text and "return it whole]" in text for text in texts)
    assert run["input"].startswith("question:é")

    history = await all_pages(
        client, "get_chat_history", "messages", session_id="big", include_tool_messages=True, limit=1000
    )
    messages = [m["content"] for page in history for m in page]
    assert messages[0] == question and messages[-1] == answer
    tool_pages = await all_pages(client, "get_tool_call_history", "tool_calls", session_id="big", limit=100)
    stored = [(c["arguments"]["page"], c["result"]) for page in tool_pages for c in page]
    assert stored == [(call["arguments"]["page"], call["result"]) for call in reversed(calls)]


async def test_small_results_are_returned_untouched(client: Client) -> None:
    run = await call_ok(client, "record_run", session_id="s", input="[cut: not really]", output="x" * 10_000)
    assert run["input"] == "[cut: not really]" and run["content"] == "x" * 10_000


async def test_a_message_whose_json_alone_passes_the_budget_is_read_back_whole(client: Client) -> None:
    text = "\x01" * 999_990  # legal (under 1,000,000 bytes), but six times that as JSON escapes
    await call_ok(client, "record_run", session_id="ctl", input="hi", output=text)
    first = await call_ok(client, "get_chat_history", session_id="ctl", limit=1)
    second = await call_ok(client, "get_chat_history", session_id="ctl", cursor=first["next_cursor"])
    assert [m["content"] for m in first["messages"] + second["messages"]] == ["hi", text]
    assert second["next_cursor"] is None


async def test_a_run_of_many_short_strings_still_comes_back_within_the_budget(client: Client) -> None:
    arguments = {f"k{index}": "v" * 900 for index in range(1_000)}  # about 0.92 MB of strings never cut alone
    calls = [{"tool_name": "bulk", "arguments": arguments, "result": [1] * 10} for _ in range(15)]
    run = await call_ok(client, "record_run", session_id="many", run_id="r1", input="hi", output="ok", tool_calls=calls)
    assert json_bytes(run) <= RESULT_BUDGET_BYTES
    assert run["run_id"] == "r1" and len(run["tool_calls"]) == 15 and run["content"] == "ok"
    assert any("cut" in call["arguments"] for call in run["tool_calls"])
    stored = await all_pages(client, "get_tool_call_history", "tool_calls", session_id="many", limit=100)
    assert all(call["arguments"] == arguments for page in stored for call in page)
