"""The baselines: a bare MCPServer with a no-op tool, and `record_echo`, which takes record_run's
arguments and returns the same Run shape built in memory: record_run minus the store."""

import uuid
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from pydantic import Field

from mcp_server_sessions.store import NewToolCall, Run, RunMetrics, ToolCall
from mcp_server_sessions.store.clock import utc_now

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


if __name__ == "__main__":
    server.run("stdio")
