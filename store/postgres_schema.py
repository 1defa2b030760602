"""The PostgreSQL schema as ordered migrations, each applied in one transaction with its record,
under an advisory lock so replicas starting at once migrate the database once.

Provisional until the PostgreSQL backend is served (`--db postgresql://...` is still refused): no
database has this schema yet, so migration 1 may still change in place until then.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

from .errors import MigrationFailed, SchemaTooNew

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

MIGRATION_LOCK = 0x6D63_7073_6573_7331
"""pg_advisory_lock key held while migrating ("mcpsess1"): one replica migrates, the others wait."""


@dataclass(frozen=True)
class PgMigration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[PgMigration, ...] = (
    PgMigration(
        1,
        "initial",
        (
            # Word forms and accents: "kayaking fjord" finds "a kayak trip on the fjords", "cafe" finds "café".
            # unaccent and btree_gin are trusted extensions (PostgreSQL 13+): a database owner may create them.
            "CREATE EXTENSION IF NOT EXISTS unaccent",
            "CREATE EXTENSION IF NOT EXISTS btree_gin",
            "CREATE TEXT SEARCH CONFIGURATION sessions_english (COPY = pg_catalog.english)",
            "ALTER TEXT SEARCH CONFIGURATION sessions_english "
            "ALTER MAPPING FOR hword, hword_part, word WITH unaccent, english_stem",
            # A text's search vector, every word of it, with its stored NULs (U+10FFFE) read as spaces. A
            # tsvector holds at most 1 MB, which only a text of over 200,000 characters of nearly all
            # distinct words passes: such a text is indexed by its first 200,000 characters.
            """CREATE FUNCTION sessions_vector(body text) RETURNS tsvector
            LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
            BEGIN
                IF length(body) <= 200000 THEN
                    RETURN to_tsvector('sessions_english', replace(body, chr(1114110), ' '));
                END IF;
                BEGIN
                    RETURN to_tsvector('sessions_english', replace(body, chr(1114110), ' '));
                EXCEPTION WHEN program_limit_exceeded THEN
                    RETURN to_tsvector('sessions_english', left(replace(body, chr(1114110), ' '), 200000));
                END;
            END $$""",
            # JSON columns are text holding the JSON exactly as written (key order, and the \\u0000 escapes
            # that jsonb refuses); text columns hold store/postgres_values.py's NUL-free form.
            """CREATE TABLE users (
                pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                user_id text NOT NULL UNIQUE
            )""",
            """CREATE TABLE sessions (
                pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                user_pk bigint NOT NULL REFERENCES users(pk),
                session_id text NOT NULL,
                name text,
                state text NOT NULL DEFAULT '{}',
                metadata text NOT NULL DEFAULT '{}',
                agent text,
                summary text,
                run_count bigint NOT NULL DEFAULT 0,
                input_tokens bigint NOT NULL DEFAULT 0,
                output_tokens bigint NOT NULL DEFAULT 0,
                cache_read_tokens bigint NOT NULL DEFAULT 0,
                cache_write_tokens bigint NOT NULL DEFAULT 0,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                UNIQUE (user_pk, session_id)
            )""",
            "CREATE INDEX sessions_by_updated ON sessions (user_pk, updated_at, pk)",
            "CREATE INDEX sessions_by_created ON sessions (user_pk, created_at, pk)",
            """CREATE TABLE runs (
                pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                session_pk bigint NOT NULL REFERENCES sessions(pk) ON DELETE CASCADE,
                run_id text NOT NULL,
                status text NOT NULL,
                input text NOT NULL,
                content text,
                metrics text NOT NULL DEFAULT '{}',
                error text,
                lease_expires_at timestamptz,
                created_at timestamptz NOT NULL,
                UNIQUE (session_pk, run_id)
            )""",
            "CREATE INDEX runs_by_session ON runs (session_pk, pk)",
            "CREATE INDEX runs_running ON runs (lease_expires_at) WHERE status = 'running'",
            # Search rows carry their owner, so a user's search is scoped inside the GIN index itself
            # (btree_gin's (user_pk, search) index), never by filtering every user's matches.
            """CREATE TABLE messages (
                pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                user_pk bigint NOT NULL REFERENCES users(pk),
                session_pk bigint NOT NULL REFERENCES sessions(pk) ON DELETE CASCADE,
                run_pk bigint NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
                role text NOT NULL,
                content text NOT NULL,
                blocks text,
                is_tool boolean NOT NULL DEFAULT false,
                search tsvector NOT NULL
            )""",
            "CREATE INDEX messages_by_session ON messages (session_pk, run_pk, pk)",
            "CREATE INDEX messages_by_run ON messages (run_pk)",
            "CREATE INDEX messages_search ON messages USING gin (user_pk, search)",
            "CREATE INDEX messages_by_user ON messages (user_pk, pk)",
            """CREATE TABLE tool_calls (
                pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                user_pk bigint NOT NULL REFERENCES users(pk),
                session_pk bigint NOT NULL REFERENCES sessions(pk) ON DELETE CASCADE,
                run_pk bigint NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
                tool_call_id text NOT NULL,
                tool_name text NOT NULL,
                arguments text NOT NULL,
                result text NOT NULL,
                is_error boolean NOT NULL,
                duration_ms double precision,
                created_at timestamptz NOT NULL,
                search tsvector NOT NULL
            )""",
            "CREATE INDEX tool_calls_by_session ON tool_calls (session_pk, pk)",
            "CREATE INDEX tool_calls_by_name ON tool_calls (session_pk, tool_name, pk)",
            "CREATE INDEX tool_calls_by_run ON tool_calls (run_pk)",
            "CREATE INDEX tool_calls_search ON tool_calls USING gin (user_pk, search)",
            "CREATE INDEX tool_calls_by_user ON tool_calls (user_pk, pk)",
            "CREATE TABLE secrets (name text PRIMARY KEY, value bytea NOT NULL)",
            # Seals this database's page cursors (store/cursor.py), shared by every replica.
            # 32 bytes of pg_strong_random, through the two built-in random UUIDs' 122 random bits each.
            "INSERT INTO secrets (name, value) VALUES "
            "('cursor', decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'))",
        ),
    ),
    PgMigration(
        2,
        "session types, member runs, workflow steps, paused runs",
        (
            "ALTER TABLE sessions ADD COLUMN session_type text NOT NULL DEFAULT 'agent'",
            "ALTER TABLE sessions ADD COLUMN agent_id text",
            "ALTER TABLE sessions ADD COLUMN team_id text",
            "ALTER TABLE sessions ADD COLUMN workflow_id text",
            "ALTER TABLE runs ADD COLUMN parent_run_id text",
            "ALTER TABLE runs ADD COLUMN agent_id text",
            # JSON text: a workflow run's steps; a paused run's requirements and its private resume state.
            "ALTER TABLE runs ADD COLUMN steps text",
            "ALTER TABLE runs ADD COLUMN requirements text",
            "ALTER TABLE runs ADD COLUMN resume text",
            "CREATE INDEX runs_by_run_id ON runs (run_id)",
            # Every Session read lists its paused runs: a small partial index finds them.
            "CREATE INDEX runs_paused ON runs (session_pk, pk) WHERE status = 'paused'",
        ),
    ),
    PgMigration(
        3,
        "attachments",
        (
            # A run's media (store/attachments.py): the bytes, or the url of one sent by address.
            """CREATE TABLE attachments (
                pk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                session_pk bigint NOT NULL REFERENCES sessions(pk) ON DELETE CASCADE,
                run_pk bigint NOT NULL REFERENCES runs(pk) ON DELETE CASCADE,
                attachment_id text NOT NULL,
                type text NOT NULL,
                mime_type text NOT NULL,
                name text,
                size bigint NOT NULL,
                url text,
                data bytea,
                created_at timestamptz NOT NULL,
                UNIQUE (session_pk, attachment_id)
            )""",
            "CREATE INDEX attachments_by_run ON attachments (run_pk, pk)",
        ),
    ),
)
LATEST_VERSION = max(m.version for m in MIGRATIONS)


async def migrate(conn: "Conn", migrations: tuple[PgMigration, ...] = MIGRATIONS) -> int:
    """Bring the database up to the newest schema; returns the version it is at afterwards.

    Each migration is one transaction that first takes the migration lock (a transaction-level
    advisory lock, so nothing outlives the transaction even behind PgBouncer) and reads the version
    under it: replicas starting at once wait for each other and apply each migration once.
    """
    latest = max(m.version for m in migrations)
    current = 0
    step = "waiting for another server's migration"
    try:
        while True:
            async with conn.transaction():
                await conn.execute("SET LOCAL statement_timeout = 0")  # another replica may be migrating
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                step = "creating schema_migrations"
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
                )
                current = await _current_version(conn)
                if current > latest:
                    raise SchemaTooNew(
                        f"The database has schema version {current}, newer than this server's {latest}; "
                        "upgrade mcp-server-sessions or point --db at another database."
                    )
                pending = sorted((m for m in migrations if m.version > current), key=lambda m: m.version)
                if not pending:
                    return current
                migration = pending[0]
                step = f"schema migration {migration.version} ({migration.name})"
                for statement in migration.statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version, migration.name
                )
            current = migration.version
    except asyncpg.PostgresError as exc:
        raise MigrationFailed(
            f"Migrating the database failed while {step} ({exc.__class__.__name__}) and was rolled back, "
            f"leaving it at version {current}; check the privileges of the --db user (it must be able to "
            "create tables and the unaccent and btree_gin extensions)."
        ) from exc


async def _current_version(conn: "Conn") -> int:
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_migrations"))
