"""What the server is configured with: flags first, then environment, then defaults."""

import os
from dataclasses import dataclass, field
from pathlib import Path

from platformdirs import user_data_path

DEFAULT_MODEL = "claude-sonnet-5-5"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def default_db() -> str:
    return str(user_data_path("mcp-server-sessions", appauthor=False) / "sessions.db")


@dataclass(frozen=True)
class Settings:
    db: str = field(default_factory=lambda: os.environ.get("MCP_SESSIONS_DB") or default_db())
    """SQLite file path, or ':memory:'."""
    user: str = field(default_factory=lambda: os.environ.get("MCP_SESSIONS_USER") or "default")
    """The user_id of calls that do not name one (stdio: a local, trusted client)."""
    log_level: str = "INFO"
    model: str = field(default_factory=lambda: os.environ.get("MCP_SESSIONS_MODEL") or DEFAULT_MODEL)
    """Claude model for runs and summaries, unless the session or the call names another."""
    model_timeout_s: float = 120.0
    """Seconds one model request may take before it is abandoned (and retried by the SDK)."""
    model_max_retries: int = 2
    """The SDK's bounded retries on 429, 5xx, connection errors and timeouts."""

    @property
    def db_path(self) -> str:
        return self.db if self.db == ":memory:" else str(Path(self.db).expanduser())
