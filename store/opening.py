"""Opening a store by where it is: a SQLite file path, or a postgresql:// URL."""

from urllib.parse import urlsplit

from .errors import InvalidInput, StoreUnavailable
from .pool_settings import PoolSettings
from .protocol import SessionStore
from .sqlite import SqliteStore


async def open_store(db: str, pool: PoolSettings | None = None) -> SessionStore:
    """The store at `db`: PostgresStore for a postgresql:// (or postgres://) URL, else SqliteStore on
    the file (created if missing, as the server creates it). `pool` sizes PostgreSQL's connection pool.

    Raises StoreUnavailable (also when the PostgreSQL driver is not installed), InvalidInput for a URL
    of another kind, and whatever opening the store raises.
    """
    if "://" not in db:
        return await SqliteStore.open(db)
    try:
        from .postgres_pool import is_postgres_url
    except ModuleNotFoundError as exc:
        if exc.name != "asyncpg":
            raise
        raise StoreUnavailable(
            "PostgreSQL needs the asyncpg driver; install it with pip install 'mcp-server-sessions[postgres]'."
        ) from None
    try:
        scheme, postgres = urlsplit(db).scheme, is_postgres_url(db)
    except ValueError:  # the parser's message may quote the URL, password included
        raise InvalidInput("The database URL cannot be parsed; use postgresql://USER:PASSWORD@HOST:PORT/DB.") from None
    if not postgres:
        raise InvalidInput(
            f"A {scheme or 'malformed'} URL names no store this server can use; give a SQLite file path "
            "or a postgresql:// URL."
        )
    from .postgres import PostgresStore

    return await PostgresStore.open(db, pool)
