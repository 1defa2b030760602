"""A paused turn: what it waits for (its requirements) and what continuing it needs (its resume state).

The resume state is stored in the run's row, not kept in any server's memory, so a paused run
outlives the server that paused it and any server on the same database can continue it: the model,
the output cap, the system blocks and client tools the turn was given, the conversation so far (with
the history context the run started from), and the results of the server's own tool uses of the
reply that paused, which go back to the model together with the client's results.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mcp_server_sessions.store import InvalidInput, NewToolCall
from mcp_server_sessions.store.limits import MAX_ID_CHARS, MAX_JSON_BYTES, MAX_TOOL_CALLS_PER_RUN, dump_json
from mcp_server_sessions.store.models import JsonValue, Requirement

from .client_tools import ClientTool
from .prompt import Utterance

if TYPE_CHECKING:
    from anthropic.types import ContentBlockParam, TextBlockParam, ToolResultBlockParam, ToolUseBlockParam


class ToolResult(BaseModel):
    """A client's answer to one requirement of a paused run."""

    model_config = ConfigDict(extra="forbid")

    tool_call_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    result: JsonValue = Field(description="The tool's output (text or JSON).")
    is_error: bool = Field(default=False, description="True if the tool failed.")


class StoredUtterance(BaseModel):
    role: Literal["user", "assistant"]
    content: list[dict[str, Any]]


class ResumeState(BaseModel):
    """What a paused run's `resume` column holds (read back strictly: an unknown version is refused)."""

    version: Literal[1] = 1
    model: str
    max_tokens: int
    system: list[dict[str, Any]]
    client_tools: list[ClientTool]
    conversation: list[StoredUtterance]
    """Everything the model has seen, up to and including the reply that paused."""
    pending_results: list[dict[str, Any]]
    """tool_result blocks of the server's own tool uses in that reply."""
    tool_calls: int
    """Tool calls the run holds, the client's it waits for included (bounded per run)."""

    def system_blocks(self) -> list[TextBlockParam]:
        return [cast("TextBlockParam", dict(block)) for block in self.system]

    def utterances(self) -> list[Utterance]:
        return [
            Utterance(turn.role, [cast("ContentBlockParam", dict(block)) for block in turn.content])
            for turn in self.conversation
        ]


@dataclass(frozen=True)
class Pause:
    """Why a turn stops: the client tool uses of its last reply, and its own tool uses' results."""

    waiting: list[ToolUseBlockParam]
    results: list[ToolResultBlockParam]

    def requirements(self) -> list[Requirement]:
        return [
            Requirement(tool_call_id=use["id"], tool_name=use["name"], arguments=_arguments(use["input"]))
            for use in self.waiting
        ]


def resume_state(
    *,
    model: str,
    max_tokens: int,
    system: list[TextBlockParam],
    client_tools: list[ClientTool],
    conversation: list[Utterance],
    pause: Pause,
    tool_calls: int,
) -> dict[str, Any]:
    """The resume column of a turn that pauses now, as JSON."""
    state = ResumeState(
        model=model,
        max_tokens=max_tokens,
        system=[dict(block) for block in system],
        client_tools=client_tools,
        conversation=[StoredUtterance(role=u.role, content=[dict(b) for b in u.content]) for u in conversation],
        pending_results=[dict(result) for result in pause.results],
        tool_calls=tool_calls,
    )
    return state.model_dump(mode="json")


def read_resume(run_id: str, resume: dict[str, Any] | None) -> ResumeState:
    """The stored resume state of a paused run; InvalidInput when it cannot be read (another version wrote it)."""
    try:
        return ResumeState.model_validate(resume)
    except ValidationError:
        raise InvalidInput(
            f"Run {run_id!r} was paused by a server version whose saved state this one cannot read; "
            "start a new run instead."
        ) from None


@dataclass(frozen=True)
class Answered:
    """The results of the reply that paused, in the order of its tool uses, with their tools' names;
    and the client's calls as the run stores them."""

    results: list[ToolResultBlockParam]
    tool_names: list[str]
    calls: list[NewToolCall]


def client_answers(state: ResumeState, requirements: list[Requirement], answers: list[ToolResult]) -> Answered:
    """The server's own results kept from the pause and the client's from `answers` (which the store
    has checked answer exactly `requirements`)."""
    by_id = {answer.tool_call_id: answer for answer in answers}
    pending = {str(block["tool_use_id"]): cast("ToolResultBlockParam", dict(block)) for block in state.pending_results}
    calls = []
    for requirement in requirements:
        answer = by_id[requirement.tool_call_id]
        result = answer.result if isinstance(answer.result, str) else json.dumps(answer.result, ensure_ascii=False)
        pending[requirement.tool_call_id] = {
            "type": "tool_result",
            "tool_use_id": requirement.tool_call_id,
            "content": result,
            "is_error": answer.is_error,
        }
        calls.append(
            NewToolCall(
                tool_name=requirement.tool_name,
                arguments=requirement.arguments,
                result=answer.result,
                is_error=answer.is_error,
                tool_call_id=requirement.tool_call_id,
            )
        )
    uses = [b for b in state.conversation[-1].content if b.get("type") == "tool_use"] if state.conversation else []
    answered = [use for use in uses if str(use["id"]) in pending]
    return Answered(
        results=[pending[str(use["id"])] for use in answered],
        tool_names=[str(use["name"]) for use in answered],
        calls=calls,
    )


def check_answers(answers: list[ToolResult]) -> list[str]:
    """The answers' tool_call_ids; InvalidInput when there are too many or a result is not storable JSON."""
    if len(answers) > MAX_TOOL_CALLS_PER_RUN:
        raise InvalidInput(f"tool_results may hold at most {MAX_TOOL_CALLS_PER_RUN} results; got {len(answers)}.")
    for index, answer in enumerate(answers):
        dump_json(answer.result, f"tool_results[{index}].result", MAX_JSON_BYTES)
    return [answer.tool_call_id for answer in answers]


def _arguments(value: object) -> dict[str, Any]:
    return cast("dict[str, Any]", value) if isinstance(value, dict) else {"input": value}
