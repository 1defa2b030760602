"""How the PostgreSQL store's connection pool is sized and limited (no driver import: the server
builds these from its flags whether or not asyncpg is installed)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class PoolSettings:
    min_size: int = 1
    max_size: int = 10
    statement_timeout_ms: int = 30_000
    """Longest one statement may run before PostgreSQL cancels it."""
    statement_cache: bool = True
    """Prepared-statement caching; off behind PgBouncer in transaction mode, which cannot keep them."""
