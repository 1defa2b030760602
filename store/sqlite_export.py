"""Whole sessions in and out of a SqliteStore, for operator tools such as `copy`: every session of
every user read as a SessionRecord, a record written back as it is, and what the file holds, counted.

Reading goes one session per read transaction, in sessions.pk order, so a file of any size is read a
session at a time and each record is one consistent snapshot. Sessions being purged (sqlite_purge.py)
are neither exported nor counted: they are deleted already. Writing a record is one write transaction
that inserts its runs through sqlite_runs.write_run, as `append_run` does, so messages and tool calls
enter the search index the same way; only the timestamps are the record's rather than the clock's.
"""

import functools
import json
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby

from .errors import InvalidInput
from .limits import MAX_SESSION_TOKENS, check_id, check_name, dump_json
from .models import NewMessage, NewRun, NewToolCall, RunMetrics
from .records import RecordedMessage, RunRecord, SessionRecord, StoreCounts
from .sqlite_connection import Connection, read, write
from .sqlite_identity import UserDirectory, find_session
from .sqlite_rows import PreparedRun, prepare_run, row_to_run, row_to_session, row_to_tool_call
from .sqlite_runs import write_run

_LIVE = "session_pk NOT IN (SELECT session_pk FROM session_purges)"
"""Rows of sessions not being purged (a deleted session's rows stay until purged)."""

_SESSION_COLUMNS = (
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
)
"""The sessions columns a record sets, besides the owner."""
_SELECT_SESSION = ", ".join(f"s.{column}" for column in _SESSION_COLUMNS)
_SET_SESSION = ", ".join(f"{column} = ?" for column in _SESSION_COLUMNS[1:])
_INSERT_SESSION = (
    f"INSERT INTO sessions (user_pk, {', '.join(_SESSION_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in range(len(_SESSION_COLUMNS) + 1))})"
)


# -- export -------------------------------------------------------------------------------


async def export_sessions(reader: Connection) -> AsyncIterator[SessionRecord]:
    """Every session not being purged, whole, in sessions.pk order, each read in one read transaction."""
    after = 0
    while True:
        found = await reader.run(read(functools.partial(_next_record, after=after)))
        if found is None:
            return
        after, record = found
        yield record


def _next_record(raw: sqlite3.Connection, *, after: int) -> tuple[int, SessionRecord] | None:
    """The first session after pk `after`, with its pk."""
    row = raw.execute(
        f"SELECT s.pk, u.user_id, {_SELECT_SESSION} "
        "FROM sessions s JOIN users u ON u.pk = s.user_pk "
        "WHERE s.pk > ? AND s.pk NOT IN (SELECT session_pk FROM session_purges) ORDER BY s.pk LIMIT 1",
        (after,),
    ).fetchone()
    if row is None:
        return None
    session_pk = row["pk"]
    session = row_to_session(row, row["user_id"])
    return session_pk, SessionRecord(session=session, runs=_runs(raw, session_pk, session.session_id))


def _runs(raw: sqlite3.Connection, session_pk: int, session_id: str) -> list[RunRecord]:
    messages = {
        run_pk: [_message(row) for row in rows]
        for run_pk, rows in groupby(
            raw.execute("SELECT * FROM messages WHERE session_pk = ? ORDER BY run_pk, pk", (session_pk,)),
            key=lambda row: row["run_pk"],
        )
    }
    calls = {
        run_pk: [row_to_tool_call(row) for row in rows]
        for run_pk, rows in groupby(
            raw.execute(
                "SELECT t.*, r.run_id FROM tool_calls t JOIN runs r ON r.pk = t.run_pk "
                "WHERE t.session_pk = ? ORDER BY t.run_pk, t.pk",
                (session_pk,),
            ),
            key=lambda row: row["run_pk"],
        )
    }
    records = []
    for row in raw.execute("SELECT * FROM runs WHERE session_pk = ? ORDER BY pk", (session_pk,)):
        run = row_to_run(row, session_id, calls.get(row["pk"], []))
        records.append(RunRecord(**dict(run), messages=messages.get(row["pk"], [])))
    return records


def _message(row: sqlite3.Row) -> RecordedMessage:
    blocks = json.loads(row["blocks"]) if row["blocks"] is not None else None
    return RecordedMessage(role=row["role"], content=row["content"], blocks=blocks, is_tool=bool(row["is_tool"]))


async def counts(reader: Connection) -> StoreCounts:
    """Users owning a session, sessions, runs, messages and tool calls, leaving out sessions being purged."""
    return await reader.run(read(_counts))


def _counts(raw: sqlite3.Connection) -> StoreCounts:
    users, session_count = raw.execute(
        "SELECT count(DISTINCT user_pk), count(*) FROM sessions WHERE pk NOT IN (SELECT session_pk FROM session_purges)"
    ).fetchone()
    rows = {
        table: raw.execute(f"SELECT count(*) FROM {table} WHERE {_LIVE}").fetchone()[0]
        for table in ("runs", "messages", "tool_calls")
    }
    return StoreCounts(
        users=users, sessions=session_count, runs=rows["runs"], messages=rows["messages"], tool_calls=rows["tool_calls"]
    )


# -- import -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PreparedRecord:
    """A record checked and serialized before its write transaction."""

    user_id: str
    session_id: str
    columns: tuple[object, ...]
    """The sessions columns after user_pk and session_id, in _SESSION_COLUMNS order."""
    runs: list[tuple[PreparedRun, str, list[str]]]
    """Each run, with its created_at and its tool calls' created_at."""


async def import_session(writer: Connection, users: UserDirectory, record: SessionRecord) -> int:
    """Write the record's session (its fields set to the record's) and the runs it lacks, in one
    write transaction; how many runs were added."""
    prepared = _prepare(record)
    return await writer.run(write(lambda raw: _import(raw, users, prepared)))


def _prepare(record: SessionRecord) -> _PreparedRecord:
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
    )
    runs = []
    seen: set[str] = set()
    for run in record.runs:
        if run.session_id != session.session_id or run.run_id in seen:
            raise InvalidInput(
                f"Run {run.run_id!r} of session {session.session_id!r} names another session or comes twice; "
                "each run of a record must be the session's own, once."
            )
        seen.add(run.run_id)
        call_times = [_timestamp(call.created_at, "tool call created_at") for call in run.tool_calls]
        runs.append((prepare_run(_new_run(run)), _timestamp(run.created_at, "run created_at"), call_times))
    return _PreparedRecord(session.user_id, session.session_id, columns, runs)


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
    )


def _timestamp(text: str, what: str) -> str:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{what} must be an ISO 8601 timestamp; got {text[:40]!r}.") from None
    return text


def _import(raw: sqlite3.Connection, users: UserDirectory, record: _PreparedRecord) -> int:
    user_pk = users.created_user_pk(raw, record.user_id)
    session_pk = find_session(raw, user_pk, record.session_id)
    if session_pk is None:
        session_pk = raw.execute(_INSERT_SESSION, (user_pk, record.session_id, *record.columns)).lastrowid
        assert session_pk is not None
    else:
        raw.execute(f"UPDATE sessions SET {_SET_SESSION} WHERE pk = ?", (*record.columns, session_pk))
    held = {row[0] for row in raw.execute("SELECT run_id FROM runs WHERE session_pk = ?", (session_pk,))}
    added = 0
    for run, created_at, call_times in record.runs:
        if run.run_id in held:
            continue
        run_pk = write_run(raw, user_pk, session_pk, run, None, created_at)
        call_pks = raw.execute("SELECT pk FROM tool_calls WHERE run_pk = ? ORDER BY pk", (run_pk,)).fetchall()
        for (call_pk,), call_time in zip(call_pks, call_times, strict=True):
            if call_time != created_at:  # write_run stamps a run's tool calls with the run's time
                raw.execute("UPDATE tool_calls SET created_at = ? WHERE pk = ?", (call_time, call_pk))
        added += 1
    return added
