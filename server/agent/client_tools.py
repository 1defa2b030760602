"""Client-executed tools: tools a `run` caller declares for the model, which the server never executes.

When the model calls one, the turn pauses and the caller answers with `continue_run`. A declared tool
is checked at input: its name (the Messages API's tool name form, and none of the run's inner tools),
its description and its input schema (a valid JSON Schema for an object, as the API requires), each
bounded, so a tool that the model API would refuse is refused before the run begins.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import jsonschema
from pydantic import BaseModel, ConfigDict, Field

from mcp_server_sessions.store import InvalidInput

from . import inner_tools

if TYPE_CHECKING:
    from anthropic.types import ToolParam

MAX_CLIENT_TOOLS = 32
"""Most client tools one run may declare."""
MAX_CLIENT_TOOL_DESCRIPTION_CHARS = 10_000
MAX_CLIENT_TOOL_SCHEMA_BYTES = 100_000
"""UTF-8 bytes of one client tool's input schema as JSON."""
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
"""The Messages API's form of a tool name."""


class ClientTool(BaseModel):
    """A tool the model may call that the client runs itself: calling it pauses the run."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str = Field(default="", max_length=MAX_CLIENT_TOOL_DESCRIPTION_CHARS)
    input_schema: dict[str, Any] = Field(description="JSON Schema of an object.")


def checked(tools: list[ClientTool]) -> list[ClientTool]:
    """`tools` if the model API can be given them beside the inner tools; InvalidInput naming the first
    problem otherwise."""
    if len(tools) > MAX_CLIENT_TOOLS:
        raise InvalidInput(f"A run may declare at most {MAX_CLIENT_TOOLS} client tools; got {len(tools)}.")
    seen: set[str] = set()
    for index, tool in enumerate(tools):
        if tool.name in inner_tools.NAMES:
            raise InvalidInput(
                f"tools[{index}] is named {tool.name!r}, the name of one of the server's own tools; rename it."
            )
        if tool.name in seen:
            raise InvalidInput(f"tools[{index}] repeats the tool name {tool.name!r}; give each tool its own name.")
        seen.add(tool.name)
        _check_schema(index, tool.input_schema)
    return tools


def _check_schema(index: int, schema: dict[str, Any]) -> None:
    try:
        size = len(json.dumps(schema, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass"))
    except ValueError:
        raise InvalidInput(f"tools[{index}].input_schema must be plain JSON (no NaN or infinity).") from None
    if size > MAX_CLIENT_TOOL_SCHEMA_BYTES:
        raise InvalidInput(
            f"tools[{index}].input_schema is {size:,} bytes, over the limit of {MAX_CLIENT_TOOL_SCHEMA_BYTES:,}."
        )
    if schema.get("type") != "object":
        raise InvalidInput(f'tools[{index}].input_schema must describe an object: set "type": "object" in it.')
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as problem:
        where = "/".join(str(part) for part in problem.path) or "its top level"
        raise InvalidInput(
            f"tools[{index}].input_schema is not a valid JSON Schema (at {where}: {_short(problem.message)}); fix it."
        ) from None


def _short(message: str) -> str:
    line = message.splitlines()[0] if message else "invalid"
    return line if len(line) <= 200 else line[:199] + "…"


def definitions(tools: list[ClientTool]) -> list[ToolParam]:
    """The client tools in the Messages API's format."""
    return [{"name": tool.name, "description": tool.description, "input_schema": tool.input_schema} for tool in tools]
