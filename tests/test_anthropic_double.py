"""The Messages API double, exercised through the real ``anthropic`` SDK."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import anthropic
import anyio
import pytest

from tests.anthropic_double import MessagesDouble, error, forced_tool_input, text, tool_use, tool_uses

MODEL = "claude-test-model"
TOOLS: list[Any] = [
    {
        "name": "lookup",
        "description": "Look a thing up",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    },
    {
        "name": "summarize",
        "description": "Summarize",
        "input_schema": {
            "type": "object",
            "properties": {"summary": {"type": "string"}, "topics": {"type": "array", "items": {"type": "string"}}},
        },
    },
]
USER: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def double() -> Iterator[MessagesDouble]:
    with MessagesDouble() as d:
        yield d


def client(double: MessagesDouble, max_retries: int = 0) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="test", base_url=double.base_url, max_retries=max_retries)


@pytest.mark.anyio
async def test_plain_text_reply(double: MessagesDouble) -> None:
    double.script(text("hello", input_tokens=12, output_tokens=3, cache_read_input_tokens=7))
    async with client(double) as c:
        msg = await c.messages.create(model=MODEL, max_tokens=100, messages=USER)
        default = await c.messages.create(model=MODEL, max_tokens=100, messages=USER)
    assert msg.content[0].type == "text" and msg.content[0].text == "hello"
    assert (msg.model, msg.role, msg.stop_reason) == (MODEL, "assistant", "end_turn")
    assert (msg.usage.input_tokens, msg.usage.output_tokens) == (12, 3)
    assert (msg.usage.cache_read_input_tokens, msg.usage.cache_creation_input_tokens) == (7, 0)
    assert msg._request_id is not None and msg._request_id.startswith("req_double_")
    assert default.content[0].type == "text" and default.content[0].text == "ok"
    assert len(double.request_seconds) == 2 and all(s >= 0 for s in double.request_seconds)


@pytest.mark.anyio
async def test_streamed_text_reply(double: MessagesDouble) -> None:
    double.script(
        text(
            "Hello there, streaming world!",
            input_tokens=20,
            output_tokens=9,
            cache_read_input_tokens=100,
            cache_creation_input_tokens=50,
        )
    )
    async with client(double) as c, c.messages.stream(model=MODEL, max_tokens=100, messages=USER) as stream:
        pieces = [piece async for piece in stream.text_stream]
        final = await stream.get_final_message()
    assert len(pieces) > 1 and "".join(pieces) == "Hello there, streaming world!"
    assert final.content[0].type == "text" and final.content[0].text == "Hello there, streaming world!"
    assert (final.model, final.stop_reason) == (MODEL, "end_turn")
    u = final.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_input_tokens, u.cache_creation_input_tokens) == (
        20,
        9,
        100,
        50,
    )
    assert double.requests[0]["body"]["stream"] is True


@pytest.mark.anyio
async def test_raw_stream_event_sequence(double: MessagesDouble) -> None:
    double.script(tool_use("lookup", {"q": "x"}, text="Let me look."))
    async with client(double) as c:
        stream = await c.messages.create(model=MODEL, max_tokens=100, messages=USER, stream=True)
        async with stream:
            events = [event async for event in stream]
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-2:] == ["message_delta", "message_stop"]
    assert types[1:4] == ["content_block_start", "content_block_delta", "content_block_delta"]
    assert types.count("content_block_start") == types.count("content_block_stop") == 2
    start = events[0]
    assert start.type == "message_start" and start.message.usage.cache_read_input_tokens == 0
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert {d.type for d in deltas} == {"text_delta", "input_json_delta"}


@pytest.mark.anyio
async def test_tool_use_plain_and_streamed(double: MessagesDouble) -> None:
    double.script(
        tool_use("lookup", {"q": "cats"}, id="toolu_fixed"),
        tool_uses([("lookup", {"q": "a"}), ("summarize", {"summary": "s", "topics": ["t1", "t2"]})], text="Two tools."),
    )
    async with client(double) as c:
        msg = await c.messages.create(model=MODEL, max_tokens=100, messages=USER, tools=TOOLS)
        async with c.messages.stream(model=MODEL, max_tokens=100, messages=USER, tools=TOOLS) as stream:
            final = await stream.get_final_message()
    assert msg.stop_reason == "tool_use"
    block = msg.content[0]
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == ("toolu_fixed", "lookup", {"q": "cats"})
    assert final.stop_reason == "tool_use"
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert final.content[0].type == "text" and final.content[0].text == "Two tools."
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(b.name, b.input) for b in uses] == [
        ("lookup", {"q": "a"}),
        ("summarize", {"summary": "s", "topics": ["t1", "t2"]}),
    ]
    assert len({b.id for b in uses}) == 2 and all(b.id.startswith("toolu_") for b in uses)


@pytest.mark.anyio
async def test_forced_tool_choice(double: MessagesDouble) -> None:
    payload = {"summary": "a chat about cats", "topics": ["cats", "naps"]}
    double.script(forced_tool_input(payload), forced_tool_input(payload), tool_use("summarize", payload))
    choice: Any = {"type": "tool", "name": "summarize"}
    async with client(double) as c:
        plain = await c.messages.create(model=MODEL, max_tokens=100, messages=USER, tools=TOOLS, tool_choice=choice)
        async with c.messages.stream(
            model=MODEL, max_tokens=100, messages=USER, tools=TOOLS, tool_choice=choice
        ) as stream:
            streamed = await stream.get_final_message()
        scripted = await c.messages.create(model=MODEL, max_tokens=100, messages=USER, tools=TOOLS, tool_choice=choice)
        double.script(forced_tool_input(payload))
        with pytest.raises(anthropic.BadRequestError):  # forced_tool_input needs a forced tool
            await c.messages.create(model=MODEL, max_tokens=100, messages=USER, tools=TOOLS)
    for msg in (plain, streamed, scripted):
        assert msg.stop_reason == "tool_use"
        assert [(b.type, getattr(b, "name", None), getattr(b, "input", None)) for b in msg.content] == [
            ("tool_use", "summarize", payload)
        ]
    assert double.requests[0]["body"]["tool_choice"] == choice


@pytest.mark.anyio
async def test_errors_raise_sdk_exceptions(double: MessagesDouble) -> None:
    double.script(error(429), error(500), error(529), error(429, mid_stream=True))
    async with client(double) as c:
        with pytest.raises(anthropic.RateLimitError) as rate:
            await c.messages.create(model=MODEL, max_tokens=100, messages=USER)
        with pytest.raises(anthropic.InternalServerError):
            await c.messages.create(model=MODEL, max_tokens=100, messages=USER)
        with pytest.raises(anthropic.InternalServerError) as overloaded:  # 529 -> OverloadedError subclass
            await c.messages.create(model=MODEL, max_tokens=100, messages=USER)
        with pytest.raises(anthropic.APIStatusError) as mid:
            async with c.messages.stream(model=MODEL, max_tokens=100, messages=USER) as stream:
                await stream.get_final_message()
    assert rate.value.status_code == 429 and rate.value.response.headers["retry-after"] == "0"
    assert rate.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": "double: 429"}}
    assert overloaded.value.status_code == 529
    assert isinstance(mid.value.body, dict) and mid.value.body["error"]["type"] == "rate_limit_error"


@pytest.mark.anyio
async def test_sdk_retries_then_succeeds(double: MessagesDouble) -> None:
    double.script(error(429), error(500), text("finally"))
    async with client(double, max_retries=2) as c:
        msg = await c.messages.create(model=MODEL, max_tokens=100, messages=USER)
    assert msg.content[0].type == "text" and msg.content[0].text == "finally"
    assert [r["headers"]["x-stainless-retry-count"] for r in double.requests] == ["0", "1", "2"]


@pytest.mark.anyio
async def test_requests_are_recorded(double: MessagesDouble) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    async with client(double) as c:
        await c.messages.create(model=MODEL, max_tokens=64, system="be brief", messages=messages, tools=TOOLS)
    (req,) = double.wait_for_requests(1)
    assert (req["method"], req["path"]) == ("POST", "/v1/messages")
    body = req["body"]
    assert (body["model"], body["max_tokens"], body["system"]) == (MODEL, 64, "be brief")
    assert body["messages"] == messages and body["tools"] == TOOLS and "stream" not in body
    # SDK 2.x sends the api_key as "authorization: Bearer", not "x-api-key"
    assert req["headers"]["authorization"] == "Bearer test" and "anthropic-version" in req["headers"]
    assert double.bodies == [body]


@pytest.mark.anyio
async def test_hanging_reply_can_be_cancelled(double: MessagesDouble) -> None:
    double.script(text("never seen", hold=True), text("never seen either", hold=True), text("still serving"))
    async with client(double) as c:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: c.messages.create(model=MODEL, max_tokens=100, messages=USER))
            await double.await_requests(1)
            tg.cancel_scope.cancel()
        with pytest.raises(TimeoutError), anyio.fail_after(0.2):  # the hold is unbounded: this must time out
            await c.messages.create(model=MODEL, max_tokens=100, messages=USER)
        msg = await c.messages.create(model=MODEL, max_tokens=100, messages=USER)  # still serving others
    assert msg.content[0].type == "text" and msg.content[0].text == "still serving"
    assert len(double.requests) == 3
    double.close()  # without release(): close() frees the two handler threads still holding
    assert double._thread is not None and not double._thread.is_alive() and not double._conns


@pytest.mark.anyio
async def test_release_lets_a_held_reply_answer(double: MessagesDouble) -> None:
    held = text("released", hold=True)
    double.script(held)
    async with client(double) as c, anyio.create_task_group() as tg:
        results: list[Any] = []

        async def call() -> None:
            results.append(await c.messages.create(model=MODEL, max_tokens=100, messages=USER))

        tg.start_soon(call)
        await double.await_requests(1)
        assert not results
        held.release()
    assert results[0].content[0].text == "released"


@pytest.mark.anyio
async def test_stream_cancelled_mid_way(double: MessagesDouble) -> None:
    double.script(text("a b c d e f g h i j k l m n o p", chunk_delay=0.05), text("after"))
    async with client(double) as c:
        with anyio.CancelScope() as scope:
            async with c.messages.stream(model=MODEL, max_tokens=100, messages=USER) as stream:
                async for _piece in stream.text_stream:
                    scope.cancel()
        assert scope.cancelled_caught
        msg = await c.messages.create(model=MODEL, max_tokens=100, messages=USER)
    assert msg.content[0].type == "text" and msg.content[0].text == "after"


def test_close_releases_held_replies_and_delays() -> None:
    double = MessagesDouble().start()
    double.script(text("held", hold=True), text("slow", delay=60))
    results: list[Any] = []

    def call() -> None:
        with anthropic.Anthropic(api_key="test", base_url=double.base_url, max_retries=0) as c:
            for _ in range(2):
                msg = c.messages.create(model=MODEL, max_tokens=10, messages=USER)
                results.append(msg.content[0].text if msg.content[0].type == "text" else None)

    worker = threading.Thread(target=call)
    worker.start()
    double.wait_for_requests(1)

    def close_after_second_request() -> None:
        double.wait_for_requests(2, timeout=10)
        double.close()  # the second reply has delay=60: close() must cut it short

    closer = threading.Thread(target=close_after_second_request)
    closer.start()
    double.release()
    worker.join(timeout=20)
    closer.join(timeout=20)
    assert not worker.is_alive() and not closer.is_alive() and results == ["held", "slow"]
    double.close()  # idempotent
    assert len(double.request_seconds) == 2


def test_delay_is_counted_in_request_seconds(double: MessagesDouble) -> None:
    double.script(text("x", delay=0.05))
    with anthropic.Anthropic(api_key="test", base_url=double.base_url, max_retries=0) as c:
        c.messages.create(model=MODEL, max_tokens=10, messages=USER)
    assert len(double.request_seconds) == 1 and double.request_seconds[0] >= 0.05


def test_subprocess_via_environment(double: MessagesDouble) -> None:
    double.script(text("from a subprocess"))
    code = (
        "import anthropic; c = anthropic.Anthropic(max_retries=0)\n"
        "with c: print(c.messages.create(model='m', max_tokens=5, messages=[{'role': 'user', "
        "'content': 'hi'}]).content[0].text)"
    )
    env = {**os.environ, "ANTHROPIC_BASE_URL": double.base_url, "ANTHROPIC_API_KEY": "test"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "from a subprocess"
    assert double.requests[0]["body"]["model"] == "m"
