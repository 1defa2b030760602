"""A whole session as one value, every stored field included: what moves between stores (`copy`)
and, later, what export and import write and read.

A record holds what the store holds: the session with its state, metadata, agent, summary, token
totals and timestamps, and each run with its status, metrics, error, timestamp, messages (with
their content blocks) and tool calls.
"""

from typing import Any

from pydantic import BaseModel

from .models import Role, Run, Session


class RecordedMessage(BaseModel):
    role: Role
    content: str
    blocks: list[dict[str, Any]] | None = None
    is_tool: bool = False


class RunRecord(Run):
    messages: list[RecordedMessage]


class SessionRecord(BaseModel):
    session: Session
    runs: list[RunRecord]


class StoreCounts(BaseModel):
    """What a store holds, counted: a copy is verified by these."""

    users: int
    sessions: int
    runs: int
    messages: int
    tool_calls: int
