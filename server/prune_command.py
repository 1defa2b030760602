"""`prune --older-than DAYS`: delete the user's sessions not updated for DAYS, after writing them to an
archive when asked (`--archive FILE`, in the export format, so `import` brings them back).

The sessions are listed oldest first, page by page, while they are older than the cutoff. Each is kept
as a digest of its whole Session value (name, state, summary, run count, token totals, updated_at),
and what is deleted is what was listed and has not changed since: a session whose digest differs when
it is read for the archive, or when it is read again right before its delete, is kept and reported, and
the delete itself is conditional on the session's `updated_at` being the listed one, in the store's own
transaction. So a run added after the listing (which changes updated_at) is never deleted unarchived.
The archive is complete, flushed, fsynced and renamed into place before the first delete: a failure or a
kill while it is written deletes nothing.
"""

import argparse
import hashlib
import math
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mcp_server_sessions.store import Session, SessionChanged, SessionNotFound, SessionStore, UserSessions
from mcp_server_sessions.store.limits import MAX_SESSION_PAGE

from .command_support import (
    EXIT_USAGE,
    command_parser,
    console,
    fail,
    print_json,
    require_existing_db,
    with_store,
)
from .export_format import encode
from .terminal_output import one_line, utc_time
from .transfer_support import CommandFailure, counted, output_file, parsed, progress

MAX_DAYS = 100_000


@dataclass(frozen=True)
class Listed:
    """A session found old enough, as it was when listed."""

    session_id: str
    name: str | None
    run_count: int
    updated_at: str
    digest: bytes

    @classmethod
    def of(cls, session: Session) -> "Listed":
        return cls(session.session_id, session.name, session.run_count, session.updated_at, _digest(session))

    def as_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "name": self.name,
            "run_count": self.run_count,
            "updated_at": self.updated_at,
        }


@dataclass
class Pruned:
    listed: list[Listed]
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    """Listed sessions that changed before they were archived or deleted: left as they are."""
    archive: str | None = None
    """The archive written, if any."""


def prune_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "prune",
        "Delete the sessions of --user not updated for DAYS days, with their runs, messages and tool calls; "
        "with --archive, write them to FILE first (as `export` does) and delete only once FILE is whole.",
    )
    parser.add_argument("--older-than", type=_days, required=True, metavar="DAYS", help="days without an update")
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted and change nothing")
    parser.add_argument("--archive", metavar="FILE", help="export the sessions to FILE before deleting them")
    parser.add_argument("--yes", action="store_true", help="do not ask (needed when no terminal can ask)")
    parser.add_argument("--json", action="store_true", help="the outcome as one JSON document")
    return parser


def prune_command(argv: list[str]) -> None:
    args, settings = parsed(prune_parser(), argv)
    if args.dry_run and args.archive:
        fail("--dry-run changes nothing and writes no archive; leave out --dry-run or --archive.", EXIT_USAGE)
    if not (args.dry_run or args.yes or sys.stdin.isatty()):
        fail(
            "prune deletes sessions and no terminal is there to confirm; pass --yes (or --dry-run to list them).",
            EXIT_USAGE,
        )
    require_existing_db(settings)
    cutoff = (datetime.now(UTC) - timedelta(days=args.older_than)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        pruned = with_store(settings, lambda store: _prune(store, settings.user, cutoff, args))
    except CommandFailure as exc:
        fail(str(exc))
    if args.json:
        print_json(_as_json(pruned, cutoff, args))
    elif args.dry_run:
        _print_table(pruned.listed, settings.user, cutoff)
    else:
        print(_sentence(pruned, settings.user, cutoff))


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of days; got {text!r}") from None
    if not (math.isfinite(days) and 0 <= days <= MAX_DAYS):
        raise argparse.ArgumentTypeError(f"must be 0 to {MAX_DAYS} days; got {text}")
    return days


async def _prune(store: SessionStore, user_id: str, cutoff: str, args: argparse.Namespace) -> Pruned:
    sessions = store.for_user(user_id)
    pruned = Pruned(await _listed(sessions, cutoff))
    if args.dry_run or not pruned.listed:
        return pruned
    if not args.yes and not _confirmed(len(pruned.listed), user_id, cutoff):
        raise CommandFailure("Nothing was deleted.")
    expected = {entry.session_id: entry.digest for entry in pruned.listed}
    if args.archive is not None:
        expected = await _archive(store, user_id, expected, args.archive, pruned)
    updated_at = {entry.session_id: entry.updated_at for entry in pruned.listed}
    await _delete(
        sessions, {session_id: (digest, updated_at[session_id]) for session_id, digest in expected.items()}, pruned
    )
    return pruned


async def _listed(sessions: UserSessions, cutoff: str) -> list[Listed]:
    """The sessions last updated before `cutoff`, oldest first."""
    found: list[Listed] = []
    cursor = None
    while True:
        page = await sessions.list_sessions(limit=MAX_SESSION_PAGE, cursor=cursor, sort_by="updated_at", order="asc")
        for session in page.sessions:
            if not _before(session.updated_at, cutoff):
                return found
            found.append(Listed.of(session))
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def _confirmed(count: int, user_id: str, cutoff: str) -> bool:
    """Ask on the terminal. Blocking is fine here: the command does nothing else meanwhile."""
    print(
        f"Delete {counted(count, 'session')} of user {user_id!r} not updated since {utc_time(cutoff)}? [y/N] ",
        end="",
        file=sys.stderr,
        flush=True,
    )
    return sys.stdin.readline().strip().lower() in ("y", "yes")


async def _archive(
    store: SessionStore, user_id: str, expected: dict[str, bytes], name: str, pruned: Pruned
) -> dict[str, bytes]:
    """Write the listed sessions that are still as listed to `name`, whole; those that were written."""
    archived: dict[str, bytes] = {}
    with output_file(name) as out, progress("Archiving sessions", len(expected)) as advance:
        async for record in store.export_sessions(user_id=user_id, session_ids=list(expected)):
            session_id = record.session.session_id
            if _digest(record.session) == expected[session_id]:
                out.write(encode(record).encode())
                archived[session_id] = expected[session_id]
            else:
                pruned.kept.append(session_id)
            advance()
    pruned.archive = name
    return archived


async def _delete(sessions: UserSessions, expected: dict[str, tuple[bytes, str]], pruned: Pruned) -> None:
    """Delete each session still as listed (its digest, and its `updated_at` checked by the delete itself)."""
    with progress("Deleting sessions", len(expected)) as advance:
        for session_id, (digest, updated_at) in expected.items():
            try:
                if _digest(await sessions.get_session(session_id)) != digest:
                    raise SessionChanged(session_id)
                await sessions.delete_session(session_id, if_updated_at=updated_at)
                pruned.deleted.append(session_id)
            except SessionChanged:
                pruned.kept.append(session_id)
            except SessionNotFound:  # deleted meanwhile by someone else: gone either way
                pass
            advance()


def _digest(session: Session) -> bytes:
    return hashlib.sha256(session.model_dump_json().encode()).digest()


def _before(timestamp: str, cutoff: str) -> bool:
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment < datetime.fromisoformat(cutoff)


def _as_json(pruned: Pruned, cutoff: str, args: argparse.Namespace) -> dict[str, Any]:
    if args.dry_run:
        return {"cutoff": cutoff, "dry_run": True, "sessions": [entry.as_json() for entry in pruned.listed]}
    return {
        "cutoff": cutoff,
        "dry_run": False,
        "deleted": pruned.deleted,
        "kept": pruned.kept,
        "archive": pruned.archive,
    }


def _sentence(pruned: Pruned, user_id: str, cutoff: str) -> str:
    sentence = (
        f"Deleted {counted(len(pruned.deleted), 'session')} of user {user_id!r} not updated since {utc_time(cutoff)}"
    )
    if pruned.archive is not None:
        sentence += f", archived in {pruned.archive} first"
    if pruned.kept:
        sentence += f"; kept {', '.join(repr(session_id) for session_id in pruned.kept)}, changed since listed"
    return sentence + "."


def _print_table(listed: list[Listed], user_id: str, cutoff: str) -> None:
    from rich.table import Table
    from rich.text import Text

    since = utc_time(cutoff)
    if not listed:
        print(f"No session of user {user_id!r} was last updated before {since}: nothing would be deleted.")
        return
    print(f"{counted(len(listed), 'session')} of user {user_id!r} not updated since {since} would be deleted:")
    table = Table()
    for column in ("session", "name", "runs", "updated"):
        table.add_column(column, overflow="fold")
    for entry in listed:
        name = one_line(entry.name, 60) if entry.name else ""
        table.add_row(Text(entry.session_id), Text(name), str(entry.run_count), utc_time(entry.updated_at))
    console().print(table)
