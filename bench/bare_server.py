"""The baselines: a bare MCPServer with a no-op tool; `record_echo`, which takes record_run's
arguments and returns the same Run shape built in memory (record_run minus the store); and
`history_echo`, which answers get_chat_history(last_n_runs=3)'s shape and sizes from memory."""

import uuid
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent
from pydantic import Field

from mcp_server_sessions.server import rendering
from mcp_server_sessions.store import ChatHistoryPage, ChatMessage, NewToolCall, Run, RunMetrics, ToolCall
from mcp_server_sessions.store.clock import utc_now

from .peers import REPLY_CHARS, USER_CHARS, TextGen

server = MCPServer("bare")


@server.tool()
def noop() -> str:
    """Do nothing."""
    return "ok"


@server.tool()
def record_echo(
    session_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:@-]{1,128}$")],
    input: Annotated[str, Field(min_length=1)],
    output: str,
    tool_calls: list[NewToolCall] | None = None,
) -> Run:
    """Answer what record_run answers, storing nothing."""
    run_id, now = str(uuid.uuid4()), utc_now()
    calls = [
        ToolCall(
            tool_call_id=f"call_{uuid.uuid4().hex[:24]}",
            run_id=run_id,
            tool_name=c.tool_name,
            arguments=c.arguments,
            result=c.result,
            is_error=c.is_error,
            created_at=now,
            duration_ms=c.duration_ms,
        )
        for c in tool_calls or []
    ]
    return Run(
        run_id=run_id,
        session_id=session_id,
        status="completed",
        input=input,
        content=output,
        tool_calls=calls,
        metrics=RunMetrics(),
        created_at=now,
    )


_GEN = TextGen(5)
_HISTORY = [
    ChatMessage(role=role, content=_GEN.text(size), run_id=str(uuid.uuid4()), created_at=utc_now())
    for _ in range(3)
    for role, size in (("user", USER_CHARS), ("assistant", REPLY_CHARS))
]


@server.tool()
def history_echo(session_id: str, last_n_runs: int | None = None) -> Annotated[CallToolResult, ChatHistoryPage]:
    """Answer what get_chat_history(last_n_runs=3) answers for realistic runs, reading nothing."""
    page = ChatHistoryPage(session_id=session_id, messages=_HISTORY, next_cursor=None)
    return CallToolResult(
        content=[TextContent(type="text", text=rendering.history(page))],
        structured_content=page.model_dump(mode="json"),
    )


if __name__ == "__main__":
    server.run("stdio")
