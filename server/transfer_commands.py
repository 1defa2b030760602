"""`export`, `import` and `prune`: sessions out to JSON Lines (server/export_format.py) and back in, and old
sessions deleted, archived first if asked. `export` is here; `import` is in import_command.py and `prune`
in prune_command.py.

`export` streams: one session is read whole, written as one line, and let go before the next is read.
"""

import argparse
from typing import BinaryIO

from mcp_server_sessions.store import SessionNotFound, SessionStore

from .command_support import (
    EXIT_USAGE,
    command_parser,
    fail,
    require_existing_db,
    with_store,
)
from .export_format import encode
from .import_command import import_command
from .prune_command import prune_command
from .transfer_support import CommandFailure, counted, output_file, parsed, progress, progress_wanted

__all__ = ["export_command", "import_command", "prune_command"]


def export_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "export",
        "Write sessions as JSON Lines, one whole session per line (runs, messages, tool calls, state, summary, "
        "ids and timestamps), to stdout or to FILE; `import` reads it back.",
    )
    parser.add_argument(
        "--session",
        dest="session_ids",
        action="append",
        metavar="ID",
        help="only this session of --user (repeat the flag for more)",
    )
    parser.add_argument("--all-users", action="store_true", help="the sessions of every user, not only of --user")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write to FILE instead of stdout: a regular file is replaced only once the export is whole",
    )
    return parser


def export_command(argv: list[str]) -> None:
    args, settings = parsed(export_parser(), argv)
    if args.all_users and args.session_ids:
        fail("--session picks sessions of one user (--user); leave out --all-users or --session.", EXIT_USAGE)
    require_existing_db(settings)
    user_id = None if args.all_users else settings.user
    session_ids = list(dict.fromkeys(args.session_ids)) if args.session_ids else None
    try:
        with output_file(args.output) as out:
            sessions, runs = with_store(settings, lambda store: _export(store, out, user_id, session_ids))
    except CommandFailure as exc:
        fail(str(exc))
    if args.output is not None:
        print(f"Exported {counted(sessions, 'session')} ({counted(runs, 'run')}) to {args.output}.")


async def _export(
    store: SessionStore, out: BinaryIO, user_id: str | None, session_ids: list[str] | None
) -> tuple[int, int]:
    """Write the sessions, one line each; how many sessions and runs."""
    if user_id is not None and session_ids is not None:
        await _require_sessions(store, user_id, session_ids)
    total = await _total(store, user_id, session_ids) if progress_wanted() else 0
    sessions = runs = 0
    with progress("Exporting sessions", total) as advance:
        async for record in store.export_sessions(user_id=user_id, session_ids=session_ids):
            out.write(encode(record).encode())
            sessions += 1
            runs += len(record.runs)
            advance()
    return sessions, runs


async def _require_sessions(store: SessionStore, user_id: str, session_ids: list[str]) -> None:
    """Refuse, before anything is written, a session the user does not have."""
    handle = store.for_user(user_id)
    for session_id in session_ids:
        try:
            await handle.get_session(session_id)
        except SessionNotFound:
            raise CommandFailure(
                f"User {user_id!r} has no session {session_id!r}; `list` shows theirs (or name the user with --user)."
            ) from None


async def _total(store: SessionStore, user_id: str | None, session_ids: list[str] | None) -> int:
    if session_ids is not None:
        return len(session_ids)
    if user_id is not None:
        return (await store.for_user(user_id).list_sessions(limit=1)).total
    return (await store.counts()).sessions
