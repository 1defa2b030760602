"""The tools a model calls inside a run, bound to the run's own session through its owner's handle.

They take no session or user argument, so a model can never reach another user's data: every
call goes through the handle of the run's owner, the same handle the MCP tools use, with the
run's session.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from pydantic import Field, JsonValue, ValidationError

from mcp_server_sessions.store import InvalidInput, NewToolCall, StoreError, UserSessions
from mcp_server_sessions.store.limits import (
    INNER_HISTORY_PAGE,
    INNER_SEARCH_RESULTS,
    MAX_INNER_HISTORY_PAGE,
    MAX_INNER_LAST_N_RUNS,
    MAX_INNER_RESULT_CHARS,
    MAX_INNER_SEARCH_RESULTS,
    MAX_INNER_TOOL_CALL_PAGE,
    MAX_TOOL_NAME_CHARS,
    TOOL_CALL_PAGE,
)

from ..validation import RefusingUnknownArguments, describe_validation

if TYPE_CHECKING:
    from anthropic.types import ToolParam


class _HistoryArgs(RefusingUnknownArguments):
    last_n_runs: int | None = Field(default=None, ge=1, le=MAX_INNER_LAST_N_RUNS, description="Only the last N runs.")
    limit: int = Field(
        default=INNER_HISTORY_PAGE, ge=1, le=MAX_INNER_HISTORY_PAGE, description="Most messages to return."
    )


class _ToolCallArgs(RefusingUnknownArguments):
    limit: int = Field(
        default=TOOL_CALL_PAGE,
        ge=1,
        le=MAX_INNER_TOOL_CALL_PAGE,
        description="Most tool calls to return, newest first.",
    )
    tool_name: str | None = Field(default=None, max_length=MAX_TOOL_NAME_CHARS, description="Only calls of this tool.")


class _SearchArgs(RefusingUnknownArguments):
    query: str = Field(min_length=1, description="Words to look for in earlier sessions.")
    limit: int = Field(default=INNER_SEARCH_RESULTS, ge=1, le=MAX_INNER_SEARCH_RESULTS, description="Most results.")


class _StateArgs(RefusingUnknownArguments):
    session_state_updates: dict[str, object] = Field(
        description="Top-level keys to set in the session state (merged into it)."
    )


_TOOLS: dict[str, tuple[str, type[RefusingUnknownArguments]]] = {
    "get_chat_history": ("Read earlier messages of this session, oldest first.", _HistoryArgs),
    "get_tool_call_history": ("Read earlier tool calls of this session, newest first.", _ToolCallArgs),
    "search_previous_sessions": (
        "Full-text search over the user's other sessions; returns snippets with session ids.",
        _SearchArgs,
    ),
    "update_session_state": ("Merge keys into this session's state, which you see in the system prompt.", _StateArgs),
}
NAMES = frozenset(_TOOLS)
"""The inner tools' names, which a client tool may not take."""


@cache
def definitions() -> list[ToolParam]:
    """The tools in the Messages API's format (built once: schema generation is not cheap)."""
    return [
        {"name": name, "description": description, "input_schema": model.model_json_schema()}
        for name, (description, model) in _TOOLS.items()
    ]


@dataclass(frozen=True)
class InnerTools:
    """The inner tools of one run: its owner's handle and its session."""

    sessions: UserSessions
    session_id: str

    async def call(self, name: str, arguments: object) -> tuple[str, NewToolCall]:
        """Run one tool call (`arguments`: the JSON the model sent); its result text for the model and its
        record for the run."""
        started = time.perf_counter()
        is_error = False
        result: JsonValue
        try:
            result = await self._dispatch(name, arguments)
        except ValidationError as exc:  # the wording MCP clients get for a refused argument
            is_error, result = True, describe_validation(name, exc)
        except (StoreError, ValueError) as exc:
            is_error, result = True, str(exc)
        text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
        if len(text) > MAX_INNER_RESULT_CHARS:
            text = result = text[:MAX_INNER_RESULT_CHARS] + " …(cut: ask for fewer items)"
        record = NewToolCall(
            tool_name=name,
            arguments=arguments if isinstance(arguments, dict) else {"input": arguments},
            result=result,
            is_error=is_error,
            duration_ms=round((time.perf_counter() - started) * 1000, 3),
        )
        return text, record

    async def _dispatch(self, name: str, arguments: object) -> JsonValue:
        if name not in _TOOLS:
            raise InvalidInput(f"There is no tool named {name!r}; use one of {', '.join(_TOOLS)}.")
        args = _TOOLS[name][1].model_validate(arguments)
        if isinstance(args, _HistoryArgs):
            page = await self.sessions.get_chat_history(self.session_id, last_n_runs=args.last_n_runs, limit=args.limit)
            return [m.model_dump() for m in page.messages]
        if isinstance(args, _ToolCallArgs):
            calls = await self.sessions.get_tool_calls(self.session_id, limit=args.limit, tool_name=args.tool_name)
            return [c.model_dump() for c in calls.tool_calls]
        if isinstance(args, _SearchArgs):
            hits = await self.sessions.search(args.query, exclude_session_id=self.session_id, limit=args.limit)
            return [h.model_dump() for h in hits]
        assert isinstance(args, _StateArgs)
        session = await self.sessions.update_session(self.session_id, state=args.session_state_updates)
        return {"state": session.state}
