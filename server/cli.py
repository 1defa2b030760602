"""Command line: `mcp-server-sessions` serves stdio; subcommands serve HTTP, manage tokens, and let people
see and manage their sessions (list, show, search, export, import, delete, prune, copy)."""

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from mcp_server_sessions.store import InvalidInput, StoreError
from mcp_server_sessions.store.limits import check_id
from mcp_server_sessions.store.pool_settings import PoolSettings

from .settings import LOG_LEVELS, Settings

PROG = "mcp-server-sessions"


def add_store_flags(parser: argparse.ArgumentParser) -> None:
    """The flags every command shares: where the sessions are, whose, and which model."""
    defaults = Settings()
    text_flags = (
        (
            "--db",
            defaults.db,
            "SQLite file, :memory:, or postgresql:// URL (env MCP_SESSIONS_DB; default: %(default)s)",
        ),
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
    pool = parser.add_argument_group("PostgreSQL (a postgresql:// --db)")
    pool.add_argument(
        "--pool-min",
        type=_count,
        default=_env_int("MCP_SESSIONS_POOL_MIN", defaults.pool.min_size),
        help="connections the pool keeps open (env MCP_SESSIONS_POOL_MIN; default: %(default)s)",
    )
    pool.add_argument(
        "--pool-max",
        type=_count,
        default=_env_int("MCP_SESSIONS_POOL_MAX", defaults.pool.max_size),
        help="most connections of this server (env MCP_SESSIONS_POOL_MAX; default: %(default)s)",
    )
    pool.add_argument(
        "--statement-timeout",
        type=float,
        default=defaults.pool.statement_timeout_ms / 1000,
        help="seconds one SQL statement may run before PostgreSQL cancels it (default: %(default)s)",
    )
    pool.add_argument(
        "--no-statement-cache",
        dest="statement_cache",
        action="store_false",
        help="no prepared-statement cache: for PgBouncer in transaction mode",
    )


def _count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1_000:
        raise argparse.ArgumentTypeError(f"must be 1 to 1000; got {value}")
    return value


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else default


def settings_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Settings:
    try:
        check_id(args.user, "--user (or MCP_SESSIONS_USER)")
    except InvalidInput as exc:
        parser.error(str(exc))
    if "://" in args.db and not args.db.startswith(("postgresql://", "postgres://")):
        refuse("--db (or MCP_SESSIONS_DB) takes a SQLite file path, :memory:, or a postgresql:// URL.")
    if args.pool_min > args.pool_max or not 0 < args.statement_timeout <= 86_400:
        parser.error(
            "--pool-min must not exceed --pool-max, and --statement-timeout must be over 0 and at most 86400 seconds."
        )
    pool = PoolSettings(
        min_size=args.pool_min,
        max_size=args.pool_max,
        statement_timeout_ms=round(args.statement_timeout * 1000),
        statement_cache=args.statement_cache,
    )
    return Settings(
        db=args.db,
        user=args.user,
        log_level=args.log_level,
        model=args.model,
        model_timeout_s=args.model_timeout,
        pool=pool,
    )


def parse_settings(argv: list[str] | None = None) -> Settings:
    """The stdio server's settings (no subcommand), as hosts start it."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="MCP server for persistent, multi-user conversation sessions (stdio).",
        epilog=f"Commands: `{PROG} serve --transport http ...` serves streamable HTTP; "
        f"`{PROG} tokens add|list|revoke` manages its bearer tokens; `list`, `show`, `search`, `export`, `import`, "
        f"`delete` and `prune` let you see and manage the sessions; `{PROG} copy --from SRC --to DST` copies "
        f"every session into another store. `{PROG} COMMAND --help` tells more.",
    )
    add_store_flags(parser)
    return settings_from(parser.parse_args(argv), parser)


def configure_logging(level: str) -> None:
    """Plain log lines on stderr (stdout belongs to the protocol)."""
    logging.basicConfig(stream=sys.stderr, level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "DEBUG":  # one line per model request, or per stateless HTTP request, is noise at INFO
        for name in ("httpx", "httpx2", "httpcore", "httpcore2", "mcp.server.streamable_http"):
            logging.getLogger(name).setLevel(logging.WARNING)


def fail(sentence: str, status: int = 1) -> NoReturn:
    """One sentence on stderr, then exit with `status` (every command's way out of a failure)."""
    print(f"{PROG}: {sentence}", file=sys.stderr)
    sys.exit(status)


def refuse(sentence: str) -> NoReturn:
    """A command line that cannot work: one sentence on stderr, exit status 2."""
    fail(sentence, 2)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    command = COMMANDS.get(args[0]) if args else None
    if command is not None:
        command(args[1:])
    else:
        run_server(parse_settings(args))


def run_server(settings: Settings) -> None:
    configure_logging(settings.log_level)
    try:
        if settings.transport == "http":
            from .http import serve_http

            serve_http(settings)
        else:
            from .app import serve

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


def _serve(argv: list[str]) -> None:
    from .serve_flags import parse_serve

    run_server(parse_serve(argv))


def _command(module: str, function: str) -> Callable[[list[str]], None]:
    """A subcommand whose module is imported only when it runs (so each command starts quickly)."""

    def run(argv: list[str]) -> None:
        getattr(importlib.import_module(f"{__package__}.{module}"), function)(argv)

    return run


COMMANDS: dict[str, Callable[[list[str]], None]] = {
    "serve": _serve,
    "tokens": _command("tokens_command", "tokens"),
    "copy": _command("copy_command", "copy"),
    "list": _command("session_commands", "list_command"),
    "show": _command("session_commands", "show_command"),
    "search": _command("session_commands", "search_command"),
    "delete": _command("session_commands", "delete_command"),
    "export": _command("transfer_commands", "export_command"),
    "import": _command("transfer_commands", "import_command"),
    "prune": _command("transfer_commands", "prune_command"),
}
