"""A scriptable test double of the Anthropic Messages API (``POST /v1/messages``).

The real ``anthropic`` SDK talks to it over HTTP through ``base_url=double.base_url`` (or the
``ANTHROPIC_BASE_URL`` environment variable in a subprocess)::

    with MessagesDouble() as double:
        double.script(text("hello"), tool_use("lookup", {"q": "x"}), error(429))
        client = anthropic.AsyncAnthropic(api_key="test", base_url=double.base_url, max_retries=0)

A ``ThreadingHTTPServer`` on 127.0.0.1 (port 0) in a background thread serves sync and async tests and
subprocesses alike. Each request consumes the next scripted ``Reply``, then the ``default`` one
(``text("ok")``). ``"stream": true`` gets the real API's SSE event sequence, else the JSON ``Message``.

``double.requests`` is a list of dicts, one per request in arrival order::

    {"method": "POST", "path": "/v1/messages", "headers": {lower-cased name: value}, "body": <parsed JSON>}

``double.request_seconds``: per answered request, the double's own time from reading the request
headers to writing the last byte (scripted delays and holds included), for benchmarks to subtract.

``text("late", hold=True)`` (or ``hold=a_threading_event``) waits before answering until
``reply.release()`` / ``double.release()`` / the event is set. ``close()`` releases every hold and
cuts every delay short, so shutdown never hangs. ``wait_for_requests(n)`` / ``await_requests(n)``
block (bounded) until ``n`` requests have arrived, e.g. before cancelling a held call.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import selectors
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypedDict, Unpack

import anyio

__all__ = ["MessagesDouble", "Reply", "ReplyOptions", "error", "forced_tool_input", "text", "tool_use", "tool_uses"]

_RETRYABLE_DEFAULT_HEADERS = {"retry-after": "0", "retry-after-ms": "1"}


@dataclass
class Reply:
    """One scripted answer; build it with ``text``, ``tool_use(s)``, ``forced_tool_input`` or ``error``."""

    content: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "end_turn"
    usage: dict[str, int] = field(default_factory=dict)
    status: int = 200
    error: dict[str, str] | None = None  # {"type": ..., "message": ...} for error replies
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before the response starts
    chunk_delay: float = 0.0  # seconds before each streamed content_block_delta
    gate: threading.Event | None = None  # if set, wait for this event before answering
    forced_input: dict[str, Any] | None = None  # answer the request's forced tool with this input
    mid_stream: bool = False  # error replies on stream requests: HTTP 200, message_start, then `error`

    def release(self) -> None:
        """Let a held reply proceed (no-op when it is not held)."""
        if self.gate is not None:
            self.gate.set()


class ReplyOptions(TypedDict, total=False):
    """Keyword options shared by the success builders (defaults in brackets)."""

    input_tokens: int  # [10]
    output_tokens: int  # [5]
    cache_read_input_tokens: int  # [0]
    cache_creation_input_tokens: int  # [0]
    delay: float  # seconds before the response starts [0]
    chunk_delay: float  # seconds before each streamed content_block_delta [0]
    hold: bool | threading.Event  # wait before answering until released / the event is set [no]


def _gate(hold: bool | threading.Event | None) -> threading.Event | None:
    return hold if isinstance(hold, threading.Event) else (threading.Event() if hold else None)


def _reply(blocks: list[dict[str, Any]], stop_reason: str, o: ReplyOptions) -> Reply:
    usage = {
        "input_tokens": o.get("input_tokens", 10),
        "output_tokens": o.get("output_tokens", 5),
        "cache_creation_input_tokens": o.get("cache_creation_input_tokens", 0),
        "cache_read_input_tokens": o.get("cache_read_input_tokens", 0),
    }
    return Reply(
        content=blocks,
        stop_reason=stop_reason,
        usage=usage,
        delay=o.get("delay", 0.0),
        chunk_delay=o.get("chunk_delay", 0.0),
        gate=_gate(o.get("hold")),
    )


def text(text: str = "ok", *, stop_reason: str = "end_turn", **options: Unpack[ReplyOptions]) -> Reply:
    """A plain assistant text message (``stop_reason`` "end_turn" unless given)."""
    return _reply([{"type": "text", "text": text}], stop_reason, options)


def tool_uses(
    calls: list[tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], str]],
    *,
    text: str | None = None,
    **options: Unpack[ReplyOptions],
) -> Reply:
    """An optional text block then one ``tool_use`` block per ``(name, input)`` or ``(name, input, id)``;
    stop_reason "tool_use". Ids default to ``toolu_double_<n>_<i>`` (unique per double)."""
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text is not None else []
    for call in calls:
        tool_id = call[2] if len(call) == 3 else None
        blocks.append({"type": "tool_use", "id": tool_id, "name": call[0], "input": call[1]})
    return _reply(blocks, "tool_use", options)


def tool_use(
    name: str, input: dict[str, Any], id: str | None = None, text: str | None = None, **options: Unpack[ReplyOptions]
) -> Reply:
    """A single ``tool_use`` reply."""
    return tool_uses([(name, input, id) if id else (name, input)], text=text, **options)


def forced_tool_input(input: dict[str, Any], **options: Unpack[ReplyOptions]) -> Reply:
    """A ``tool_use`` reply for whatever tool the request forces via ``tool_choice: {"type": "tool",
    "name": X}`` (or its only tool). Without such a request it answers 400 invalid_request_error."""
    reply = tool_uses([], **options)
    reply.forced_input = input
    return reply


def error(
    status: int,
    type: str | None = None,
    message: str | None = None,
    headers: dict[str, str] | None = None,
    *,
    delay: float = 0.0,
    hold: bool | threading.Event | None = None,
    mid_stream: bool = False,
) -> Reply:
    """An HTTP error with the API's JSON shape. Retryable statuses (408/409/429/5xx) default to
    ``retry-after: 0`` plus ``retry-after-ms: 1`` so SDK retries are immediate; ``headers`` override.
    ``mid_stream=True``: a streaming request gets HTTP 200, ``message_start`` then an ``error`` event."""
    default_type = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        500: "api_error",
        529: "overloaded_error",
    }.get(status, "api_error")
    retryable = status in (408, 409, 429) or status >= 500
    base = _reply([], "end_turn", {"output_tokens": 0, "delay": delay, "hold": hold or False})
    return replace(
        base,
        status=status,
        mid_stream=mid_stream,
        error={"type": type or default_type, "message": message or f"double: {status}"},
        headers={**(_RETRYABLE_DEFAULT_HEADERS if retryable else {}), **(headers or {})},
    )


def _chunks(s: str, n: int = 3) -> list[str]:
    size = max(1, -(-len(s) // n))
    return [s[i : i + size] for i in range(0, len(s), size)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else small SSE/body writes wait ~40 ms for delayed ACKs
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        started = time.perf_counter()
        self.server.double._busy_add(1)
        try:
            self.server.double._serve(self)
        except OSError:  # broken pipe / reset: the client went away (e.g. a cancelled request)
            self.close_connection = True
        finally:
            self.server.double._busy_add(-1, seconds=time.perf_counter() - started)

    def start_response(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.start_response(status, {"content-type": "application/json", **headers, "content-length": str(len(data))})
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # MessagesDouble.close joins handler threads itself
    double: MessagesDouble

    def process_request(self, request: Any, client_address: Any) -> None:
        # Register the connection before its thread starts, so close() sees every one of them.
        thread = threading.Thread(target=self._run, args=(request, client_address), daemon=True)
        self.double._track(request, thread, add=True)
        thread.start()

    def _run(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            self.double._track(request, threading.current_thread(), add=False)


class MessagesDouble:
    """Fake Anthropic Messages API server; use as a context manager (or call ``start``/``close``)."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or text("ok")
        self.requests: list[dict[str, Any]] = []
        self.request_seconds: list[float] = []
        self._script: deque[Reply] = deque()
        self._gates: list[threading.Event] = []
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._ids = itertools.count(1)
        self._busy = 0
        if self.default.gate is not None:
            self._gates.append(self.default.gate)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> MessagesDouble:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.double = self
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._accept_loop, name="MessagesDouble", daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        # Like serve_forever, but close() wakes it through a socketpair instead of a 0.5 s poll.
        assert self._server is not None
        with selectors.DefaultSelector() as sel:
            sel.register(self._server.socket, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._closing.is_set():
                for key, _ in sel.select():
                    if key.fileobj is self._server.socket and not self._closing.is_set():
                        self._server.handle_request()  # ready, so it accepts without blocking

    @property
    def base_url(self) -> str:
        assert self._server is not None, "MessagesDouble is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        """Release every hold, interrupt delays, drop open connections and join all threads."""
        if self._server is None:
            return
        self._closing.set()
        self.release()
        self._wake_w.send(b"x")
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._cond:  # let answers in flight finish (delays are cut short), then drop idle keep-alives
            self._cond.wait_for(lambda: self._busy == 0, timeout=10)
            conns = dict(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in conns.values():
            thread.join(timeout=10)
        self._server.server_close()
        self._wake_r.close()
        self._wake_w.close()
        self._server = None

    def __enter__(self) -> MessagesDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scripting and inspection ----------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        """Enqueue replies, consumed one per request in order (after any already queued)."""
        with self._cond:
            for reply in replies:
                self._script.append(reply)
                if reply.gate is not None:
                    self._gates.append(reply.gate)

    def release(self) -> None:
        """Release every held reply, queued or in flight (holds are per reply, so order does not matter)."""
        with self._cond:
            gates = list(self._gates)
        for gate in gates:
            gate.set()

    @property
    def bodies(self) -> list[Any]:
        with self._cond:
            return [r["body"] for r in self.requests]

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least ``n`` requests have arrived (TimeoutError after ``timeout``)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= n, timeout=timeout):
                raise TimeoutError(f"double got {len(self.requests)} requests, expected {n}")
            return list(self.requests)

    async def await_requests(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """``wait_for_requests`` for async tests (runs in a worker thread so the event loop keeps going)."""
        return await anyio.to_thread.run_sync(self.wait_for_requests, n, timeout, abandon_on_cancel=True)

    # -- server side -----------------------------------------------------------------------------
    def _track(self, conn: socket.socket, thread: threading.Thread, *, add: bool) -> None:
        with self._cond:
            if add:
                self._conns[conn] = thread
            else:
                self._conns.pop(conn, None)

    def _busy_add(self, n: int, seconds: float | None = None) -> None:
        with self._cond:
            self._busy += n
            if seconds is not None:
                self.request_seconds.append(seconds)
            self._cond.notify_all()

    def _serve(self, h: _Handler) -> None:
        raw = h.rfile.read(int(h.headers.get("content-length") or 0))
        path = h.path.split("?", 1)[0]
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with self._cond:
            self.requests.append(
                {"method": "POST", "path": path, "body": body, "headers": {k.lower(): v for k, v in h.headers.items()}}
            )
            self._cond.notify_all()
            reply = self._script.popleft() if self._script and path == "/v1/messages" else self.default
        if path != "/v1/messages":
            return self._send_error(h, 404, "not_found_error", f"double: no route for {path}", {})
        if not isinstance(body, dict):
            return self._send_error(h, 400, "invalid_request_error", "double: body is not a JSON object", {})
        if reply.gate is not None:
            reply.gate.wait()
        if reply.delay:
            self._closing.wait(reply.delay)
        if reply.forced_input is not None:
            choice, tools = body.get("tool_choice") or {}, body.get("tools") or []
            name = choice.get("name") if choice.get("type") == "tool" else None
            name = name or (tools[0].get("name") if len(tools) == 1 else None)
            if not name:
                msg = "double: forced_tool_input but the request forces no tool"
                return self._send_error(h, 400, "invalid_request_error", msg, {})
            reply = replace(
                reply,
                content=[*reply.content, {"type": "tool_use", "id": None, "name": name, "input": reply.forced_input}],
            )
        n = next(self._ids)
        content = [
            dict(b, id=b["id"] or f"toolu_double_{n}_{i}") if b["type"] == "tool_use" else dict(b)
            for i, b in enumerate(reply.content)
        ]
        message = {
            "id": f"msg_double_{n:04d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": content,
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": dict(reply.usage),
        }
        headers = {"request-id": f"req_double_{n:04d}", **reply.headers}
        if reply.error is not None and not (reply.mid_stream and body.get("stream")):
            return self._send_error(h, reply.status, reply.error["type"], reply.error["message"], headers)
        if body.get("stream"):
            return self._stream(h, reply, message, headers)
        h.send_json(200, message, headers)

    def _send_error(self, h: _Handler, status: int, type: str, msg: str, headers: dict[str, str]) -> None:
        h.send_json(status, {"type": "error", "error": {"type": type, "message": msg}}, headers)

    def _stream(self, h: _Handler, reply: Reply, message: dict[str, Any], headers: dict[str, str]) -> None:
        sse = {"content-type": "text/event-stream", "transfer-encoding": "chunked"}
        h.start_response(200, {**sse, **headers})

        def event(name: str, data: dict[str, Any]) -> None:
            payload = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            h.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))

        def delta(index: int, d: dict[str, Any]) -> None:
            if reply.chunk_delay:
                self._closing.wait(reply.chunk_delay)
            event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d})

        usage = message["usage"]
        event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    **message,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {**usage, "output_tokens": min(1, usage["output_tokens"])},
                },
            },
        )
        if reply.error is not None:
            event("error", {"type": "error", "error": reply.error})
        else:
            for index, block in enumerate(message["content"]):
                start = dict(block, text="") if block["type"] == "text" else dict(block, input={})
                event("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
                if index == 0:
                    event("ping", {"type": "ping"})
                if block["type"] == "text":
                    for piece in _chunks(block["text"]):
                        delta(index, {"type": "text_delta", "text": piece})
                else:
                    for piece in ["", *_chunks(json.dumps(block["input"]))]:
                        delta(index, {"type": "input_json_delta", "partial_json": piece})
                event("content_block_stop", {"type": "content_block_stop", "index": index})
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            )
            event("message_stop", {"type": "message_stop"})
        h.wfile.write(b"0\r\n\r\n")
