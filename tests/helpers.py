"""What the tests share besides fixtures: the tool lists and the calls that check a tool's answer."""

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.types import CallToolResult

STORE_TOOLS = (
    "start_session",
    "record_run",
    "get_chat_history",
    "get_tool_call_history",
    "search_previous_sessions",
    "list_sessions",
    "get_session",
    "update_session",
    "delete_session",
    "fork_session",
)
READ_TOOLS = {"get_chat_history", "get_tool_call_history", "search_previous_sessions", "list_sessions", "get_session"}


async def call_ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; its structured content."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.content and result.content[0].type == "text"
    return result.structured_content


async def call_error(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail cleanly; its one-sentence error message."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error, result.structured_content
    return error_text(result)


def error_text(result: CallToolResult) -> str:
    assert len(result.content) == 1 and result.content[0].type == "text"
    text = result.content[0].text
    assert "\n" not in text and "Traceback" not in text and "sqlite" not in text.lower(), text
    return text


def table_counts(path: Path) -> dict[str, int]:
    """Row counts of every table, to prove a failed call changed nothing."""
    with closing(sqlite3.connect(path)) as conn:
        tables = ["users", "sessions", "runs", "messages", "tool_calls", "search_index"]
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
