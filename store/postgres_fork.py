"""Forking a session on PostgreSQL (`fork_session`): the rules of sqlite_fork.py, in one transaction.

Each table is copied with one INSERT ... SELECT of every column it has (a column a later migration
adds is copied too), in the source's order; a copied message or tool call carries its search vector
with it, so search finds the fork's text as the source's. The source session is held (FOR KEY SHARE)
so a concurrent delete waits for the fork; a concurrent fork to the same new id makes one of them
find the id taken. The runs to copy are listed first (their pks), so a run that completes while the
fork copies is not copied, and counts and token totals are taken over the rows copied.
"""

from typing import TYPE_CHECKING

from .errors import SessionNotFound
from .limits import MAX_FORK_RUNS, MAX_SESSION_TOKENS
from .models import Session
from .postgres_connection import Database
from .postgres_session_table import UserDirectory, load
from .postgres_values import now
from .sqlite_fork import (
    COPIED_ATTACHMENT_BYTES,
    COPIED_RUNS,
    TOKEN_COLUMNS,
    Source,
    checked_new_id,
    column_list,
    covered_copies,
    forked_metadata,
    forked_summary,
    not_forkable,
    summary_covered,
    taken,
    too_many_bytes,
    too_many_runs,
)

if TYPE_CHECKING:
    from .postgres_schema import Conn

_COLUMNS = (
    "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
)


async def fork_session(
    db: Database,
    users: UserDirectory,
    user_id: str,
    session_id: str,
    new_session_id: str | None,
    up_to_run_id: str | None,
) -> Session:
    """The fork of the user's session `session_id` (see sqlite_fork.py). Raises SessionNotFound,
    InvalidInput; a refused fork writes nothing."""
    new_id = checked_new_id(new_session_id)

    async def body(conn: "Conn") -> Session:
        source = await users.session(conn, user_id, session_id, hold=True)
        fork_pk, fork_run_id = await _fork_point(conn, source.session_pk, session_id, up_to_run_id)
        rows = await conn.fetch(COPIED_RUNS.format("$1", "$2", "$3"), source.session_pk, fork_pk, MAX_FORK_RUNS + 1)
        copied = [int(row["pk"]) for row in rows]
        if (refusal := too_many_runs(len(copied), session_id)) is not None:
            raise refusal
        media = await conn.fetchval(
            COPIED_ATTACHMENT_BYTES.format("$1", "= ANY($2::bigint[])"), source.session_pk, copied
        )
        if (refusal := too_many_bytes(int(media), session_id)) is not None:
            raise refusal
        new_pk = await _copy_session(conn, source.session_pk, new_id)
        await _copy_runs(conn, source.session_pk, new_pk, copied)
        await _finish(conn, source.session_pk, new_pk, session_id, fork_pk, fork_run_id, copied)
        return await load(conn, new_pk, user_id)

    # Not repeated after a lost connection: the fork may have committed, and a retry would find its id taken.
    return await db.run(body, repeatable=False)


async def _fork_point(
    conn: "Conn", session_pk: int, session_id: str, up_to_run_id: str | None
) -> tuple[int, str | None]:
    """(the pk of the last leader run to copy, its run_id); (0, None) when the source has no completed leader run."""
    if up_to_run_id is not None:
        row = await conn.fetchrow(
            "SELECT pk, status, parent_run_id FROM runs WHERE session_pk = $1 AND run_id = $2",
            session_pk,
            up_to_run_id,
        )
        if row is None or row["status"] != "completed" or row["parent_run_id"] is not None:
            raise not_forkable(up_to_run_id, session_id, *((row["status"], row["parent_run_id"]) if row else (None,)))
        return int(row["pk"]), up_to_run_id
    row = await conn.fetchrow(
        "SELECT pk, run_id FROM runs WHERE session_pk = $1 AND status = 'completed' AND parent_run_id IS NULL "
        "ORDER BY pk DESC LIMIT 1",
        session_pk,
    )
    return (0, None) if row is None else (int(row["pk"]), row["run_id"])


async def _columns(conn: "Conn", table: str) -> list[str]:
    return [row["attname"] for row in await conn.fetch(_COLUMNS, table)]


async def _copy_session(conn: "Conn", source_pk: int, new_id: str) -> int:
    """The new session row, every column the source's but its id, pk and times (totals set by `_finish`)."""
    overrides = {"pk": "", "session_id": "$2", "created_at": "$3", "updated_at": "$3", "run_count": "0"}
    overrides |= {column: "0" for column in TOKEN_COLUMNS}
    targets, sources = column_list(await _columns(conn, "sessions"), overrides, "s.")
    new_pk = await conn.fetchval(
        f"INSERT INTO sessions ({targets}) SELECT {sources} FROM sessions s WHERE s.pk = $1 "
        "ON CONFLICT (user_pk, session_id) DO NOTHING RETURNING pk",
        source_pk,
        new_id,
        now(),
    )
    if new_pk is None:
        raise taken(new_id)
    return int(new_pk)


async def _copy_runs(conn: "Conn", source_pk: int, new_pk: int, copied: list[int]) -> None:
    """The source's runs of pks `copied` copied into session `new_pk`, then their messages, tool calls and
    attachments (each joined to its run's copy by run_id), all in the source's order."""
    targets, sources = column_list(await _columns(conn, "runs"), {"pk": "", "session_pk": "$2"}, "r.")
    await conn.execute(
        f"INSERT INTO runs ({targets}) SELECT {sources} FROM runs r "
        "WHERE r.session_pk = $1 AND r.pk = ANY($3::bigint[]) ORDER BY r.pk",
        source_pk,
        new_pk,
        copied,
    )
    for table in ("messages", "tool_calls", "attachments"):
        overrides = {"pk": "", "session_pk": "$2", "run_pk": "copy.pk"}
        targets, sources = column_list(await _columns(conn, table), overrides, "t.")
        await conn.execute(
            f"INSERT INTO {table} ({targets}) SELECT {sources} FROM {table} t "
            "JOIN runs r ON r.pk = t.run_pk JOIN runs copy ON copy.session_pk = $2 AND copy.run_id = r.run_id "
            "WHERE t.session_pk = $1 ORDER BY t.pk",
            source_pk,
            new_pk,
        )


async def _finish(
    conn: "Conn",
    source_pk: int,
    new_pk: int,
    session_id: str,
    fork_pk: int,
    fork_run_id: str | None,
    copied: list[int],
) -> None:
    """The fork's run count and token totals (over its runs), its metadata and its summary."""
    row = await conn.fetchrow("SELECT metadata, summary FROM sessions WHERE pk = $1", source_pk)
    if row is None:  # held since the fork began
        raise SessionNotFound(session_id)
    source = Source(session_id, row["metadata"], row["summary"])
    fork_position = int(
        await conn.fetchval("SELECT count(*) FROM runs WHERE session_pk = $1 AND pk <= $2", source_pk, fork_pk)
    )
    covered = summary_covered(source.summary_json)
    copied_covered = 0
    if covered is not None and covered <= fork_position and covered > 0:
        last = await conn.fetchval(
            "SELECT pk FROM runs WHERE session_pk = $1 ORDER BY pk LIMIT 1 OFFSET $2", source_pk, covered - 1
        )
        copied_covered = covered_copies(copied, None if last is None else int(last))
    sums = ", ".join(
        f"least(coalesce(sum((metrics::json ->> '{c}')::numeric), 0), {MAX_SESSION_TOKENS})::bigint AS {c}"
        for c in TOKEN_COLUMNS
    )
    totals = await conn.fetchrow(f"SELECT count(*) AS runs, {sums} FROM runs WHERE session_pk = $1", new_pk)
    assert totals is not None
    await conn.execute(
        "UPDATE sessions SET metadata = $2, summary = $3, run_count = $4, "
        f"{', '.join(f'{c} = ${i}' for i, c in enumerate(TOKEN_COLUMNS, start=5))} WHERE pk = $1",
        new_pk,
        forked_metadata(source, fork_run_id),
        forked_summary(source.summary_json, fork_position, copied_covered),
        totals["runs"],
        *(totals[c] for c in TOKEN_COLUMNS),
    )
