"""A run's attachments in PostgreSQL: written with the run, read back as references, as bytes (for the
resource) and as records (for export). As sqlite_attachments.py, inside the caller's transaction, for a
session already resolved to the caller; the rows cascade with their run and session, and fork copies
them (postgres_fork.py).
"""

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from .attachments import (
    REF_COLUMNS,
    AttachmentRecord,
    AttachmentRef,
    PreparedAttachment,
    attachment_taken,
    row_ref,
    stored_record,
    user_run_ids,
    with_page_refs,
)
from .models import ChatHistoryPage
from .postgres_values import optional_from_db, optional_to_db

if TYPE_CHECKING:
    from .postgres_schema import Conn


async def write(
    conn: "Conn", session_pk: int, run_pk: int, attachments: Sequence[PreparedAttachment], moment: datetime
) -> None:
    """The run's attachments; InvalidInput when the session holds one of their ids already (only an
    imported record can name ids)."""
    if not attachments:
        return
    taken = await conn.fetchval(
        "SELECT attachment_id FROM attachments WHERE session_pk = $1 AND attachment_id = ANY($2::text[]) LIMIT 1",
        session_pk,
        [a.attachment_id for a in attachments],
    )
    if taken is not None:
        raise attachment_taken(taken)
    await conn.executemany(
        "INSERT INTO attachments (session_pk, run_pk, attachment_id, type, mime_type, name, size, url, data, "
        "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        [
            (
                session_pk,
                run_pk,
                a.attachment_id,
                a.type,
                a.mime_type,
                optional_to_db(a.name),
                a.size,
                a.url,
                a.data,
                moment,
            )
            for a in attachments
        ],
    )


async def run_refs(conn: "Conn", run_pk: int, session_id: str) -> list[AttachmentRef]:
    """The run's attachments, in the order they were sent."""
    rows = await conn.fetch(f"SELECT {REF_COLUMNS} FROM attachments a WHERE a.run_pk = $1 ORDER BY a.pk", run_pk)
    return [_ref(row, session_id) for row in rows]


async def with_refs(conn: "Conn", session_pk: int, page: ChatHistoryPage) -> ChatHistoryPage:
    """The page with each user message (a run's input) carrying its run's attachments."""
    run_ids = user_run_ids(page)
    if not run_ids:
        return page
    rows = await conn.fetch(
        f"SELECT r.run_id, {REF_COLUMNS} FROM runs r JOIN attachments a ON a.run_pk = r.pk "
        "WHERE r.session_pk = $1 AND r.run_id = ANY($2::text[]) ORDER BY a.pk",
        session_pk,
        run_ids,
    )
    return with_page_refs(page, ((row["run_id"], _ref(row, page.session_id)) for row in rows))


async def content(
    conn: "Conn", session_pk: int, session_id: str, attachment_id: str
) -> tuple[AttachmentRef, bytes | None] | None:
    """One attachment of the session with its bytes (None for a url attachment); None when it has no such one."""
    row = await conn.fetchrow(
        f"SELECT {REF_COLUMNS}, a.data FROM attachments a WHERE a.session_pk = $1 AND a.attachment_id = $2",
        session_pk,
        attachment_id,
    )
    return None if row is None else (_ref(row, session_id), row["data"])


async def records(
    conn: "Conn", session_pk: int, session_id: str, first_run_pk: int, *, with_bytes: bool
) -> dict[int, list[AttachmentRecord]]:
    """The attachments of the session's runs from pk `first_run_pk` on, by run pk: with their bytes in
    base64 if `with_bytes`, else as references (no `data`; the bytes are not read)."""
    by_run: dict[int, list[AttachmentRecord]] = {}
    rows = await conn.fetch(
        f"SELECT a.run_pk, {REF_COLUMNS}, {'a.data' if with_bytes else 'NULL::bytea AS data'} FROM attachments a "
        "WHERE a.session_pk = $1 AND a.run_pk >= $2 ORDER BY a.run_pk, a.pk",
        session_pk,
        first_run_pk,
    )
    for row in rows:
        by_run.setdefault(row["run_pk"], []).append(stored_record(_ref(row, session_id), row["data"]))
    return by_run


def _ref(row: asyncpg.Record, session_id: str) -> AttachmentRef:
    return row_ref(row, session_id, optional_from_db(row["name"]))
