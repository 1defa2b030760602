"""The stdio transport: one JSON-RPC message per line, every line answered.

In front of the SDK's session loop, in place of its stdio reader: lines are read with a size
cap (an oversize line is skipped as it streams in, never held whole), parsed by `wire`, and a
line that is not a message gets its JSON-RPC error here, through the same writer as every
other answer. Standard input and output are moved off file descriptors 0 and 1 while serving,
so nothing printed by accident can corrupt the protocol stream.
"""

import fcntl
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, BinaryIO

import anyio
import mcp_types as types
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from mcp.shared.message import SessionMessage

from .wire import MAX_MESSAGE_BYTES, Refusal, oversize_refusal, parse_message

logger = logging.getLogger(__name__)

_ENDS = 4096  # characters kept of each end of an oversize line, to find its request id
_CHUNK = 1 << 20

Streams = tuple[ObjectReceiveStream[SessionMessage | Exception], ObjectSendStream[SessionMessage]]


@asynccontextmanager
async def stdio_transport(wire_in: BinaryIO | None = None, wire_out: BinaryIO | None = None) -> AsyncIterator[Streams]:
    """The read and write streams of a session served over `wire_in` / `wire_out` (default: stdin/stdout)."""
    if wire_in is None or wire_out is None:
        wire_in, wire_out = _claim_standard_streams()
    to_server, from_wire = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    to_wire, from_server = anyio.create_memory_object_stream[SessionMessage](0)

    async def read_lines(refusals: ObjectSendStream[SessionMessage]) -> None:
        async with to_server, refusals:
            async for line in _lines(wire_in):
                parsed = parse_message(line) if isinstance(line, str) else line
                if isinstance(parsed, Refusal):
                    logger.warning("answered a line that is not a message it can serve: %s", parsed.reason)
                    await refusals.send(SessionMessage(parsed.error))
                elif parsed is not None:
                    await to_server.send(SessionMessage(parsed))

    async def write_lines() -> None:
        async with from_server:
            async for message in from_server:
                await anyio.to_thread.run_sync(_write, wire_out, _serialize(message.message))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(write_lines)
        tasks.start_soon(read_lines, to_wire.clone())
        async with to_wire:
            yield from_wire, to_wire
        tasks.cancel_scope.cancel()  # the reader may still wait for input that will never be served


async def _lines(wire_in: BinaryIO) -> AsyncIterator[str | Refusal]:
    """Each line of input as text, or the refusal of a line over MAX_MESSAGE_BYTES (never held whole)."""
    while True:
        chunks: list[bytes] = []
        size = 0
        head = previous_tail = b""
        while not chunks or not chunks[-1].endswith(b"\n"):
            chunk: bytes = await anyio.to_thread.run_sync(wire_in.readline, _CHUNK, abandon_on_cancel=True)
            if not chunk:
                break
            size += len(chunk)
            chunks.append(chunk)
            if size > MAX_MESSAGE_BYTES + 1:  # (+1: the newline)
                head = head or chunks[0][:_ENDS]
                previous_tail = chunks[-2][-_ENDS:] if len(chunks) > 1 else previous_tail
                del chunks[:-1]
        if not chunks:
            return
        if size <= MAX_MESSAGE_BYTES + 1:
            yield b"".join(chunks).decode("utf-8", errors="replace")
            continue
        tail = (previous_tail + chunks[-1])[-_ENDS:]
        yield oversize_refusal(head.decode("utf-8", errors="replace"), tail.decode("utf-8", errors="replace"), size)


def _serialize(message: types.JSONRPCMessage) -> bytes:
    try:
        text = message.model_dump_json(by_alias=True, exclude_unset=True)
    except ValueError:
        # Text the client sent may hold a lone surrogate that UTF-8 cannot carry; JSON can, as an escape.
        data: Any = message.model_dump(mode="json", by_alias=True, exclude_unset=True)
        text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    return text.encode() + b"\n"


def _write(wire_out: BinaryIO, data: bytes) -> None:
    wire_out.write(data)
    wire_out.flush()


def _claim_standard_streams() -> tuple[BinaryIO, BinaryIO]:
    """Private copies of fds 0 and 1 for the protocol; fd 0 then reads nothing and fd 1 goes to stderr."""
    # Copies above fd 2: with a standard descriptor closed at start, a plain dup() could land on it.
    wire_in = os.fdopen(fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3), "rb")
    wire_out = os.fdopen(fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout.flush()
    os.dup2(2, 1)
    return wire_in, wire_out
