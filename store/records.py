"""A whole session as one value, every stored field included: what moves between stores (`copy`),
what `export` writes and `import` reads, and what `show` and the `session://` resource render.

A record holds what the store holds: the session with its state, metadata, agent, summary, token
totals and timestamps, and each run with its status, metrics, error, timestamp, messages (with
their content blocks), tool calls and attachments (their bytes in base64).
"""

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from .attachments import AttachmentRecord
from .models import Role, Run, Session


class RecordedMessage(BaseModel):
    role: Role
    content: str
    blocks: list[dict[str, Any]] | None = None
    is_tool: bool = False


class RunRecord(Run):
    messages: list[RecordedMessage]
    attachments: list[AttachmentRecord] = Field(default_factory=list)
    """Its media with their bytes in base64, so export -> import -> export gives the same bytes."""
    resume: dict[str, Any] | None = None
    """A paused run's continuation state, so a paused run survives export, import and copy."""


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


OnConflict = Literal["merge", "skip", "replace"]
"""What importing a record does to a session the user already has with that id: `merge` sets the
session's fields to the record's and adds the runs it lacks (a second import adds nothing; a grown
transcript adds its new turns); `skip` leaves it as it is; `replace` makes it exactly the record
(its runs not in the record are deleted)."""


@dataclass(frozen=True)
class ImportedSession:
    """What importing one record did."""

    outcome: Literal["created", "merged", "skipped", "replaced"]
    runs_added: int
