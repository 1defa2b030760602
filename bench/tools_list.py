"""What tools/list costs a host's context on every turn: its size in characters and estimated tokens.

Measured as a host passes the list on (`tool_list_json`: each tool by alias without empty fields, compact
JSON), per tool and in all, for the server as built and for the same tools registered on a plain MCPServer
(the schemas the SDK derives, before compaction). Tokens are estimated as characters / 4.
Run: ``python -m bench.tools_list``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.server.mcpserver import MCPServer

from mcp_server_sessions.server.app import build_server
from mcp_server_sessions.server.schemas import tool_list_json
from mcp_server_sessions.server.settings import Settings
from mcp_server_sessions.server.tools import register_tools

ISSUE_BASELINE_CHARS = 36_860  # tools/list as issue #7 measured it
CHARS_PER_TOKEN = 4


async def listed_tools(server: MCPServer[Any]) -> list[Any]:
    async with Client(server) as client:
        return list((await client.list_tools()).tools)


async def measure() -> dict[str, Any]:
    uncompacted = MCPServer("uncompacted")
    register_tools(uncompacted)
    with tempfile.TemporaryDirectory(prefix="bench-tools-") as tmp:
        ours = await listed_tools(build_server(Settings(db=str(Path(tmp) / "s.db"))))
    raw = await listed_tools(uncompacted)
    before = {tool.name: len(tool_list_json([tool])) for tool in raw}
    total, total_before = len(tool_list_json(ours)), len(tool_list_json(raw))
    return {
        "chars": total,
        "tokens": total // CHARS_PER_TOKEN,
        "uncompacted_chars": total_before,
        "ratio_to_uncompacted": round(total / total_before, 3),
        "ratio_to_issue_baseline": round(total / ISSUE_BASELINE_CHARS, 3),
        "tools": {tool.name: {"chars": len(tool_list_json([tool])), "before": before[tool.name]} for tool in ours},
    }


def markdown(report: dict[str, Any]) -> str:
    rows = ["| tool | characters | est. tokens | before compaction |", "|---|---:|---:|---:|"]
    for name, sizes in report["tools"].items():
        rows.append(f"| {name} | {sizes['chars']:,} | {sizes['chars'] // CHARS_PER_TOKEN:,} | {sizes['before']:,} |")
    rows.append(f"| **all** | **{report['chars']:,}** | **{report['tokens']:,}** | {report['uncompacted_chars']:,} |")
    return (
        "\n".join(rows)
        + f"\n\n{report['ratio_to_uncompacted']:.0%} of the uncompacted list, "
        + f"{report['ratio_to_issue_baseline']:.0%} of the issue's {ISSUE_BASELINE_CHARS:,} characters."
    )


def main() -> None:
    report = asyncio.run(measure())
    print(markdown(report))
    print(json.dumps({key: value for key, value in report.items() if key != "tools"}))


if __name__ == "__main__":
    main()
