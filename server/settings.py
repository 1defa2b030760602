"""What the server is configured with: flags first, then environment, then defaults."""

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from platformdirs import user_data_path

from mcp_server_sessions.store.pool_settings import PoolSettings

DEFAULT_MODEL = "claude-sonnet-5-5"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_REQUEST_BYTES = 32 * 1024 * 1024
"""Largest HTTP request body (the same cap as one stdio line): above every tool's own input limits."""

Transport = Literal["stdio", "http"]


def is_loopback(host: str) -> bool:
    """Whether only this machine can connect to `host` (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_db() -> str:
    return str(user_data_path("mcp-server-sessions", appauthor=False) / "sessions.db")


@dataclass(frozen=True)
class HttpSettings:
    """Streamable HTTP: where to listen and how a request's bearer token names its user."""

    host: str = "127.0.0.1"
    port: int = 8000
    tokens: str | None = None
    """Token file: lines `USER_ID SHA256_HEX`, re-read when it changes."""
    jwks_url: str | None = None
    """JWT access tokens of an external OAuth authorization server, verified with this JWKS."""
    issuer: str | None = None
    audience: str | None = None
    user_claim: str = "sub"
    allow_anonymous: bool = False
    """No token at all (loopback hosts only): every request acts as `Settings.user`."""
    public_url: str | None = None
    """The URL clients reach the server at (behind a proxy); default http://HOST:PORT."""
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    max_body_bytes: int = MAX_REQUEST_BYTES
    shutdown_timeout_s: float = 30.0
    """Seconds SIGTERM waits for requests in flight; a run still going then is stored `cancelled`."""

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


@dataclass(frozen=True)
class Settings:
    db: str = field(default_factory=lambda: os.environ.get("MCP_SESSIONS_DB") or default_db())
    """SQLite file path, ':memory:', or a postgresql:// URL."""
    user: str = field(default_factory=lambda: os.environ.get("MCP_SESSIONS_USER") or "default")
    """The user_id of calls that do not name one (stdio: a local, trusted client)."""
    log_level: str = "INFO"
    model: str = field(default_factory=lambda: os.environ.get("MCP_SESSIONS_MODEL") or DEFAULT_MODEL)
    """Claude model for runs and summaries, unless the session or the call names another."""
    model_timeout_s: float = 120.0
    """Seconds one model request may take before it is abandoned (and retried by the SDK)."""
    model_max_retries: int = 2
    """The SDK's bounded retries on 429, 5xx, connection errors and timeouts."""
    transport: Transport = "stdio"
    http: HttpSettings = field(default_factory=HttpSettings)
    pool: PoolSettings = field(default_factory=PoolSettings)
    """PostgreSQL only: the connection pool and its statement timeout."""

    @property
    def db_path(self) -> str:
        """`db` with a SQLite path's ~ expanded (a URL or :memory: as it is)."""
        return self.db if self.db == ":memory:" or "://" in self.db else str(Path(self.db).expanduser())
