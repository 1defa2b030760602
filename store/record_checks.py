"""A SessionRecord checked and serialized before any backend writes it (import_session): the same
input rules as every write, plus what only a record can get wrong (timestamps, totals, runs of
another session or twice, an attachment_id on two runs). Also the arguments of the record reads
(export_sessions, session_record), checked alike on both backends."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import get_args

from .attachments import recorded_attachment
from .errors import InvalidInput
from .limits import MAX_SESSION_TOKENS, check_id, check_name, dump_json
from .models import RunMetrics
from .records import OnConflict, RunRecord, SessionRecord
from .run_inputs import NewMessage, NewRun, NewToolCall, SessionKind
from .sqlite_rows import PreparedRun, prepare_run

RECORD_COLUMNS = (
    "session_id",
    "name",
    "state",
    "metadata",
    "agent",
    "summary",
    "run_count",
    "created_at",
    "updated_at",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "session_type",
    "agent_id",
    "team_id",
    "workflow_id",
)
"""The sessions columns a record holds besides the owner, on both backends, in the order PreparedRecord
serializes them."""


@dataclass(frozen=True)
class PreparedRecord:
    """A record checked and serialized before its write transaction."""

    user_id: str
    session_id: str
    columns: tuple[object, ...]
    """The sessions columns after user_pk and session_id, in RECORD_COLUMNS order."""
    runs: list[tuple[PreparedRun, str, list[str]]]
    """Each run, with its created_at and its tool calls' created_at."""


def prepare_record(record: SessionRecord) -> PreparedRecord:
    """The record checked as the store checks what it writes, and serialized; InvalidInput if it cannot be held."""
    session = record.session
    check_id(session.user_id, "user_id")
    check_id(session.session_id, "session_id")
    totals = session.metrics
    figures = (
        session.run_count,
        totals.input_tokens,
        totals.output_tokens,
        totals.cache_read_tokens,
        totals.cache_write_tokens,
    )
    if not all(0 <= figure <= MAX_SESSION_TOKENS for figure in figures):
        raise InvalidInput(f"Session {session.session_id!r} has a run count or token total out of range.")
    columns = (
        check_name(session.name),
        dump_json(session.state, "state"),
        dump_json(session.metadata, "metadata"),
        dump_json(session.agent.model_dump(), "agent") if session.agent is not None else None,
        dump_json(session.summary.model_dump(), "summary") if session.summary is not None else None,
        session.run_count,
        _timestamp(session.created_at, "created_at"),
        _timestamp(session.updated_at, "updated_at"),
        *figures[1:],
        *SessionKind(session.session_type, session.agent_id, session.team_id, session.workflow_id).checked().columns,
    )
    runs = []
    seen: set[str] = set()
    attachment_ids: set[str] = set()
    for run in record.runs:
        if run.session_id != session.session_id or run.run_id in seen:
            raise InvalidInput(
                f"Run {run.run_id!r} of session {session.session_id!r} names another session or comes twice; "
                "each run of a record must be the session's own, once."
            )
        seen.add(run.run_id)
        call_times = [_timestamp(call.created_at, "tool call created_at") for call in run.tool_calls]
        prepared = prepare_run(_new_run(run))
        for attachment in prepared.attachments:  # within one run prepare_run checks it already
            if attachment.attachment_id in attachment_ids:
                raise InvalidInput(
                    f"Attachment {attachment.attachment_id!r} of session {session.session_id!r} comes with two "
                    "runs; each attachment_id of a record must be its own, so fix the record."
                )
        attachment_ids.update(attachment.attachment_id for attachment in prepared.attachments)
        runs.append((prepared, _timestamp(run.created_at, "run created_at"), call_times))
    return PreparedRecord(session.user_id, session.session_id, columns, runs)


EXPORT_BATCH = 500
"""Sessions an export lists in one read; each is then read whole in a read transaction of its own."""


@dataclass(frozen=True)
class ExportFilter:
    """Which sessions an export reads: those of `user_id` (None: of every user), and of these only
    the ones named in `session_ids` (None: all of them)."""

    user_id: str | None
    session_ids: list[str] | None


def export_filter(user_id: str | None, session_ids: Sequence[str] | None) -> ExportFilter | None:
    """export_sessions' arguments as a filter, or None when no session can match (an id that no session
    can have matches nothing, rather than being refused: ids the user does not have are left out)."""
    if user_id is not None and not _is_id(user_id):
        return None
    if session_ids is None:
        return ExportFilter(user_id, None)
    if isinstance(session_ids, str):  # one id, not its characters
        session_ids = [session_ids]
    possible = sorted({session_id for session_id in session_ids if _is_id(session_id)})
    return ExportFilter(user_id, possible) if possible else None


def _is_id(value: str) -> bool:
    try:
        check_id(value, "id")
    except InvalidInput:
        return False
    return True


def check_on_conflict(on_conflict: OnConflict) -> None:
    if on_conflict not in get_args(OnConflict):
        raise InvalidInput(f"on_conflict must be merge, skip or replace; got {on_conflict!r}.")


def runs_to_read(last_runs: int | None) -> int | None:
    """`last_runs` of a session_record call checked: None (every run) or 0 and up, any number past the
    session's runs meaning all of them."""
    if last_runs is None:
        return None
    if last_runs < 0:
        raise InvalidInput(f"last_runs must be 0 or more, or left out for every run; got {last_runs}.")
    return min(last_runs, MAX_SESSION_TOKENS)


def _new_run(run: RunRecord) -> NewRun:
    """The run as prepare_run takes it. The values are the stored ones, already typed by the record's
    models; the input bounds of NewRun's fields are not applied again, so nothing stored is refused."""
    return NewRun.model_construct(
        run_id=run.run_id,
        input=run.input,
        content=run.content,
        status=run.status,
        messages=[NewMessage.model_construct(**dict(message)) for message in run.messages],
        tool_calls=[
            NewToolCall.model_construct(
                tool_name=call.tool_name,
                arguments=call.arguments,
                result=call.result,
                is_error=call.is_error,
                duration_ms=call.duration_ms,
                tool_call_id=call.tool_call_id,
            )
            for call in run.tool_calls
        ],
        metrics=RunMetrics.model_construct(**dict(run.metrics)),
        error=run.error,
        parent_run_id=run.parent_run_id,
        agent_id=run.agent_id,
        steps=run.steps,
        requirements=run.requirements,
        resume=run.resume,
        attachments=[recorded_attachment(attachment) for attachment in run.attachments],
    )


def _timestamp(text: str, what: str) -> str:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{what} must be an ISO 8601 timestamp; got {text[:40]!r}.") from None
    return text
