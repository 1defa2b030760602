"""Reading an Agno `SqliteDb` file as Agno wrote it, read-only, without Agno.

Agno 2.x keeps each session as a row of its sessions table (`agno_sessions` unless the app named it)
with the runs as a JSON list in the row's `runs` column. Agno 3.x keeps runs as rows of a runs table
(`agno_runs`, or `<sessions table>_runs`) whose `session_id` references the sessions table; a file
migrated from 2.x may still hold the old `runs` column, and Agno then reads both, the runs table winning
for a run in both. Tables are found by their columns and foreign keys, not by their names.

Agno 2.x wrote its JSON columns encoded twice (a JSON string holding the JSON text); both forms read.
"""

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import SourceError

_SESSION_COLUMNS = {"session_id", "session_type", "session_data", "created_at"}
_RUN_COLUMNS = {"run_id", "session_id", "run_data"}
_JSON_COLUMNS = ("session_data", "agent_data", "team_data", "workflow_data", "metadata", "summary", "runs")


@dataclass(frozen=True)
class SessionTable:
    name: str
    runs_table: str | None
    """The 3.x runs table of this sessions table, if there is one."""
    legacy_runs: bool
    """Whether the sessions table has the 2.x `runs` column."""


def open_database(path: Path) -> sqlite3.Connection:
    """The file opened read-only; SourceError if it is not there or not a SQLite database."""
    if path.is_dir():
        raise SourceError(
            f"{path} is a directory; name the SQLite file your Agno SqliteDb writes (its db_file), or use "
            "--from claude-code for a directory of Claude Code transcripts."
        )
    if not path.is_file():
        raise SourceError(f"There is no file at {path}; name the SQLite file your Agno SqliteDb writes (its db_file).")
    connection = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError:
        connection.close()
        raise SourceError(
            f"{path} is not a SQLite database, so not an Agno SqliteDb file; for Claude Code transcripts "
            "use --from claude-code."
        ) from None
    return connection


def session_tables(connection: sqlite3.Connection, path: Path) -> list[SessionTable]:
    """The file's Agno sessions tables with their runs tables; SourceError if it has none."""
    columns = {name: _columns(connection, name) for name in _table_names(connection)}
    sessions = sorted(name for name, found in columns.items() if found >= _SESSION_COLUMNS)
    if not sessions:
        raise SourceError(
            f"{path} holds no Agno sessions table (one with session_id, session_type and session_data columns); "
            "name the file your Agno SqliteDb writes."
        )
    runs_of: dict[str, str] = {}
    for name, found in sorted(columns.items()):
        if found >= _RUN_COLUMNS:
            for target in _referenced_tables(connection, name) or _conventional_owner(name):
                runs_of.setdefault(target, name)
    return [SessionTable(name, runs_of.get(name), "runs" in columns[name]) for name in sessions]


def session_rows(connection: sqlite3.Connection, table: SessionTable) -> Iterator[dict[str, Any]]:
    """Each session row of `table`, oldest first, with its JSON columns decoded (one row at a time)."""
    cursor = connection.execute(f"SELECT * FROM {_quoted(table.name)} ORDER BY created_at, session_id")
    names = [column[0] for column in cursor.description]
    for values in cursor:
        row = dict(zip(names, values, strict=True))
        for column in _JSON_COLUMNS:
            if column in row:
                row[column] = _decoded(row[column], table.name, row.get("session_id"), column)
        yield row


def run_dicts(connection: sqlite3.Connection, table: SessionTable, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The session's runs as Agno reads them: the 2.x list in its order, each replaced by the runs
    table's copy when there is one, then the runs only the table has, in Agno's order."""
    legacy = row.get("runs") if table.legacy_runs else None
    runs = [run for run in legacy if isinstance(run, dict)] if isinstance(legacy, list) else []
    if table.runs_table is None:
        return runs
    query = (
        f"SELECT run_data FROM {_quoted(table.runs_table)} WHERE session_id = ? ORDER BY run_index, created_at, run_id"
    )
    session_id = row.get("session_id")
    rows = connection.execute(query, (session_id,))
    stored = [_decoded(data, table.runs_table, session_id, "run_data") for (data,) in rows]
    from_table = {run.get("run_id"): run for run in stored if isinstance(run, dict)}
    merged = [from_table.pop(run.get("run_id"), run) for run in runs]
    return merged + list(from_table.values())


def _table_names(connection: sqlite3.Connection) -> list[str]:
    return [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


def _columns(connection: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in connection.execute(f"PRAGMA table_info({_quoted(table)})")}


def _referenced_tables(connection: sqlite3.Connection, table: str) -> list[str]:
    keys = connection.execute(f"PRAGMA foreign_key_list({_quoted(table)})")
    return [row[2] for row in keys if row[3] == "session_id"]


def _conventional_owner(runs_table: str) -> list[str]:
    """The sessions table Agno pairs a runs table with by name, for a runs table without its foreign key."""
    return ["agno_sessions"] if runs_table == "agno_runs" else [runs_table.removesuffix("_runs")]


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _decoded(value: object, table: str, session_id: object, column: str) -> Any:
    """A JSON column's value; Agno 2.x's twice-encoded text decoded twice."""
    if value is None or not isinstance(value, str | bytes):
        return value
    try:
        decoded = json.loads(value)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SourceError(
            f"The {column} of session {session_id!r} in table {table} is not JSON, so Agno could not read it "
            "either; repair or delete that row and import again."
        ) from None
    if isinstance(decoded, str):
        try:
            return json.loads(decoded)
        except json.JSONDecodeError:
            return decoded  # a plain string after all
    return decoded
