"""The shapes of the product contract (../shared/SPEC.md section 2); what writes take is in run_inputs.py.

The store returns these models and the MCP tools return them unchanged, so a field name
lives in exactly one place.
"""

import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from .attachments import AttachmentRef
from .limits import (
    HISTORY_RUNS,
    MAX_DURATION_MS,
    MAX_HISTORY_RUNS,
    MAX_MODEL_CHARS,
    MAX_OUTPUT_TOKENS,
    MAX_STEP_NAME_CHARS,
    MAX_SYSTEM_CHARS,
    MAX_TOKENS,
    TOOL_CALL_LINE_CHARS,
)

RunStatus = Literal["running", "completed", "paused", "cancelled", "error"]
Role = Literal["user", "assistant", "tool"]
SessionType = Literal["agent", "team", "workflow"]
StepStatus = Literal["completed", "error", "skipped", "cancelled", "paused", "running"]

TokenCount = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
Milliseconds = Annotated[float, Field(ge=0, le=MAX_DURATION_MS, allow_inf_nan=False)]
JsonValue = Annotated[Any, WithJsonSchema({"type": ["string", "number", "boolean", "object", "array", "null"]})]
"""Any JSON value, with a schema that still names a type (strict schema checkers want one); number covers integers."""


class AgentConfig(BaseModel):
    """How the server runs Claude turns in a session; stored with it, overridable per run."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, max_length=MAX_MODEL_CHARS, description="Claude model id.")
    system: str | None = Field(default=None, max_length=MAX_SYSTEM_CHARS, description="System prompt.")
    num_history_runs: int = Field(
        default=HISTORY_RUNS, ge=0, le=MAX_HISTORY_RUNS, description="Earlier runs in context."
    )
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_OUTPUT_TOKENS, description="Output token cap per call.")
    auto_summary: bool = Field(default=False, description="Refresh the summary after each run.")


class StoredAgentConfig(BaseModel):
    """An AgentConfig as read back: no input bounds, unknown keys dropped, so a row an older version wrote reads."""

    model_config = ConfigDict(from_attributes=True)  # an AgentConfig converts to it

    model: str | None = None
    system: str | None = None
    num_history_runs: int = 3
    max_tokens: int | None = None
    auto_summary: bool = False


class SessionSummary(BaseModel):
    summary: str
    topics: list[str]
    run_count: int = Field(description="Runs the summary covers.")
    updated_at: str


class SessionMetrics(BaseModel):
    """Totals over the session's runs (tokens as reported by the model or the recording client)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


class Session(BaseModel):
    session_id: str
    user_id: str
    name: str | None
    state: dict[str, Any]
    metadata: dict[str, Any]
    agent: StoredAgentConfig | None
    summary: SessionSummary | None
    run_count: int
    created_at: str
    updated_at: str
    metrics: SessionMetrics = Field(default_factory=SessionMetrics, description="Token totals of the runs.")
    session_type: SessionType = Field(default="agent", description="What the session holds: agent, team or workflow.")
    agent_id: str | None = Field(default=None, description="The agent the session belongs to, if any.")
    team_id: str | None = Field(default=None, description="The team the session belongs to, if any.")
    workflow_id: str | None = Field(default=None, description="The workflow the session belongs to, if any.")
    paused_run_ids: list[str] = Field(
        default_factory=list, description="The session's paused runs, oldest first (at most the first 20)."
    )


class RunMetrics(BaseModel):
    """Token and timing figures of one run; every field is optional when a client records its own run."""

    model_config = ConfigDict(extra="forbid")

    input_tokens: TokenCount | None = None
    output_tokens: TokenCount | None = None
    total_tokens: TokenCount | None = None
    cache_read_tokens: TokenCount | None = None
    cache_write_tokens: TokenCount | None = None
    duration_ms: Milliseconds | None = None
    time_to_first_token_ms: Milliseconds | None = None
    model: str | None = Field(default=None, max_length=MAX_MODEL_CHARS)


class StoredRunMetrics(BaseModel):
    """RunMetrics as read back: no input bounds, unknown keys dropped, so a row an older version wrote reads."""

    model_config = ConfigDict(from_attributes=True)  # a RunMetrics converts to it

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    duration_ms: float | None = None
    time_to_first_token_ms: float | None = None
    model: str | None = None


class ToolCall(BaseModel):
    tool_call_id: str
    run_id: str
    tool_name: str
    arguments: dict[str, Any]
    result: JsonValue
    is_error: bool
    created_at: str
    duration_ms: float | None


class WorkflowStep(BaseModel):
    """One step of a workflow run, as the workflow reported it."""

    name: str
    input: JsonValue = None
    output: JsonValue = None
    status: StepStatus = "completed"
    duration_ms: float | None = None

    def history_line(self) -> str:
        """The step as one line of chat history (a tool-like message: hidden unless tool messages are
        asked for, and searchable), cut to TOOL_CALL_LINE_CHARS: the step itself is stored whole."""
        line = f"step {self.name} ({self.status}): {json_text(self.input)} -> {json_text(self.output)}"
        return line if len(line) <= TOOL_CALL_LINE_CHARS else line[: TOOL_CALL_LINE_CHARS - 1] + "…"


class NewWorkflowStep(WorkflowStep):
    """A workflow step as a client records it, with the input bounds."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_STEP_NAME_CHARS, description="The step's name.")
    input: JsonValue = Field(default=None, description="What the step was given (any JSON).")
    output: JsonValue = Field(default=None, description="What the step produced (any JSON).")
    status: StepStatus = Field(default="completed", description="How the step ended.")
    duration_ms: Milliseconds | None = Field(default=None, description="How long it took.")


class Requirement(BaseModel):
    """A call of a client-executed tool that a paused run waits for: answered with continue_run."""

    tool_call_id: str
    tool_name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Run(BaseModel):
    run_id: str
    session_id: str
    status: RunStatus
    input: str
    content: str | None
    tool_calls: list[ToolCall]
    metrics: StoredRunMetrics
    created_at: str
    error: str | None = Field(default=None, description="Why the run ended in error or was cut short.")
    parent_run_id: str | None = Field(default=None, description="The team leader's run this member run served.")
    agent_id: str | None = Field(default=None, description="The agent that ran it, if recorded.")
    steps: list[WorkflowStep] = Field(default_factory=list, description="A workflow run's steps, in order.")
    requirements: list[Requirement] = Field(
        default_factory=list, description="A paused run's client tool calls waiting for results."
    )
    attachments: Sequence[AttachmentRef] = Field(
        default_factory=list, description="The input's media (bytes at each uri)."
    )


class ChatMessage(BaseModel):
    role: Role
    content: str
    run_id: str
    created_at: str
    attachments: list[AttachmentRef] = Field(
        default_factory=list, description="A user message's media (bytes at each uri)."
    )


class SearchHit(BaseModel):
    session_id: str
    session_name: str | None
    run_id: str
    role: Role
    snippet: str
    score: float = Field(description="Relevance: higher is better.")
    created_at: str


class SessionPage(BaseModel):
    sessions: list[Session]
    next_cursor: str | None
    total: int


class ChatHistoryPage(BaseModel):
    session_id: str
    messages: list[ChatMessage]
    next_cursor: str | None


class ToolCallPage(BaseModel):
    session_id: str
    tool_calls: list[ToolCall]
    next_cursor: str | None


def json_text(value: Any) -> str:
    """A JSON value as one line of text: a string as it is, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class ContextMessage(BaseModel):
    """A stored message as it goes back into a model's context."""

    role: Role
    content: str
    blocks: list[dict[str, Any]] | None


class RunTranscript(BaseModel):
    """A finished run as a summary sees it."""

    run_id: str
    input: str
    content: str | None
    position: int = Field(description="1-based place of the run among all runs of the session.")
