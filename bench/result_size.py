"""Peak memory of a stdio server answering the largest legal requests, against the same server after a small call.

Each call gets a fresh server subprocess (``python -m mcp_server_sessions.server``) on a database built
beforehand in this process, and the figure is that server's peak RSS (VmHWM in /proc/PID/status) once the
call has returned: the largest page of history over 1 MB messages, the largest page of sessions with 1 MB
states, and a record_run carrying about MAX_RUN_BYTES. The baseline is a fresh server after one small call.
The target: every peak under 500 MB, whatever the limit asked for (results are cut at RESULT_BUDGET_BYTES).
Run: ``python -m bench.result_size`` (``--quick`` for a few MB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import shlex
import sys
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from mcp_server_sessions.store import NewMessage, NewRun, SqliteStore
from mcp_server_sessions.store.limits import MAX_RUN_BYTES, RESULT_BUDGET_BYTES

USER = "bench"
TARGET_MB = 500
MB = 1_000_000
CALL_TIMEOUT_S = 300


def text(label: str, size: int) -> str:
    """`size` bytes of plain words (few distinct ones, so the search index stays cheap to build)."""
    words = f"{label} lorem ipsum dolor sit amet consectetur "
    return (words * (size // len(words) + 1))[: size - 1] + "."


async def build(db: pathlib.Path, messages: int, states: int) -> None:
    """Session 'big' of `messages` 1 MB messages, `states` sessions whose state is about 1 MB, one small."""
    store = await SqliteStore.open(db)
    sessions = store.for_user(USER)
    try:
        for i in range(0, messages, 2):
            big = [
                NewMessage(role=role, content=text(f"m{i + k}", MB - 1_000))
                for k, role in enumerate(("user", "assistant"))
            ]
            run = NewRun(run_id=f"r{i}", input=big[0].content, content=big[1].content, messages=big)
            await sessions.append_run("big", run)
        for i in range(states):
            await sessions.start_session(f"s{i}", state={"notes": text(f"state{i}", MB - 1_000)})
        await sessions.start_session("small", state={"note": "short"})
    finally:
        await store.close()


def peak_rss_bytes(pid: int) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc: this benchmark needs Linux")


async def one_call(db: pathlib.Path, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """A fresh server, one call: bytes of the structured result, and the server's peak RSS after it."""
    env = {**os.environ, "MCP_SESSIONS_DB": str(db), "MCP_SESSIONS_USER": USER}
    pid_file = db.parent / "server.pid"
    # `exec` makes the shell become the server, so the pid it wrote is the server's own.
    script = f"echo $$ > {shlex.quote(str(pid_file))}; exec {shlex.quote(sys.executable)} -m mcp_server_sessions.server"
    params = StdioServerParameters(command="sh", args=["-c", script], env=env)
    with anyio.fail_after(CALL_TIMEOUT_S):
        async with Client(params) as client:
            result = await client.call_tool(tool, arguments)
            assert not result.is_error, result.content
            pid = int(pid_file.read_text())
            return {
                "bytes": len(json.dumps(result.structured_content, ensure_ascii=False).encode()),
                "items": _items(result.structured_content or {}),
                "peak_rss_mb": peak_rss_bytes(pid) / MB,
            }


def _items(content: dict[str, Any]) -> int | None:
    """How many items a page holds (None for a single object)."""
    if "next_cursor" not in content:
        return None
    for key in ("messages", "sessions", "tool_calls"):
        if key in content:
            return len(content[key])
    return None


def maximal_run(quick: bool) -> dict[str, Any]:
    """record_run arguments of about MAX_RUN_BYTES (quick: a few MB): input, output and 1 MB tool calls."""
    calls = 1 if quick else 7
    side = MB - 10_000
    return {
        "session_id": "recorded",
        "input": text("input", side),
        "output": text("output", side),
        "tool_calls": [
            {"tool_name": "fetch", "arguments": {"page": text(f"a{i}", side)}, "result": text(f"r{i}", side)}
            for i in range(calls)
        ],
    }


async def main_async(quick: bool) -> dict[str, Any]:
    messages, sessions = (8, 8) if quick else (200, 200)
    with tempfile.TemporaryDirectory(prefix="bench-result-size-") as tmp:
        db = pathlib.Path(tmp) / "sessions.db"
        await build(db, messages, sessions)
        calls: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
            "baseline: get_session (small)": lambda: one_call(db, "get_session", {"session_id": "small"}),
            f"get_chat_history(limit=1000) over {messages} x 1 MB messages": lambda: one_call(
                db, "get_chat_history", {"session_id": "big", "limit": 1000}
            ),
            f"list_sessions(limit=200) over {sessions} x 1 MB states": lambda: one_call(
                db, "list_sessions", {"limit": 200}
            ),
            f"record_run of {'a few MB' if quick else f'~{MAX_RUN_BYTES // MB} MB'}": lambda: one_call(
                db, "record_run", maximal_run(quick)
            ),
        }
        figures = {name: await call() for name, call in calls.items()}
    baseline = next(iter(figures.values()))["peak_rss_mb"]
    for figure in figures.values():
        figure["ratio_to_baseline"] = figure["peak_rss_mb"] / baseline
    return {"quick": quick, "budget_bytes": RESULT_BUDGET_BYTES, "target_mb": TARGET_MB, "calls": figures}


def markdown(report: dict[str, Any]) -> str:
    rows = [
        "| call | bytes returned | items | server peak RSS | / baseline | under 500 MB |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, f in report["calls"].items():
        items = "" if f["items"] is None else f"{f['items']:,}"
        verdict = "yes" if f["peak_rss_mb"] < report["target_mb"] else "**NO**"
        rows.append(
            f"| {name} | {f['bytes']:,} | {items} | {f['peak_rss_mb']:.0f} MB | {f['ratio_to_baseline']:.2f}x "
            f"| {verdict} |"
        )
    note = f"Result budget: {report['budget_bytes']:,} bytes of JSON per call; a page ends early at it."
    return "\n".join(rows) + "\n\n" + note


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few MB instead of hundreds")
    args = parser.parse_args(argv)
    print(markdown(asyncio.run(main_async(args.quick))))


if __name__ == "__main__":
    main()
