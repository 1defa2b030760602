"""The one error boundary: every failure reaches the client as one sentence it can act on.

Expected failures (bad input, not found, store busy, model errors) become the SDK's
`ToolError` with our sentence in `expected_failures`, which wraps every tool at registration.
The SDK frames each `ToolError` as "Error executing tool <name>: ..." and reports bad
arguments with pydantic's multi-line text; `SessionsServer.call_tool` gives the client the
sentence alone, and an unexpected failure a generic line whose cause is logged to stderr,
never sent.
"""

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from pydantic import ValidationError

from mcp_server_sessions.store import StoreError

from .agent.gateway import ModelError
from .validation import describe_validation

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def expected_failures(tool: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """`tool` with the store's and the model's failures raised as ToolError with their sentence."""

    @functools.wraps(tool)
    async def boundary(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await tool(*args, **kwargs)
        except (StoreError, ModelError) as exc:
            raise ToolError(str(exc)) from exc

    return boundary


class SessionsServer(MCPServer[Any]):
    """MCPServer whose tool errors reach the client as our sentence alone."""

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            raise ToolError(sentence(name, exc)) from exc.__cause__


def sentence(tool: str, exc: ToolError) -> str:
    cause = exc.__cause__
    if isinstance(exc, UnexpectedToolError):  # from the tool body, even a ValidationError of a stored row
        logger.error("tool %s failed unexpectedly", tool, exc_info=cause)
        return f"The {tool} tool failed unexpectedly; the server logged the cause and is still serving, so retry."
    if isinstance(cause, ToolError):  # raised by expected_failures: the SDK added its frame
        return str(cause)
    if isinstance(cause, ValidationError):  # only the arguments' validation arrives as a plain ToolError
        return describe_validation(tool, cause)
    return str(exc)
