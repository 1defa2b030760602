"""`import --from agno`: the sessions of an Agno `SqliteDb` file (Agno 2.x and 3.x; agent, team and
workflow sessions) as SessionRecords, one session at a time (agno_tables.py reads the file, agno_runs.py maps each run).

What goes where:
- A session keeps its id and user (the default user when Agno kept none); `session_data.session_name`
  is its name, `session_data.session_state` its state, and Agno's metadata its metadata, plus
  `imported_from`: the source, the session type, the agent, team or workflow id and name, and the
  original session or user id when it had to be mapped to a valid id. Agno's summary is its summary,
  covering the runs begun by the summary's time.
- Each run of the session itself (not a team member's or a workflow step's) is a run: its input, its
  answer, status, metrics, tool calls and the messages of the turn (system prompts and the earlier
  messages Agno repeats from history left out).
- A team member's run and a workflow step's agent or team run are folded into the run they served:
  their tool calls join its tool calls (in time order) and their tokens its token counts. Each workflow
  step also becomes a `workflow_step` tool call whose result is the step's output.
"""

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mcp_server_sessions.store.limits import MAX_JSON_BYTES
from mcp_server_sessions.store.models import Session, SessionType
from mcp_server_sessions.store.records import SessionRecord

from . import SourceError
from .agno_runs import agno_turn, run_key
from .agno_tables import open_database, run_dicts, session_rows, session_tables
from .fitting import (
    as_list,
    as_object,
    fitted_id,
    fitted_name,
    fitted_text,
    from_epoch,
    from_iso,
    json_size,
    plain_json,
)
from .turns import fitted_object, runs_of, session_record

_KINDS: dict[object, SessionType] = {"agent": "agent", "team": "team", "workflow": "workflow"}
_CHILD_RUNS = ("member_responses", "step_executor_runs", "workflow_agent_run")
_SUMMARY_BYTES = MAX_JSON_BYTES // 2
_EPOCH = "1970-01-01T00:00:00.000000Z"


def agno_records(path: Path, default_user: str) -> Iterator[SessionRecord]:
    """Every session of the Agno file at `path`, oldest first; sessions Agno kept without a user go to
    `default_user`. SourceError if the file is not an Agno SqliteDb file or cannot be read."""
    connection = open_database(path)
    try:
        for table in session_tables(connection, path):
            for row in session_rows(connection, table):
                yield _record(row, run_dicts(connection, table, row), default_user)
    except sqlite3.Error:
        raise SourceError(
            f"{path} could not be read to the end (it may be damaged, or locked by a writer); "
            "copy the file while Agno is stopped and import the copy."
        ) from None
    finally:
        connection.close()


def _record(row: dict[str, Any], runs: list[dict[str, Any]], default_user: str) -> SessionRecord:
    raw_session_id = str(row.get("session_id"))
    session_id = fitted_id(raw_session_id, "session")
    origin: dict[str, Any] = {"source": "agno"}
    kind = _KINDS.get(row.get("session_type"), "agent")
    if kind != row.get("session_type"):
        origin["session_type"] = row.get("session_type")
    owners: dict[str, str | None] = {}
    for owner in ("agent", "team", "workflow"):
        data, raw = as_object(row.get(f"{owner}_data")), row.get(f"{owner}_id")
        owners[owner] = fitted_id(str(raw), owner) if raw is not None else None
        if raw is not None and owners[owner] != raw:
            origin[f"{owner}_id"] = raw
        if isinstance(data.get("name"), str):
            origin[f"{owner}_name"] = data["name"]
    if session_id != raw_session_id:
        origin["session_id"] = raw_session_id
    user_id = default_user
    if row.get("user_id") is not None:
        user_id = fitted_id(str(row["user_id"]), "user")
        if user_id != row["user_id"]:
            origin["user_id"] = row["user_id"]
    data = as_object(row.get("session_data"))
    created_at = from_epoch(row.get("created_at")) or _EPOCH
    notes: dict[str, Any] = {}
    state = fitted_object(data.get("session_state"), "state", notes)
    metadata = fitted_object(row.get("metadata"), "metadata", notes, room=MAX_JSON_BYTES - json_size(origin) - 1_000)
    metadata["imported_from"] = plain_json({**origin, **notes})
    name = data.get("session_name")
    session = Session(
        session_id=session_id,
        user_id=user_id,
        name=fitted_name(name) if isinstance(name, str) else None,
        state=state,
        metadata=metadata,
        agent=None,
        summary=None,
        run_count=0,
        created_at=created_at,
        updated_at=from_epoch(row.get("updated_at")) or created_at,
        session_type=kind,
        agent_id=owners["agent"],
        team_id=owners["team"],
        workflow_id=owners["workflow"],
    )
    turns = [agno_turn(run, parent, created_at) for run, parent in _ordered(runs)]
    records = [record for turn in turns for record in runs_of(turn, session_id)]
    return session_record(session, records, _summary(row.get("summary"), session.updated_at))


def _summary(raw: object, fallback_time: str) -> tuple[str, list[str], str] | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("summary"), str):
        return None
    topics = as_list(raw.get("topics"))
    return (
        fitted_text(raw["summary"], _SUMMARY_BYTES),
        [fitted_text(topic, 1_000) for topic in topics if isinstance(topic, str)],
        from_iso(raw.get("updated_at")) or fallback_time,
    )


def _ordered(runs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str | None]]:
    """Every run of the session, each once with the id of the run it served (None for the session's own),
    a run before those it led: the stored runs and those they embed (team members', workflow steps'),
    a run found both ways as it was stored."""
    found: dict[str, dict[str, Any]] = {}
    served: dict[str, str | None] = {}

    def add(run: dict[str, Any], embedder: str | None) -> None:
        key, parent = run_key(run), run.get("parent_run_id")
        found[key] = run
        served[key] = fitted_id(parent, "run") if isinstance(parent, str) else served.get(key) or embedder
        for name in _CHILD_RUNS:
            children = run.get(name)
            for child in children if isinstance(children, list) else [children]:
                if isinstance(child, dict):
                    add(child, key)

    for run in runs:
        add(run, None)
    led: dict[str | None, list[str]] = {}
    for key, parent in served.items():
        led.setdefault(parent if parent in found and parent != key else None, []).append(key)
    ordered: list[tuple[dict[str, Any], str | None]] = []
    placed: set[str] = set()

    def place(key: str, parent: str | None) -> None:
        if key not in placed:
            placed.add(key)
            ordered.append((found[key], parent))
            for follower in led.get(key, []):
                place(follower, key)

    for key in [*led.get(None, []), *found]:  # then those only a loop of parent ids reaches, as the session's
        place(key, None)
    return ordered
