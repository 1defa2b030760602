"""What the commands for people (`list`, `show`, `search`, `export`, `import`, `delete`, `prune`) share:
the server's own store flags, the store opened once per command, failures as one line on stderr with a
non-zero exit status, and output that is rich on a terminal and plain JSON for scripts.
"""

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from mcp_server_sessions.store import SessionStore, StoreError
from mcp_server_sessions.store.opening import open_store

from .cli import PROG, add_store_flags, settings_from
from .cli import fail as fail  # re-exported: the commands' one way out of a failure
from .settings import Settings

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _OneLineParser(argparse.ArgumentParser):
    """A parser whose usage errors are one line on stderr (exit 2), like every other refusal of the commands."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message[:1].upper()}{message[1:].rstrip('.')}; see {self.prog} --help.", EXIT_USAGE)


def command_parser(name: str, description: str) -> argparse.ArgumentParser:
    """A subcommand's parser with the flags every command shares (`--db`, `--user`, the pool flags ...)."""
    parser = _OneLineParser(prog=f"{PROG} {name}", description=description)
    add_store_flags(parser)
    return parser


def command_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Settings:
    return settings_from(args, parser)


def require_existing_db(settings: Settings) -> None:
    """Refuse a SQLite path that holds no database yet, for commands that only read or remove (opening it
    would create an empty file and answer as if it were the real one)."""
    db = settings.db_path
    if db == ":memory:" or "://" in db:
        return
    if not Path(db).is_file():
        fail(f"There is no session database at {db}; name it with --db (or MCP_SESSIONS_DB).", EXIT_USAGE)


def with_store(settings: Settings, body: Callable[[SessionStore], Awaitable[T]]) -> T:
    """Open the store `settings` name, run `body` on it, close it. A store failure is one line on stderr
    and exit status 1; Ctrl-C exits 130."""

    async def run() -> T:
        store = await open_store(settings.db_path, settings.pool)
        try:
            return await body(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("Interrupted.", EXIT_INTERRUPTED)


def print_json(value: Any) -> None:
    """One JSON document on stdout, for scripts."""
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def console(*, stderr: bool = False) -> Any:
    """A rich Console on stdout (or stderr): colour and styles only when it is a terminal."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)
