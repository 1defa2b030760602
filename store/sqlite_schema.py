"""The SQLite schema as ordered migrations, each applied in one transaction with its record.

A migration is a list of statements (not a script: `executescript` would commit on its own,
and a migration must be all or nothing).
"""

import sqlite3
from dataclasses import dataclass

from .errors import MigrationFailed, SchemaTooNew


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial",
        (
            """CREATE TABLE users (
                pk INTEGER PRIMARY KEY,
                user_id TEXT NOT NULL UNIQUE
            )""",
            """CREATE TABLE sessions (
                pk INTEGER PRIMARY KEY,
                user_pk INTEGER NOT NULL REFERENCES users(pk),
                session_id TEXT NOT NULL,
                name TEXT,
                state TEXT NOT NULL DEFAULT '{}',
                metadata TEXT NOT NULL DEFAULT '{}',
                agent TEXT,
                summary TEXT,
                run_count INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                UNIQUE (user_pk, session_id)
            )""",
            "CREATE INDEX sessions_by_updated ON sessions (user_pk, updated_at, pk)",
            "CREATE INDEX sessions_by_created ON sessions (user_pk, created_at, pk)",
            """CREATE TABLE runs (
                pk INTEGER PRIMARY KEY,
                session_pk INTEGER NOT NULL REFERENCES sessions(pk) ON DELETE CASCADE,
                run_id TEXT NOT NULL,
                status TEXT NOT NULL,
                input TEXT NOT NULL,
                content TEXT,
                metrics TEXT NOT NULL DEFAULT '{}',
                error TEXT,
                owner TEXT,
                created_at TEXT NOT NULL,
                UNIQUE (session_pk, run_id)
            )""",
            "CREATE INDEX runs_by_session ON runs (session_pk, pk)",
            "CREATE INDEX runs_running ON runs (status) WHERE status = 'running'",
            """CREATE TABLE messages (
                pk INTEGER PRIMARY KEY,
                session_pk INTEGER NOT NULL REFERENCES sessions(pk) ON DELETE CASCADE,
                run_pk INTEGER NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
                role TEXT NOT NULL,
                content TEXT NOT NULL,
                blocks TEXT,
                is_tool INTEGER NOT NULL DEFAULT 0
            )""",
            "CREATE INDEX messages_by_session ON messages (session_pk, run_pk, pk)",
            "CREATE INDEX messages_by_run ON messages (run_pk)",
            """CREATE TABLE tool_calls (
                pk INTEGER PRIMARY KEY,
                session_pk INTEGER NOT NULL REFERENCES sessions(pk) ON DELETE CASCADE,
                run_pk INTEGER NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
                tool_call_id TEXT NOT NULL,
                tool_name TEXT NOT NULL,
                arguments TEXT NOT NULL,
                result TEXT NOT NULL,
                is_error INTEGER NOT NULL,
                duration_ms REAL,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX tool_calls_by_session ON tool_calls (session_pk, pk)",
            "CREATE INDEX tool_calls_by_name ON tool_calls (session_pk, tool_name, pk)",
            "CREATE INDEX tool_calls_by_run ON tool_calls (run_pk)",
            # rowid = 2 * messages.pk for a message, 2 * tool_calls.pk + 1 for a tool call.
            # `owner` holds the owner's users.pk as a digits-only token, so a user scope is
            # part of the MATCH itself rather than a filter over every user's hits.
            """CREATE VIRTUAL TABLE search_index USING fts5 (
                owner, body, session_pk UNINDEXED,
                tokenize = 'porter unicode61 remove_diacritics 2'
            )""",
        ),
    ),
    Migration(
        2,
        "session token totals",
        tuple(
            f"ALTER TABLE sessions ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
            for column in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
        ),
    ),
    Migration(
        3,
        "sessions being purged",
        (
            # The owner of deleted sessions whose rows are still being purged (store/sqlite_purge.py):
            # not a valid user_id, so no caller can name it.
            "INSERT INTO users (user_id) VALUES ('(sessions being deleted)')",
            # user_pk is the former owner: their searches leave out the session's index rows.
            """CREATE TABLE session_purges (
                session_pk INTEGER PRIMARY KEY REFERENCES sessions(pk) ON DELETE CASCADE,
                user_pk INTEGER NOT NULL REFERENCES users(pk),
                deleted_at TEXT NOT NULL
            )""",
            "CREATE INDEX session_purges_by_user ON session_purges (user_pk)",
        ),
    ),
    Migration(
        4,
        "cursor secret",
        (
            "CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL)",
            # Seals this file's page cursors (store/cursor.py); SQLite seeds randomblob from the OS.
            "INSERT INTO secrets (name, value) VALUES ('cursor', randomblob(32))",
        ),
    ),
    Migration(
        5,
        "run leases",
        (
            # When a `running` run's lease ends unless its server renews it (ISO UTC text, as
            # store/clock.py writes it, so text order is time order); NULL once the run has finished.
            # Runs already `running` get NULL: only the owner's process rule can recover them.
            "ALTER TABLE runs ADD COLUMN lease_expires_at TEXT",
        ),
    ),
    Migration(
        6,
        "session types, member runs, workflow steps, paused runs",
        (
            "ALTER TABLE sessions ADD COLUMN session_type TEXT NOT NULL DEFAULT 'agent'",
            "ALTER TABLE sessions ADD COLUMN agent_id TEXT",
            "ALTER TABLE sessions ADD COLUMN team_id TEXT",
            "ALTER TABLE sessions ADD COLUMN workflow_id TEXT",
            "ALTER TABLE runs ADD COLUMN parent_run_id TEXT",
            "ALTER TABLE runs ADD COLUMN agent_id TEXT",
            # JSON text: a workflow run's steps; a paused run's requirements and its private resume state.
            "ALTER TABLE runs ADD COLUMN steps TEXT",
            "ALTER TABLE runs ADD COLUMN requirements TEXT",
            "ALTER TABLE runs ADD COLUMN resume TEXT",
            "CREATE INDEX runs_by_run_id ON runs (run_id)",
            # Every Session read lists its paused runs: a small partial index finds them.
            "CREATE INDEX runs_paused ON runs (session_pk, pk) WHERE status = 'paused'",
        ),
    ),
    Migration(
        7,
        "attachments",
        (
            # A run's media (store/attachments.py): the bytes, or the url of one sent by address.
            """CREATE TABLE attachments (
                pk INTEGER PRIMARY KEY,
                session_pk INTEGER NOT NULL REFERENCES sessions(pk) ON DELETE CASCADE,
                run_pk INTEGER NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
                attachment_id TEXT NOT NULL,
                type TEXT NOT NULL,
                mime_type TEXT NOT NULL,
                name TEXT,
                size INTEGER NOT NULL,
                url TEXT,
                data BLOB,
                created_at TEXT NOT NULL,
                UNIQUE (session_pk, attachment_id)
            )""",
            "CREATE INDEX attachments_by_run ON attachments (run_pk, pk)",
        ),
    ),
)

LATEST_VERSION = max(m.version for m in MIGRATIONS)


def migrate(conn: sqlite3.Connection, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Bring the file up to the newest schema; returns the version it is at afterwards.

    `conn` is in autocommit mode; each migration runs in its own BEGIN IMMEDIATE, so two
    servers starting together on a new file apply it once.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    latest = max(m.version for m in migrations)
    current = 0
    for migration in sorted(migrations, key=lambda m: m.version):
        conn.execute("BEGIN IMMEDIATE")
        try:
            current = _current_version(conn)
            if current > latest:
                raise SchemaTooNew(
                    f"The database file has schema version {current}, newer than this server's "
                    f"{latest}; upgrade mcp-server-sessions or point --db at another file."
                )
            if migration.version > current:
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) "
                    "VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                    (migration.version, migration.name),
                )
                current = migration.version
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise MigrationFailed(
                f"Schema migration {migration.version} ({migration.name}) failed and was rolled back, "
                f"leaving the file at version {_current_version(conn)}; report this with the server log."
            ) from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return current


def _current_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0])
