"""What `export`, `import` and `prune` share: where `export` and `prune --archive` write, the progress bar,
and a failure found while the store is open.

A regular file (or a name that does not exist yet) is written to a temporary file beside it, flushed,
fsynced and renamed into place, so a failure or an interruption leaves no partial file under the name.
The temporary file is created readable by its owner only, as the database is: the file is whole
conversations. Anything else that is not a directory (a named pipe, a terminal, /dev/null) is written
directly, as a stream; stdout too.
"""

import argparse
import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from .command_support import command_settings
from .settings import Settings

FEW_SESSIONS = 10
"""More sessions than this get a progress bar (on a terminal)."""


class CommandFailure(Exception):
    """The command cannot go on; one sentence for the user (raised inside the store's event loop, where
    exiting at once would skip closing the store)."""


class OutputError(CommandFailure):
    """The output cannot be written; one sentence."""


def parsed(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace, Settings]:
    """The command's arguments, and the settings its store flags make."""
    args = parser.parse_args(argv)
    return args, command_settings(parser, args)


@contextlib.contextmanager
def output_file(name: str | None) -> Iterator[BinaryIO]:
    """A binary stream to write to `name` (stdout when None), complete once the block ends without an
    exception. Raises OutputError for a path that cannot be written or a write that fails."""
    if name is None:
        yield from _stdout()
        return
    try:
        found = os.stat(name)
    except FileNotFoundError:
        found = None
    except OSError as exc:
        raise OutputError(_cannot_write(name, exc)) from None
    if found is not None and stat.S_ISDIR(found.st_mode):
        raise OutputError(f"{name} is a directory; name a file to write the sessions to.")
    if found is not None and not stat.S_ISREG(found.st_mode):
        yield from _stream(name)
    else:
        yield from _replaced(name)


def _stdout() -> Iterator[BinaryIO]:
    try:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        # Later flushes at exit would fail again and print a warning: stdout goes nowhere from now on.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise OutputError("stdout was closed before every session was written.") from None
    except OSError as exc:
        raise OutputError(_cannot_write("stdout", exc)) from None


def _stream(name: str) -> Iterator[BinaryIO]:
    try:
        with open(name, "wb") as file:
            yield file
            file.flush()
    except OSError as exc:
        raise OutputError(_cannot_write(name, exc)) from None


def _replaced(name: str) -> Iterator[BinaryIO]:
    target = Path(os.path.realpath(name))  # a symbolic link keeps pointing at the file it named
    try:
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    except OSError as exc:
        raise OutputError(_cannot_write(name, exc)) from None
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise OutputError(_cannot_write(name, exc)) from None
        raise
    _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (some file systems cannot sync a directory: then it is left)."""
    with contextlib.suppress(OSError):
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _cannot_write(name: str, exc: OSError) -> str:
    return f"Cannot write {name} ({exc.strerror or exc}); name a file in a directory you can write to."


def progress_wanted() -> bool:
    """Whether a progress bar can be seen (stderr is a terminal): only then is a total worth counting."""
    return sys.stderr.isatty()


@contextlib.contextmanager
def progress(label: str, total: int) -> Iterator[Callable[[], None]]:
    """A function to call once per session done: a progress bar on stderr for more than a few sessions
    on a terminal, else nothing."""
    if total <= FEW_SESSIONS or not progress_wanted():
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


def counted(number: int, noun: str) -> str:
    """ "1 session", "2 sessions"."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
