"""What the store's writes take: a run as a client records it or a turn produced it (NewRun, with its
messages and tool calls), and the kind of session a call names (SessionKind). Checked at input, then
committed whole by `append_run`.
"""

import json
import uuid
from dataclasses import dataclass
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field

from .attachments import NewAttachment
from .errors import InvalidInput
from .limits import MAX_ID_CHARS, MAX_TOOL_NAME_CHARS, TOOL_CALL_LINE_CHARS, check_id
from .models import (
    JsonValue,
    Milliseconds,
    Requirement,
    Role,
    RunMetrics,
    RunStatus,
    SessionType,
    WorkflowStep,
    json_text,
)


class NewToolCall(BaseModel):
    """A tool call as a client records it."""

    model_config = ConfigDict(extra="forbid")

    tool_name: str = Field(min_length=1, max_length=MAX_TOOL_NAME_CHARS, description="The tool's name.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Its arguments.")
    result: JsonValue = Field(default=None, description="What it returned (any JSON).")
    is_error: bool = Field(default=False, description="True if it failed.")
    duration_ms: Milliseconds | None = Field(default=None, description="How long it took.")
    tool_call_id: str | None = Field(
        default=None, max_length=MAX_ID_CHARS, description="The host's id for the call, if any."
    )

    def history_line(self) -> str:
        """The call as one line of chat history, cut to TOOL_CALL_LINE_CHARS: the call itself is stored whole."""
        result = json_text(self.result)
        arguments = json.dumps(self.arguments, ensure_ascii=False)
        line = f"{self.tool_name}({arguments}) -> {'error: ' if self.is_error else ''}{result}"
        return line if len(line) <= TOOL_CALL_LINE_CHARS else line[: TOOL_CALL_LINE_CHARS - 1] + "…"


@dataclass(frozen=True)
class SessionKind:
    """A session's type and the agent, team and workflow it belongs to, as a call names them (None: not
    named). Starting a session sets them; listing sessions filters by those named."""

    session_type: SessionType | None = None
    agent_id: str | None = None
    team_id: str | None = None
    workflow_id: str | None = None

    def checked(self) -> "SessionKind":
        """The same kind, its type and ids checked; InvalidInput otherwise."""
        if self.session_type is not None and self.session_type not in get_args(SessionType):
            raise InvalidInput(f"session_type must be agent, team or workflow; got {self.session_type!r}.")
        for column, value in self.filters[1 if self.session_type else 0 :]:
            check_id(value, column)
        return self

    @property
    def columns(self) -> tuple[str | None, ...]:
        """session_type, agent_id, team_id and workflow_id as a new session stores them."""
        return (self.session_type or "agent", self.agent_id, self.team_id, self.workflow_id)

    @property
    def filters(self) -> list[tuple[str, str]]:
        """The (column, value) pairs named, in column order."""
        named = zip(
            ("session_type", "agent_id", "team_id", "workflow_id"),
            (self.session_type, self.agent_id, self.team_id, self.workflow_id),
            strict=True,
        )
        return [(column, value) for column, value in named if value is not None]


class NewMessage(BaseModel):
    """One message of a run as it is stored; `blocks` keeps the model's content blocks for replay."""

    role: Role
    content: str
    blocks: list[dict[str, Any]] | None = None
    is_tool: bool = False


class NewRun(BaseModel):
    """Everything a run writes, committed in one transaction."""

    run_id: str
    input: str
    content: str | None
    status: RunStatus = "completed"
    messages: list[NewMessage]
    tool_calls: list[NewToolCall] = Field(default_factory=list)
    metrics: RunMetrics = Field(default_factory=RunMetrics)
    error: str | None = None
    parent_run_id: str | None = None
    agent_id: str | None = None
    steps: list[WorkflowStep] = Field(default_factory=list)
    requirements: list[Requirement] = Field(default_factory=list)
    resume: dict[str, Any] | None = None
    """A paused run's private continuation state: stored, carried by records, never returned by tools."""
    attachments: list[NewAttachment] = Field(default_factory=list)
    """Media sent with the input, written with the run (a continued run adds none)."""

    @classmethod
    def recorded(
        cls,
        input: str,
        output: str,
        tool_calls: list[NewToolCall] | None = None,
        metrics: RunMetrics | None = None,
        run_id: str | None = None,
        *,
        steps: list[WorkflowStep] | None = None,
        parent_run_id: str | None = None,
        agent_id: str | None = None,
    ) -> "NewRun":
        """A turn a client ran itself: the user's message, a tool message per call and per workflow step
        (so a search finds a step's words and history shows them only with the tool messages), the
        assistant's reply."""
        calls, steps = tool_calls or [], steps or []
        messages = [NewMessage(role="user", content=input)]
        messages += [NewMessage(role="tool", content=call.history_line(), is_tool=True) for call in calls]
        messages += [NewMessage(role="tool", content=step.history_line(), is_tool=True) for step in steps]
        messages.append(NewMessage(role="assistant", content=output))
        return cls(
            run_id=run_id or str(uuid.uuid4()),
            input=input,
            content=output,
            messages=messages,
            tool_calls=calls,
            metrics=metrics or RunMetrics(),
            steps=steps,
            parent_run_id=parent_run_id,
            agent_id=agent_id,
        )
