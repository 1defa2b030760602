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
from mcp_server_sessions.store.models import Session
from mcp_server_sessions.store.records import SessionRecord

from . import SourceError
from .agno_runs import agno_turn
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
from .turns import Turn, fitted_object, runs_of, session_record

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
    origin: dict[str, Any] = {"source": "agno", "session_type": row.get("session_type")}
    for kind in ("agent", "team", "workflow"):
        data = row.get(f"{kind}_data")
        if row.get(f"{kind}_id") is not None:
            origin[f"{kind}_id"] = row[f"{kind}_id"]
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            origin[f"{kind}_name"] = data["name"]
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
    )
    records = [record for turn in _turns(runs, created_at) for record in runs_of(turn, session_id)]
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


def _turns(runs: list[dict[str, Any]], fallback_time: str) -> Iterator[Turn]:
    """A turn per run of the session itself, with the runs under it (members', steps') folded in."""
    by_id = {run["run_id"]: run for run in runs if isinstance(run.get("run_id"), str)}
    tops: list[dict[str, Any]] = []
    under: dict[object, list[dict[str, Any]]] = {}
    for run in runs:
        parent = run.get("parent_run_id")
        if isinstance(parent, str) and parent in by_id and parent != run.get("run_id"):
            under.setdefault(_top_id(run, by_id), []).append(run)
        else:
            tops.append(run)
    for top in tops:
        yield agno_turn(top, _descendants(top, under.get(top.get("run_id"), [])), fallback_time)


def _top_id(run: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> object:
    """The id of the session's own run that `run` ran under, following parent_run_id up."""
    seen: set[str] = set()
    while isinstance(parent := run.get("parent_run_id"), str) and parent in by_id and parent not in seen:
        seen.add(parent)
        run = by_id[parent]
    return run.get("run_id")


def _descendants(top: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs under `top`: those it embeds (members' and steps' runs, recursively) and those stored as
    rows of their own; a run found both ways counts once, as its row has it."""
    found: dict[object, dict[str, Any]] = {}

    def visit(run: dict[str, Any]) -> None:
        for key in _CHILD_RUNS:
            children = run.get(key)
            for child in children if isinstance(children, list) else [children]:
                if isinstance(child, dict):
                    found[child.get("run_id") or id(child)] = child
                    visit(child)

    visit(top)
    for row in rows:
        found[row.get("run_id") or id(row)] = row
        visit(row)
    return list(found.values())
