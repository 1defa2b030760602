"""Every line a client writes to the stdio server gets an answer, whatever the line holds.

Raw JSON-RPC lines to a real server subprocess: the hostile lines no SDK client would send, but
JavaScript hosts, broken clients and attackers do.
"""

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from mcp_server_sessions.server.wire import MAX_DEPTH, MAX_MESSAGE_BYTES
from tests.helpers import table_counts

pytestmark = pytest.mark.anyio

TIMEOUT = 60


@dataclass
class RawSession:
    """A server subprocess spoken to in raw JSON-RPC lines; answers collected by id."""

    process: Process
    lines: BufferedByteReceiveStream
    answers: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)
    logged: str = ""
    """Everything the server wrote to stderr, once the session is over."""

    async def send(self, line: bytes | str) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.send((line.encode() if isinstance(line, str) else line) + b"\n")

    async def call(self, request_id: int, tool: str, arguments: dict[str, Any]) -> None:
        params = {"name": tool, "arguments": arguments}
        await self.send(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}))

    async def answer_to(self, request_id: Any) -> dict[str, Any]:
        while not self.answers.get(request_id):
            answer = json.loads(await self.lines.receive_until(b"\n", 50_000_000))
            self.answers.setdefault(answer.get("id"), []).append(answer)
        return self.answers[request_id].pop(0)

    async def still_serving(self, request_id: int) -> None:
        await self.call(request_id, "list_sessions", {})
        answer = await self.answer_to(request_id)
        assert "total" in answer["result"]["structuredContent"], answer


@asynccontextmanager
async def raw_session(db_path: Path) -> AsyncIterator[RawSession]:
    command = [sys.executable, "-m", "mcp_server_sessions.server", "--db", str(db_path), "--user", "alice"]
    async with await anyio.open_process(command) as process:
        assert process.stdout is not None
        session = RawSession(process, BufferedByteReceiveStream(process.stdout))
        hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        await session.send(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello}))
        await session.answer_to(0)
        await session.send(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        yield session
        assert process.stdin is not None and process.stderr is not None
        await process.stdin.aclose()
        await process.wait()
        session.logged = b"".join([chunk async for chunk in process.stderr]).decode()


def one_sentence(error: dict[str, Any]) -> str:
    message = error["message"]
    assert isinstance(message, str) and "\n" not in message and "Traceback" not in message, message
    return message


async def test_a_lone_surrogate_escape_gets_the_tools_own_refusal(db_path: Path) -> None:
    with anyio.fail_after(TIMEOUT):
        async with raw_session(db_path) as session:
            arguments = {"session_id": "s1", "input": "a<S>b", "output": "x"}
            params = {"name": "record_run", "arguments": arguments}
            call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params}
            await session.send(json.dumps(call).replace("<S>", "\\ud83d"))  # JSON.stringify of a string cut in an emoji
            answer = await session.answer_to(2)
            await session.still_serving(3)
    assert answer["result"]["isError"] is True
    text = answer["result"]["content"][0]["text"]
    assert "valid Unicode" in text and "input" in text, text
    assert table_counts(db_path)["runs"] == 0


async def test_a_broken_json_line_gets_a_parse_error_with_its_id(db_path: Path) -> None:
    with anyio.fail_after(TIMEOUT):
        async with raw_session(db_path) as session:
            await session.send('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"get_session",')
            with_id = await session.answer_to(7)
            await session.send('{"method":"tools/call","params":{"arguments":{"a":}},"jsonrpc":"2.0","id":"js-8"}')
            js_style = await session.answer_to("js-8")
            await session.send("this is not json")
            anonymous = await session.answer_to(None)
            await session.still_serving(9)
    for answer in (with_id, js_style, anonymous):
        assert answer["error"]["code"] == -32700, answer
        assert "not valid JSON" in one_sentence(answer["error"])


async def test_deep_arguments_get_an_answer_with_the_request_id(db_path: Path) -> None:
    with anyio.fail_after(TIMEOUT):
        async with raw_session(db_path) as session:
            for request_id, depth in ((2, 198), (3, 5_000), (4, 200_000)):
                deep = "[" * depth + "]" * depth
                arguments = '{"state":{"deep":' + deep + "}}"
                envelope = f'"jsonrpc":"2.0","id":{request_id},"method":"tools/call"'
                await session.send("{" + envelope + ',"params":{"name":"start_session","arguments":' + arguments + "}}")
            answers = [await session.answer_to(request_id) for request_id in (2, 3, 4)]
            await session.still_serving(5)
    for answer in answers:
        assert answer["error"]["code"] == -32600, answer
        assert f"at most {MAX_DEPTH} levels" in one_sentence(answer["error"])
    assert table_counts(db_path)["sessions"] == 0


async def test_arguments_just_within_the_depth_limit_are_served(db_path: Path) -> None:
    depth = MAX_DEPTH - 6  # the envelope, params, arguments and state take the first levels
    state = {"deep": json.loads("[" * depth + "]" * depth)}
    with anyio.fail_after(TIMEOUT):
        async with raw_session(db_path) as session:
            await session.call(2, "start_session", {"session_id": "s1", "state": state})
            answer = await session.answer_to(2)
    assert answer["result"]["isError"] is False, answer
    assert answer["result"]["structuredContent"]["state"] == state


async def test_a_five_thousand_digit_number_gets_an_answer_with_the_request_id(db_path: Path) -> None:
    with anyio.fail_after(TIMEOUT):
        async with raw_session(db_path) as session:
            digits = "9" * 5_000
            await session.send(
                '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"record_run",'
                f'"arguments":{{"session_id":"s1","input":"hi","output":"yo","metrics":{{"input_tokens":{digits}}}}}}}}}'
            )
            answer = await session.answer_to(2)
            await session.still_serving(3)
    assert answer["error"]["code"] == -32600, answer
    assert "more than 100 digits" in one_sentence(answer["error"])
    assert table_counts(db_path)["runs"] == 0


async def test_a_line_over_the_size_limit_is_refused_unread_and_the_next_one_served(db_path: Path) -> None:
    huge = "x" * 100_000_000
    line = '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"record_run","arguments":{"input":"'
    line += huge + '","session_id":"s1","output":"o"}}}'
    with anyio.fail_after(TIMEOUT):
        async with raw_session(db_path) as session:
            await session.send(line)
            answer = await session.answer_to(2)
            await session.still_serving(3)
            status = Path(f"/proc/{session.process.pid}/status").read_text()
    assert answer["error"]["code"] == -32600, answer
    assert f"limit of {MAX_MESSAGE_BYTES:,} bytes" in one_sentence(answer["error"])
    peak_kb = int(next(row for row in status.splitlines() if row.startswith("VmHWM:")).split()[1])
    assert peak_kb * 1024 < 200_000_000, f"peak RSS {peak_kb} kB: the 100 MB line was held whole"
    assert table_counts(db_path)["runs"] == 0


async def test_json_that_is_not_a_request_gets_an_invalid_request_error(db_path: Path) -> None:
    with anyio.fail_after(TIMEOUT):
        async with raw_session(db_path) as session:
            await session.send('{"jsonrpc":"2.0","id":4,"params":{}}')  # no method
            no_method = await session.answer_to(4)
            await session.send("[1, 2, 3]")
            not_an_object = await session.answer_to(None)
            await session.send("")  # blank lines are skipped, not answered
            await session.still_serving(5)
    for answer in (no_method, not_an_object):
        assert answer["error"]["code"] == -32600, answer
        one_sentence(answer["error"])
    assert not session.answers.get(None)


async def test_each_refused_line_is_logged_at_warning_on_stderr(db_path: Path) -> None:
    with anyio.fail_after(TIMEOUT):
        async with raw_session(db_path) as session:
            await session.send("not json")
            await session.answer_to(None)
            await session.still_serving(2)
    assert "WARNING" in session.logged and "not valid JSON" in session.logged, session.logged
