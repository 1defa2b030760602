"""`list`, `show`, `search` and `delete`: one user's sessions for a person at a terminal (rich tables and
the transcript, colour only on a terminal) or for a script (`--json`, one JSON document).

Each command reads or deletes through the store protocol only, so it works on SQLite and PostgreSQL
alike, and never creates a missing SQLite file. Errors are one line on stderr and a non-zero exit status.
"""

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Literal, NoReturn

from mcp_server_sessions.store import InvalidInput, SearchHit, Session, SessionNotFound, SessionStore
from mcp_server_sessions.store.limits import MAX_NUM_SESSIONS, MAX_SEARCH_RESULTS, MAX_SESSION_PAGE, check_id
from mcp_server_sessions.store.protocol import SortKey
from mcp_server_sessions.store.records import SessionRecord

from .cli import PROG
from .command_support import (
    EXIT_FAILED,
    EXIT_USAGE,
    command_parser,
    command_settings,
    console,
    fail,
    print_json,
    require_existing_db,
    with_store,
)
from .settings import Settings
from .terminal_output import marked_snippet, one_line, utc_time
from .transcript_markdown import session_markdown

NAME_CHARS = 40
SUMMARY_CHARS = 60
"""Characters of a session's name and of the start of its summary that the `list` table shows."""


def list_command(argv: list[str]) -> None:
    parser = command_parser("list", "Your sessions, most recently updated first.")
    parser.add_argument("--limit", default="20", metavar="N", help=f"most sessions to list, 1 to {MAX_NUM_SESSIONS:,}")
    parser.add_argument("--sort", choices=("updated_at", "created_at"), default="updated_at", help="newest first by")
    parser.add_argument("--name", metavar="TEXT", help="only sessions whose name contains TEXT")
    parser.add_argument("--json", action="store_true", help='one JSON document: {"sessions": [...], "total": N}')
    args = parser.parse_args(argv)
    limit = _limit(args.limit, MAX_NUM_SESSIONS)
    settings = _settings(parser, args)

    async def listed(store: SessionStore) -> tuple[list[Session], int]:
        return await _sessions(store, settings.user, limit, args.sort, args.name)

    sessions, total = with_store(settings, listed)
    with _output():
        if args.json:
            print_json({"sessions": [session.model_dump(mode="json") for session in sessions], "total": total})
        else:
            _print_sessions(sessions, total, settings.user, args.name)


async def _sessions(
    store: SessionStore, user_id: str, limit: int, sort: SortKey, name: str | None
) -> tuple[list[Session], int]:
    """Up to `limit` sessions, following the pages' cursors, and how many there are in all."""
    user = store.for_user(user_id)
    found: list[Session] = []
    cursor = None
    while True:
        size = min(MAX_SESSION_PAGE, limit - len(found))
        page = await user.list_sessions(limit=size, cursor=cursor, sort_by=sort, name_contains=name)
        found += page.sessions
        cursor = page.next_cursor
        if cursor is None or len(found) >= limit:
            return found, page.total


def _print_sessions(sessions: list[Session], total: int, user_id: str, name: str | None) -> None:
    from rich.table import Table
    from rich.text import Text

    if not sessions:
        named = f" whose name contains {one_line(name)!r}" if name else ""
        print(f"User {user_id} has no sessions{named} here.", file=sys.stderr)
        return
    table = Table(box=None, header_style="bold")
    table.add_column("ID", overflow="fold")
    table.add_column("Name")
    table.add_column("Runs", justify="right", no_wrap=True)
    table.add_column("Updated", no_wrap=True)
    table.add_column("Summary")
    for session in sessions:
        summary = one_line(session.summary.summary, SUMMARY_CHARS) if session.summary else ""
        table.add_row(
            Text(session.session_id),
            Text(one_line(session.name or "", NAME_CHARS)),
            f"{session.run_count:,}",
            utc_time(session.updated_at, seconds=False),
            Text(summary, style="dim"),
        )
    console().print(table)
    if total > len(sessions):
        print(f"{len(sessions):,} of {total:,} sessions; --limit shows more.", file=sys.stderr)


def show_command(argv: list[str]) -> None:
    parser = command_parser("show", "A session's transcript: its runs with their tool calls, metrics, state, summary.")
    parser.add_argument("session_id", metavar="SESSION_ID")
    parser.add_argument(
        "--format",
        choices=("text", "markdown", "json"),
        default="text",
        help="text for the terminal (default), markdown to paste into a document, json: the whole record "
        "(as export writes it, attachments' bytes included)",
    )
    args = parser.parse_args(argv)
    settings = _settings(parser, args)
    session_id = _session_id(args.session_id)

    async def read(store: SessionStore) -> SessionRecord | None:
        with contextlib.suppress(SessionNotFound):
            # Only json shows the bytes of attachments (as export holds them); text and markdown name them.
            return await store.for_user(settings.user).session_record(session_id, with_bytes=args.format == "json")
        return None

    record = with_store(settings, read)
    if record is None:
        _no_session(session_id, settings.user)
    with _output():
        if args.format == "json":
            print_json(record.model_dump(mode="json"))
        elif args.format == "markdown":
            sys.stdout.write(session_markdown(record))
        else:
            from rich.markdown import Markdown

            console().print(Markdown(session_markdown(record), code_theme="ansi_dark"))


def search_command(argv: list[str]) -> None:
    parser = command_parser("search", "Search your sessions' messages and tool calls, best matches first.")
    parser.add_argument("query", metavar="QUERY", help="words to find (any text; word forms match)")
    parser.add_argument("--limit", default="10", metavar="N", help=f"most hits, 1 to {MAX_SEARCH_RESULTS}")
    parser.add_argument("--json", action="store_true", help='one JSON document: {"results": [...]}')
    args = parser.parse_args(argv)
    limit = _limit(args.limit, MAX_SEARCH_RESULTS)
    settings = _settings(parser, args)

    async def search(store: SessionStore) -> list[SearchHit]:
        return await store.for_user(settings.user).search(args.query, limit=limit)

    hits = with_store(settings, search)
    with _output():
        if args.json:
            print_json({"results": [hit.model_dump(mode="json") for hit in hits]})
        else:
            _print_hits(hits)


def _print_hits(hits: list[SearchHit]) -> None:
    from rich.table import Table
    from rich.text import Text

    if not hits:
        print("No matches.", file=sys.stderr)
        return
    table = Table(box=None, header_style="bold")
    table.add_column("Session", overflow="fold")
    table.add_column("When", no_wrap=True)
    table.add_column("Match")
    for hit in hits:
        session = Text(hit.session_id)
        if hit.session_name:
            session.append("\n" + one_line(hit.session_name, NAME_CHARS), style="dim")
        table.add_row(session, utc_time(hit.created_at, seconds=False), marked_snippet(hit.snippet))
    console().print(table)


def delete_command(argv: list[str]) -> None:
    parser = command_parser("delete", "Delete a session with its runs, messages, tool calls and search entries.")
    parser.add_argument("session_id", metavar="SESSION_ID")
    parser.add_argument("--yes", action="store_true", help="delete without asking (needed without a terminal)")
    args = parser.parse_args(argv)
    settings = _settings(parser, args)
    session_id = _session_id(args.session_id)
    asking = not args.yes
    if asking and not sys.stdin.isatty():
        fail(f"Deleting {session_id!r} needs confirmation; pass --yes to delete without a terminal.", EXIT_USAGE)

    async def delete(store: SessionStore) -> Session | Literal["missing", "declined"]:
        user = store.for_user(settings.user)
        try:
            session = await user.get_session(session_id)
            if asking and not _confirmed(session):
                return "declined"
            await user.delete_session(session_id)
        except SessionNotFound:
            return "missing"
        return session

    deleted = with_store(settings, delete)
    if deleted == "missing":
        _no_session(session_id, settings.user)
    if isinstance(deleted, str):
        fail("Nothing was deleted.")
    print(f"Deleted session {deleted.session_id!r} ({_described(deleted)}).")


def _confirmed(session: Session) -> bool:
    """Ask on the terminal; only y or yes deletes."""
    question = f"Delete session {session.session_id!r} ({_described(session)}) of user {session.user_id}? [y/N] "
    print(question, end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if not answer:  # end of input (Ctrl-D): the next line starts on a line of its own
        print(file=sys.stderr)
    return answer.strip().lower() in ("y", "yes")


def _described(session: Session) -> str:
    runs = f"{session.run_count:,} run" + ("" if session.run_count == 1 else "s")
    return f"{one_line(session.name, NAME_CHARS)}, {runs}" if session.name else runs


def _settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Settings:
    settings = command_settings(parser, args)
    require_existing_db(settings)
    return settings


def _limit(text: str, most: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= most:
        fail(f"--limit must be a whole number from 1 to {most:,}; got {text!r}.", EXIT_USAGE)
    return value


def _session_id(text: str) -> str:
    try:
        return check_id(text, "SESSION_ID")
    except InvalidInput as exc:
        fail(str(exc), EXIT_USAGE)


def _no_session(session_id: str, user_id: str) -> NoReturn:
    """A session the user does not have; another user's is answered alike (the store does not tell them apart)."""
    fail(f"User {user_id} has no session {session_id!r}; `{PROG} list` shows yours.", EXIT_FAILED)


@contextlib.contextmanager
def _output() -> Iterator[None]:
    """Output into a pipe its reader closed early (`| head`) ends quietly, as cat does."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        sys.exit(0)
