"""Opening a PostgreSQL database for the store: a connection pool from a `postgresql://` URL, each
way of failing at start told in one sentence, then the schema migrated."""

import logging
from urllib.parse import urlsplit

import asyncpg

from .errors import StoreUnavailable
from .pool_settings import PoolSettings
from .postgres_schema import migrate

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
"""Longest a new connection may take (at start, and when the pool reconnects)."""


def is_postgres_url(text: str) -> bool:
    return urlsplit(text).scheme in ("postgresql", "postgres")


async def open_pool(url: str, settings: PoolSettings | None = None) -> asyncpg.Pool:
    """A pool on `url` (libpq's URL and its parameters: sslmode, ...) whose database is migrated."""
    settings = settings or PoolSettings()
    where = _where(url)
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=settings.min_size,
            max_size=settings.max_size,
            statement_cache_size=100 if settings.statement_cache else 0,
            timeout=CONNECT_TIMEOUT_S,
            # Behind PgBouncer (no statement cache) a connection's own settings do not hold: the store sets
            # the statement timeout in each transaction instead (postgres_connection.Database).
            server_settings={"timezone": "UTC"}
            | ({"statement_timeout": str(settings.statement_timeout_ms)} if settings.statement_cache else {}),
        )
    except (ValueError, asyncpg.ClientConfigurationError, asyncpg.InterfaceError):
        # Not the parser's message: it may quote the URL, password included.
        raise StoreUnavailable(
            "--db is not a usable PostgreSQL URL; use postgresql://USER:PASSWORD@HOST:PORT/DB."
        ) from None
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise StoreUnavailable(
            f"PostgreSQL at {where} refused the login ({exc}); check the user and password in --db."
        ) from None
    except asyncpg.InvalidCatalogNameError:
        raise StoreUnavailable(
            f"The database named in --db does not exist at {where}; create it (createdb) or fix --db."
        ) from None
    except TimeoutError:  # before OSError, of which it is a kind
        raise StoreUnavailable(
            f"Cannot connect to PostgreSQL at {where} (timed out); check the host and port in --db."
        ) from None
    except OSError as exc:
        raise StoreUnavailable(
            f"Cannot connect to PostgreSQL at {where} ({exc.__class__.__name__}: {exc.strerror or exc}); "
            "check that the server is running and the host and port in --db."
        ) from None
    except asyncpg.PostgresError as exc:
        raise StoreUnavailable(f"PostgreSQL at {where} refused the connection: {exc}.") from None
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
    except BaseException:
        await pool.close()
        raise
    return pool


def _where(url: str) -> str:
    """host:port of the URL, without its user or password (which must not reach a log)."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    except ValueError:
        return "the --db URL"
