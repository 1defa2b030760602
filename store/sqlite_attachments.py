"""A run's attachments in SQLite: written with the run, read back as references, as bytes (for the
resource) and as records (for export).

Each function runs inside the caller's transaction, for a session already resolved through
sqlite_identity.py (so already checked to belong to the caller). The rows go with their run or session
(ON DELETE CASCADE; sqlite_purge.py deletes them in batches first), and fork copies them
(sqlite_fork.py).
"""

import json
import sqlite3
from collections.abc import Sequence

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


def write(
    raw: sqlite3.Connection, session_pk: int, run_pk: int, attachments: Sequence[PreparedAttachment], now: str
) -> None:
    """The run's attachments; InvalidInput when the session holds one of their ids already (only an
    imported record can name ids)."""
    if not attachments:
        return
    taken = raw.execute(
        "SELECT attachment_id FROM attachments WHERE session_pk = ? "
        "AND attachment_id IN (SELECT value FROM json_each(?))",
        (session_pk, json.dumps([a.attachment_id for a in attachments])),
    ).fetchone()
    if taken is not None:
        raise attachment_taken(taken[0])
    raw.executemany(
        "INSERT INTO attachments (session_pk, run_pk, attachment_id, type, mime_type, name, size, url, data, "
        "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (session_pk, run_pk, a.attachment_id, a.type, a.mime_type, a.name, a.size, a.url, a.data, now)
            for a in attachments
        ],
    )


def run_refs(raw: sqlite3.Connection, run_pk: int, session_id: str) -> list[AttachmentRef]:
    """The run's attachments, in the order they were sent."""
    rows = raw.execute(f"SELECT {REF_COLUMNS} FROM attachments a WHERE a.run_pk = ? ORDER BY a.pk", (run_pk,))
    return [_ref(row, session_id) for row in rows]


def with_refs(raw: sqlite3.Connection, session_pk: int, page: ChatHistoryPage) -> ChatHistoryPage:
    """The page with each user message (a run's input) carrying its run's attachments."""
    run_ids = user_run_ids(page)
    if not run_ids:
        return page
    rows = raw.execute(
        f"SELECT r.run_id, {REF_COLUMNS} FROM runs r JOIN attachments a ON a.run_pk = r.pk "
        "WHERE r.session_pk = ? AND r.run_id IN (SELECT value FROM json_each(?)) ORDER BY a.pk",
        (session_pk, json.dumps(run_ids)),
    )
    return with_page_refs(page, ((row["run_id"], _ref(row, page.session_id)) for row in rows))


def content(
    raw: sqlite3.Connection, session_pk: int, session_id: str, attachment_id: str
) -> tuple[AttachmentRef, bytes | None] | None:
    """One attachment of the session with its bytes (None for a url attachment); None when it has no such one."""
    row = raw.execute(
        f"SELECT {REF_COLUMNS}, a.data FROM attachments a WHERE a.session_pk = ? AND a.attachment_id = ?",
        (session_pk, attachment_id),
    ).fetchone()
    return None if row is None else (_ref(row, session_id), row["data"])


def records(
    raw: sqlite3.Connection, session_pk: int, session_id: str, first_run_pk: int, *, with_bytes: bool
) -> dict[int, list[AttachmentRecord]]:
    """The attachments of the session's runs from pk `first_run_pk` on, by run pk: with their bytes in
    base64 if `with_bytes`, else as references (no `data`; the bytes are not read)."""
    by_run: dict[int, list[AttachmentRecord]] = {}
    rows = raw.execute(
        f"SELECT a.run_pk, {REF_COLUMNS}, {'a.data' if with_bytes else 'NULL AS data'} FROM attachments a "
        "WHERE a.session_pk = ? AND a.run_pk >= ? ORDER BY a.run_pk, a.pk",
        (session_pk, first_run_pk),
    )
    for row in rows:
        by_run.setdefault(row["run_pk"], []).append(stored_record(_ref(row, session_id), row["data"]))
    return by_run


def _ref(row: sqlite3.Row, session_id: str) -> AttachmentRef:
    return row_ref(row, session_id, row["name"])
