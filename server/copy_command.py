"""`copy --from SRC --to DST`: every session of every user from one store into another (SQLite file or
PostgreSQL), whole, then checked by counting both sides.

Each session goes over as one record (store/records.py) in one transaction of the destination, so an
interrupted copy leaves whole sessions behind, and running it again adds only what is missing.
"""

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from mcp_server_sessions.store import StoreError
from mcp_server_sessions.store.opening import open_store
from mcp_server_sessions.store.records import StoreCounts

from .cli import PROG, fail, refuse

_KINDS = ("users", "sessions", "runs", "messages", "tool_calls")
_SQLITE_HEADER = b"SQLite format 3\x00"


def copy_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} copy",
        description="Copy every session of every user from one store into another, then verify the counts. "
        "Stop the servers on the source first; running the copy again adds only what is missing.",
    )
    parser.add_argument("--from", dest="source", required=True, metavar="SRC", help="SQLite file or postgresql:// URL")
    parser.add_argument(
        "--to", dest="destination", required=True, metavar="DST", help="SQLite file or postgresql:// URL"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def copy(argv: list[str]) -> None:
    args = copy_parser().parse_args(argv)
    if "://" not in args.source:
        _check_sqlite_file(args.source)
    if _same(args.source, args.destination):
        refuse("--from and --to name the same store; name another destination.")
    show = not args.quiet and sys.stderr.isatty()
    try:
        source, destination, added = asyncio.run(_copy(args.source, args.destination, show))
    except StoreError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("Copy interrupted; the sessions copied so far are whole, run it again to end.", 130)
    short = [kind.replace("_", " ") for kind in _KINDS if getattr(destination, kind) < getattr(source, kind)]
    if short:
        fail(
            f"The destination holds fewer {' and '.join(short)} than the source "
            f"({_figures(destination)} against {_figures(source)}); stop the servers on both and run the copy again."
        )
    print(
        f"Copied {_figures(source)} of {source.users} users ({added} runs added by this copy); "
        "verified against the destination's counts."
    )


def _check_sqlite_file(source: str) -> None:
    """Refuse a source path that is not a SQLite file before opening it (which would create it)."""
    path = Path(source).expanduser()
    if not path.is_file():
        refuse(f"--from {source} is not an existing SQLite file; name the file to copy or a postgresql:// URL.")
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as exc:
        refuse(f"Cannot read --from {source} ({exc.strerror or exc}); make it readable.")
    if header and header != _SQLITE_HEADER:
        refuse(f"--from {source} is not a SQLite database file; name the session database to copy.")


def _same(source: str, destination: str) -> bool:
    if "://" in source or "://" in destination:
        return source == destination
    return Path(source).expanduser().resolve() == Path(destination).expanduser().resolve()


def _figures(counts: StoreCounts) -> str:
    return (
        f"{counts.sessions} sessions, {counts.runs} runs, {counts.messages} messages and {counts.tool_calls} tool calls"
    )


async def _copy(source_db: str, destination_db: str, show: bool) -> tuple[StoreCounts, StoreCounts, int]:
    """Copy every session; the source's and the destination's counts afterwards, and how many runs were added."""
    source = await open_store(source_db)
    try:
        destination = await open_store(destination_db)
        try:
            total = (await source.counts()).sessions
            added = 0
            with _progress(total, show) as advance:
                async for record in source.export_sessions():  # each read whole: nothing held between
                    added += (await destination.import_session(record)).runs_added
                    advance()
            return await source.counts(), await destination.counts(), added
        finally:
            await destination.close()
    finally:
        await source.close()


@contextlib.contextmanager
def _progress(total: int, show: bool) -> Iterator[Callable[[], None]]:
    """A function to call once per session copied: a progress bar on stderr when `show`, else nothing."""
    if not show:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("Copying sessions"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("copy", total=total)
        yield lambda: progress.advance(task)
