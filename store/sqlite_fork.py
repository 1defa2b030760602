"""Forking a session on SQLite (`fork_session`), and the rules of a fork both backends share.

A fork is a new session of the same user holding copies of the source's completed runs up to and
including the fork point: `up_to_run_id`, which must name a completed leader run of the source (one
without a `parent_run_id`), or by default its last completed leader run. Runs that are running,
paused, cancelled or in error are left out (a paused run stays the source's to continue; the others
never enter a model's context). A team member's run (one with a `parent_run_id`) is copied when its
parent run is, and only then, wherever it stands (members are recorded after the leader run they
serve): so a fork never holds a run whose parent it lacks, and a leader run comes with its members. The fork
takes the source's every column (name, state, agent config, session type and ids, and any column a
later migration adds), with `metadata.forked_from = {session_id, run_id}` (run_id: the fork point,
null when no run was copied; a fork of a fork names its direct source), a new `created_at` and
`updated_at`, and `run_count` and token totals counted over the copied runs. The summary comes
along only when it covers no run past the fork point; its run_count then counts the runs of the
fork it covers.

Copied runs, messages and tool calls keep their run ids, texts and timestamps and every other
column; each table is copied with one INSERT ... SELECT inside the database, whatever columns the
table has now, and the search index entries are copied from the source's entries, so search finds
the fork's text as it finds the source's. All of it is one write transaction, which holds the
file's write lock while it copies, most of it re-indexing the copied text in FTS5: measured with
bench/fork_cost.py on 2 busy cores, 4 ms for 10 realistic runs, 0.26 s for 1,000, 7 s for 10,000 and
31 s for 100,000 (0.25 to 0.7 ms a run). Other writers wait for it meanwhile, those of other
processes only within their busy timeout (then StoreBusy), so a fork of 100,000 runs is not bounded
enough yet: such sessions want a bound on the runs one fork copies, or a copy in batches.
"""

import json
import sqlite3
import uuid
from dataclasses import dataclass
from typing import Any

from .clock import utc_now
from .errors import InvalidInput
from .limits import MAX_FORK_ATTACHMENT_BYTES, MAX_FORK_RUNS, MAX_SESSION_TOKENS, check_id, dump_json
from .models import Session
from .sqlite_connection import Connection, write
from .sqlite_identity import UserDirectory, find_session
from .sqlite_session_table import load

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def checked_new_id(new_session_id: str | None) -> str:
    """The fork's session id: the one asked for, checked, or a new UUID."""
    return check_id(new_session_id, "new_session_id") if new_session_id is not None else str(uuid.uuid4())


def taken(session_id: str) -> InvalidInput:
    return InvalidInput(
        f"You already have a session {session_id!r}; pass another new_session_id, or omit it for a new id."
    )


def not_forkable(run_id: str, session_id: str, status: str | None, parent_run_id: str | None = None) -> InvalidInput:
    """The error for an up_to_run_id that is not a completed leader run of the session (`status` None: no
    such run; `parent_run_id`: the run is a team member's)."""
    if status is None:
        return InvalidInput(f"Session {session_id!r} has no run {run_id!r}; call get_chat_history to see its run ids.")
    if status != "completed":
        return InvalidInput(
            f"Run {run_id!r} of session {session_id!r} is {status}, not completed; fork up to a completed run."
        )
    return InvalidInput(
        f"Run {run_id!r} of session {session_id!r} is a team member's run (of {parent_run_id!r}); fork up to a "
        "leader run, which brings its members along."
    )


COPIED_RUNS = (
    "WITH RECURSIVE chain(pk, up) AS ("
    "SELECT pk, parent_run_id FROM runs WHERE session_pk = {0} AND status = 'completed' "
    "AND (parent_run_id IS NOT NULL OR pk <= {1}) "
    "UNION SELECT chain.pk, p.parent_run_id FROM chain JOIN runs p ON p.session_pk = {0} AND p.run_id = chain.up "
    "WHERE p.status = 'completed' AND (p.parent_run_id IS NOT NULL OR p.pk <= {1})) "
    "SELECT pk FROM chain WHERE up IS NULL ORDER BY pk LIMIT {2}"
)
"""The pks of the runs a fork up to run pk {1} copies, in order, no more than {2} of them (placeholders per
driver): the completed leader runs up to the fork point, and each completed member run whose parents up
to its leader run are all copied (each member's chain of parents is walked up through the run_id index;
UNION ends the walk even on a cycle an imported record might hold)."""


def too_many_runs(copied: int, session_id: str) -> InvalidInput | None:
    """The error for a fork that would copy more than MAX_FORK_RUNS runs, else None."""
    if copied <= MAX_FORK_RUNS:
        return None
    return InvalidInput(
        f"A fork copies at most {MAX_FORK_RUNS:,} runs, and session {session_id!r} has more completed runs up to "
        "that point; fork up to an earlier run (up_to_run_id), or summarize_session and start a new session from "
        "its summary."
    )


COPIED_ATTACHMENT_BYTES = "SELECT coalesce(sum(size), 0) FROM attachments WHERE session_pk = {0} AND run_pk {1}"
"""How many bytes of attachments a fork would copy, {1} being the driver's test of membership in the copied
runs' pks (the bytes themselves are not read)."""


def covered_copies(copied: list[int], last_covered_pk: int | None) -> int:
    """How many of the copied runs (pks) a summary covering the source's runs up to pk `last_covered_pk` covers."""
    return 0 if last_covered_pk is None else sum(1 for pk in copied if pk <= last_covered_pk)


def too_many_bytes(copied: int, session_id: str) -> InvalidInput | None:
    """The error for a fork that would copy more than MAX_FORK_ATTACHMENT_BYTES of attachments, else None."""
    if copied <= MAX_FORK_ATTACHMENT_BYTES:
        return None
    return InvalidInput(
        f"A fork copies at most {MAX_FORK_ATTACHMENT_BYTES:,} bytes of attachments, and the completed runs of "
        f"session {session_id!r} up to that point hold {copied:,}; fork up to an earlier run (up_to_run_id)."
    )


@dataclass(frozen=True)
class Source:
    """What the fork takes from the source session besides its rows: metadata and summary (JSON texts)."""

    session_id: str
    metadata_json: str
    summary_json: str | None


def forked_metadata(source: Source, fork_run_id: str | None) -> str:
    """The source's metadata with `forked_from` set (replacing a `forked_from` of its own)."""
    metadata: dict[str, Any] = json.loads(source.metadata_json)
    metadata["forked_from"] = {"session_id": source.session_id, "run_id": fork_run_id}
    return dump_json(metadata, "the fork's metadata (the source's with forked_from added)")


def summary_covered(summary_json: str | None) -> int | None:
    """How many of the source's first runs its summary covers; None without a summary."""
    return None if summary_json is None else int(json.loads(summary_json)["run_count"])


def forked_summary(summary_json: str | None, fork_position: int, copied_covered: int) -> str | None:
    """The summary the fork takes: the source's if it covers no run past the fork point (the
    `fork_position`-th run of the source), counting the `copied_covered` runs of the fork it covers."""
    if summary_json is None:
        return None
    summary: dict[str, Any] = json.loads(summary_json)
    if int(summary["run_count"]) > fork_position:
        return None
    summary["run_count"] = copied_covered
    return json.dumps(summary, ensure_ascii=False, separators=(",", ":"))


def column_list(columns: list[str], overrides: dict[str, str], prefix: str) -> tuple[str, str]:
    """(the INSERT's column list, the SELECT's expressions) copying every column of a table: each as
    `prefix`.column unless `overrides` gives its expression (an empty one leaves the column to its
    default). A column added by a later migration is copied too."""
    targets = [column for column in columns if overrides.get(column) != ""]
    sources = [overrides.get(column) or f"{prefix}{column}" for column in targets]
    return ", ".join(targets), ", ".join(sources)


async def fork_session(
    writer: Connection,
    users: UserDirectory,
    user_id: str,
    session_id: str,
    new_session_id: str | None,
    up_to_run_id: str | None,
) -> Session:
    """The fork of the user's session `session_id`, made in one write transaction (see the module's
    docstring). Raises SessionNotFound, InvalidInput; a refused fork writes nothing."""
    new_id = checked_new_id(new_session_id)

    def body(raw: sqlite3.Connection) -> Session:
        source = users.session(raw, user_id, session_id)
        if find_session(raw, source.user_pk, new_id) is not None:
            raise taken(new_id)
        fork_pk, fork_run_id = _fork_point(raw, source.session_pk, session_id, up_to_run_id)
        rows = raw.execute(COPIED_RUNS.format("?1", "?2", "?3"), (source.session_pk, fork_pk, MAX_FORK_RUNS + 1))
        copied = [int(row[0]) for row in rows]
        if (refusal := too_many_runs(len(copied), session_id)) is not None:
            raise refusal
        pks = json.dumps(copied)
        in_copied = "IN (SELECT value FROM json_each(?))"
        media = raw.execute(COPIED_ATTACHMENT_BYTES.format("?", in_copied), (source.session_pk, pks))
        if (refusal := too_many_bytes(int(media.fetchone()[0]), session_id)) is not None:
            raise refusal
        new_pk = _copy_session(raw, source.session_pk, new_id)
        _copy_runs(raw, source.session_pk, new_pk, pks)
        _finish(raw, source.session_pk, new_pk, session_id, fork_pk, fork_run_id, copied)
        return load(raw, new_pk, user_id)

    return await writer.run(write(body))


def _fork_point(
    raw: sqlite3.Connection, session_pk: int, session_id: str, up_to_run_id: str | None
) -> tuple[int, str | None]:
    """(the pk of the last leader run to copy, its run_id); (0, None) when the source has no completed leader run."""
    if up_to_run_id is not None:
        row = raw.execute(
            "SELECT pk, status, parent_run_id FROM runs WHERE session_pk = ? AND run_id = ?", (session_pk, up_to_run_id)
        ).fetchone()
        if row is None or row["status"] != "completed" or row["parent_run_id"] is not None:
            raise not_forkable(up_to_run_id, session_id, *((row["status"], row["parent_run_id"]) if row else (None,)))
        return int(row["pk"]), up_to_run_id
    row = raw.execute(
        "SELECT pk, run_id FROM runs WHERE session_pk = ? AND status = 'completed' AND parent_run_id IS NULL "
        "ORDER BY pk DESC LIMIT 1",
        (session_pk,),
    ).fetchone()
    return (0, None) if row is None else (int(row["pk"]), row["run_id"])


def _columns(raw: sqlite3.Connection, table: str) -> list[str]:
    return [row["name"] for row in raw.execute(f"PRAGMA table_info({table})")]


def _copy_session(raw: sqlite3.Connection, source_pk: int, new_id: str) -> int:
    """The new session row, every column the source's but its id, pk and times (totals set by `_finish`)."""
    now = utc_now()
    overrides = {"pk": "", "session_id": ":new_id", "created_at": ":now", "updated_at": ":now", "run_count": "0"}
    overrides |= {column: "0" for column in TOKEN_COLUMNS}
    targets, sources = column_list(_columns(raw, "sessions"), overrides, "s.")
    new_pk = raw.execute(
        f"INSERT INTO sessions ({targets}) SELECT {sources} FROM sessions s WHERE s.pk = :source",
        {"new_id": new_id, "now": now, "source": source_pk},
    ).lastrowid
    assert new_pk is not None
    return new_pk


# The source's rows to copy, numbered in order: the copy of the n-th gets pk `base` + n, so a copy's
# pk is known from its original's (for the search index) and the pks stay dense.
_RUNS = (
    "SELECT r.*, row_number() OVER (ORDER BY r.pk) AS n FROM runs r "
    "WHERE r.session_pk = :source AND r.pk IN (SELECT value FROM json_each(:copied))"
)
_ROWS = (
    "SELECT t.*, row_number() OVER (ORDER BY t.pk) AS n, :run_base + c.n AS new_run_pk FROM {table} t "
    f"JOIN ({_RUNS}) c ON c.pk = t.run_pk WHERE t.session_pk = :source"
)
_SEARCH_ROWID = {"messages": "2 * ({})", "tool_calls": "2 * ({}) + 1"}


def _copy_runs(raw: sqlite3.Connection, source_pk: int, new_pk: int, copied: str) -> None:
    """The source's runs of pks `copied` (a JSON array) copied into session `new_pk`, with their messages,
    tool calls and attachments and those messages' and tool calls' search index entries."""
    params: dict[str, Any] = {"source": source_pk, "new": new_pk, "copied": copied}
    params["run_base"] = _max_pk(raw, "runs")
    targets, sources = column_list(_columns(raw, "runs"), {"pk": ":run_base + c.n", "session_pk": ":new"}, "c.")
    raw.execute(f"INSERT INTO runs ({targets}) SELECT {sources} FROM ({_RUNS}) c", params)
    for table in (*_SEARCH_ROWID, "attachments"):
        params["base"] = _max_pk(raw, table)
        overrides = {"pk": ":base + c.n", "session_pk": ":new", "run_pk": "c.new_run_pk"}
        targets, sources = column_list(_columns(raw, table), overrides, "c.")
        rows = _ROWS.format(table=table)
        raw.execute(f"INSERT INTO {table} ({targets}) SELECT {sources} FROM ({rows}) c", params)
        if table not in _SEARCH_ROWID:
            continue
        rowid = _SEARCH_ROWID[table]
        raw.execute(
            "INSERT INTO search_index (rowid, owner, body, session_pk) "
            f"SELECT {rowid.format(':base + c.n')}, i.owner, i.body, :new FROM ({rows}) c "
            f"JOIN search_index i ON i.rowid = {rowid.format('c.pk')}",
            params,
        )


def _max_pk(raw: sqlite3.Connection, table: str) -> int:
    return int(raw.execute(f"SELECT coalesce(max(pk), 0) FROM {table}").fetchone()[0])


def _finish(
    raw: sqlite3.Connection,
    source_pk: int,
    new_pk: int,
    session_id: str,
    fork_pk: int,
    fork_run_id: str | None,
    copied: list[int],
) -> None:
    """The fork's run count and token totals (over its runs), its metadata and its summary."""
    row = raw.execute("SELECT metadata, summary FROM sessions WHERE pk = ?", (source_pk,)).fetchone()
    source = Source(session_id, row["metadata"], row["summary"])
    position = raw.execute("SELECT count(*) FROM runs WHERE session_pk = ? AND pk <= ?", (source_pk, fork_pk))
    fork_position = int(position.fetchone()[0])
    covered = summary_covered(source.summary_json)
    copied_covered = 0
    if covered is not None and covered <= fork_position:
        last = raw.execute(
            "SELECT pk FROM runs WHERE session_pk = ? ORDER BY pk LIMIT 1 OFFSET ?", (source_pk, covered - 1)
        ).fetchone()
        copied_covered = covered_copies(copied, None if covered == 0 or last is None else int(last[0]))
    sums = ", ".join(f"min(total(json_extract(metrics, '$.{c}')), {MAX_SESSION_TOKENS})" for c in TOKEN_COLUMNS)
    count, *tokens = raw.execute(f"SELECT count(*), {sums} FROM runs WHERE session_pk = ?", (new_pk,)).fetchone()
    raw.execute(
        f"UPDATE sessions SET metadata = ?, summary = ?, run_count = ?, "
        f"{', '.join(f'{c} = ?' for c in TOKEN_COLUMNS)} WHERE pk = ?",
        (
            forked_metadata(source, fork_run_id),
            forked_summary(source.summary_json, fork_position, copied_covered),
            count,
            *(int(t) for t in tokens),
            new_pk,
        ),
    )
