"""`import FILE`: sessions from an export (JSON Lines, server/export_format.py) or, with `--from`, from
another program's files (server/importers/), written into the store with their own ids, users and
timestamps.

The input is read twice, one record at a time, so memory stays flat whatever its size: first to check
every record (before the store is even opened), then, only if all are good, to write them, one
transaction per session. The second reading writes no more records than the first one checked.
"""

import argparse
import importlib
import itertools
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

from mcp_server_sessions.store import SessionStore, StoreError
from mcp_server_sessions.store.records import OnConflict, SessionRecord

from .command_support import command_parser, fail, print_json, with_store
from .export_format import FormatError, RecordChecks, read_export
from .importers import SourceError
from .transfer_support import CommandFailure, counted, parsed, progress

SOURCES = ("agno", "claude-code")
OUTCOMES = ("created", "merged", "replaced", "skipped")

Records = Callable[[], Iterator[tuple[str, SessionRecord]]]
"""A fresh reading of the input: each record with the words that name it in a message ("FILE line 3")."""


def import_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "import",
        "Write into the store the sessions of FILE, as `export` wrote them (each keeps its user, ids and "
        "timestamps), or with --from the conversations of another program. Every record is checked before "
        "anything is written.",
    )
    parser.add_argument(
        "file",
        metavar="FILE",
        help="a JSON Lines export; with --from agno an Agno SqliteDb file, with --from claude-code a transcript "
        "or a directory of them",
    )
    parser.add_argument(
        "--from",
        dest="source",
        choices=SOURCES,
        help="read another program's conversations; their sessions go to --user",
    )
    parser.add_argument(
        "--on-conflict",
        choices=("skip", "replace", "merge"),
        help="a session the user already has: skip it (the default for an export), replace it by the file's, "
        "or merge (the default with --from: its fields set to the file's, the runs it lacks added)",
    )
    parser.add_argument("--json", action="store_true", help="the summary as one JSON document")
    return parser


def import_command(argv: list[str]) -> None:
    args, settings = parsed(import_parser(), argv)
    on_conflict: OnConflict = args.on_conflict or ("merge" if args.source else "skip")
    records = _reading(args.source, args.file, settings.user)
    try:
        checked = _check_all(records)
        outcomes = with_store(settings, lambda store: _write_all(store, records, checked, on_conflict))
    except (CommandFailure, FormatError, SourceError) as exc:
        fail(str(exc))
    summary = {"sessions": checked, **{outcome: outcomes[outcome] for outcome in OUTCOMES}}
    summary["runs_added"] = outcomes["runs_added"]
    if args.json:
        print_json(summary)
    else:
        tally = ", ".join(f"{summary[outcome]} {outcome}" for outcome in OUTCOMES)
        runs = counted(summary["runs_added"], "run")
        print(f"Imported {counted(checked, 'session')} from {args.file}: {tally}; {runs} added.")


def _reading(source: str | None, name: str, user_id: str) -> Records:
    if source is None:
        return lambda: _export_records(name)
    # The importers load only when asked for (agno's reader needs nothing of this module's, and the reverse).
    module = importlib.import_module(f"{__package__}.importers.{source.replace('-', '_')}")
    read = cast(Callable[[Path, str], Iterator[SessionRecord]], getattr(module, f"{source.replace('-', '_')}_records"))
    return lambda: ((f"{name} session {number}", record) for number, record in enumerate(read(Path(name), user_id), 1))


def _export_records(name: str) -> Iterator[tuple[str, SessionRecord]]:
    try:
        mode = os.stat(name).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # a directory is refused by open, below
            raise SourceError(
                f"{name} is not a regular file, and import reads its input twice (to check it, then to write it); "
                "save it to a file first."
            )
        with open(name, "rb") as file:
            for number, record in read_export(file, name):
                yield f"{name} line {number}", record
    except FileNotFoundError:
        raise SourceError(f"There is no file {name}; name a file that `export` wrote.") from None
    except IsADirectoryError:
        raise SourceError(
            f"{name} is a directory; name a file that `export` wrote (a directory of Claude Code transcripts "
            "takes --from claude-code)."
        ) from None
    except OSError as exc:
        raise SourceError(f"Cannot read {name} ({exc.strerror or exc}); make it readable.") from None


def _check_all(records: Records) -> int:
    """Check every record as the store will; how many. Raises FormatError at the first bad one."""
    checks = RecordChecks()
    checked = 0
    try:
        for where, record in records():
            checks.check(record, where)
            checked += 1
    finally:
        checks.close()
    return checked


async def _write_all(store: SessionStore, records: Records, checked: int, on_conflict: OnConflict) -> Counter[str]:
    """Import the first `checked` records, one transaction each; how many sessions had each outcome, and
    how many runs were added (`runs_added`)."""
    outcomes: Counter[str] = Counter()
    written = 0
    with progress("Importing sessions", checked) as advance:
        reading = itertools.islice(records(), checked)
        while True:
            try:
                found = next(reading, None)
            except (FormatError, SourceError) as exc:
                raise CommandFailure(_stopped(written, f"the input changed while it was imported: {exc}")) from None
            if found is None and written < checked:
                raise CommandFailure(_stopped(written, "the input changed while it was imported: it ended early."))
            if found is None:
                return outcomes
            where, record = found
            try:
                imported = await store.import_session(record, on_conflict=on_conflict)
            except StoreError as exc:
                raise CommandFailure(_stopped(written, f"{where} could not be written: {exc}")) from None
            outcomes[imported.outcome] += 1
            outcomes["runs_added"] += imported.runs_added
            written += 1
            advance()


def _stopped(written: int, why: str) -> str:
    return f"Import stopped after {counted(written, 'session')}, each written whole, because {why}"
