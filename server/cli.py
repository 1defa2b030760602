"""Command line: flags and environment into Settings, then serve."""

import argparse
import logging
import sys

from mcp_server_sessions.store import InvalidInput, StoreError
from mcp_server_sessions.store.limits import check_id

from .app import serve
from .settings import LOG_LEVELS, Settings


def parse_settings(argv: list[str] | None = None) -> Settings:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="mcp-server-sessions",
        description="MCP server for persistent, multi-user conversation sessions (stdio).",
    )
    text_flags = (
        ("--db", defaults.db, "SQLite file, or :memory: (env MCP_SESSIONS_DB; default: %(default)s)"),
        ("--user", defaults.user, "user_id for calls that name none (env MCP_SESSIONS_USER; default: %(default)s)"),
        (
            "--model",
            defaults.model,
            "Claude model for run and summarize_session (env MCP_SESSIONS_MODEL; default: %(default)s)",
        ),
    )
    for flag, default, text in text_flags:
        parser.add_argument(flag, default=default, help=text)
    parser.add_argument(
        "--model-timeout",
        type=float,
        default=defaults.model_timeout_s,
        help="seconds one model request may take (default: %(default)s)",
    )
    parser.add_argument("--log-level", default="INFO", type=str.upper, choices=LOG_LEVELS, help="stderr log level")
    args = parser.parse_args(argv)
    try:
        check_id(args.user, "--user (or MCP_SESSIONS_USER)")
    except InvalidInput as exc:
        parser.error(str(exc))
    if "://" in args.db:
        parser.error(
            "--db (or MCP_SESSIONS_DB) takes a SQLite file path or :memory:; database URLs such as "
            "postgresql:// are not supported yet."
        )
    return Settings(
        db=args.db, user=args.user, log_level=args.log_level, model=args.model, model_timeout_s=args.model_timeout
    )


def configure_logging(level: str) -> None:
    """Plain log lines on stderr (stdout belongs to the protocol)."""
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "DEBUG":  # one line per model request is noise at INFO
        for name in ("httpx", "httpx2", "httpcore", "httpcore2"):
            logging.getLogger(name).setLevel(logging.WARNING)


def main() -> None:
    settings = parse_settings()
    configure_logging(settings.log_level)
    try:
        serve(settings)
    except KeyboardInterrupt:
        pass
    except BaseException as exc:
        problems = _store_errors(exc)
        if not problems:
            raise
        for problem in problems:
            logging.getLogger("mcp_server_sessions").error("%s", problem)
        sys.exit(1)


def _store_errors(exc: BaseException) -> list[StoreError]:
    """The store errors in `exc`, which the server's task groups may have wrapped in groups."""
    if isinstance(exc, StoreError):
        return [exc]
    if isinstance(exc, BaseExceptionGroup):
        return [found for inner in exc.exceptions for found in _store_errors(inner)]
    return []
