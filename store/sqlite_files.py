"""The database file and its folders: created private (0700 folders, 0600 file) whatever the umask."""

import logging
import os
import stat
from pathlib import Path

from .errors import StoreUnavailable

logger = logging.getLogger(__name__)


def prepare_file(path: Path) -> None:
    """Create the missing parent folders (0700) and the database file (0600), whatever the umask.

    An existing database file readable by others is reported, not changed: its owner may mean it.
    """
    existed = path.exists()
    try:
        _make_private_folders(path.parent)
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            if not existed:
                os.fchmod(fd, 0o600)  # the mode given to os.open is masked by the umask
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
    except OSError as exc:
        if existed:
            raise StoreUnavailable(
                f"Cannot write the session database at {str(path)!r} ({exc.strerror}); make the file and its "
                "folder writable, or choose another --db path."
            ) from exc
        raise StoreUnavailable(
            f"Cannot create the session database at {str(path)!r} ({exc.strerror}); choose another --db path."
        ) from exc
    if mode & 0o077:
        logger.warning(
            "The session database %s can be read by other users (mode %04o); run chmod 600 on it to keep it private.",
            path,
            mode,
        )


def make_companions_private(path: Path) -> None:
    """Make the -wal and -shm files 0600 once the connections have opened them.

    SQLite gives them the database file's mode whenever it opens them empty (so making them
    beforehand does not help); once they hold data it leaves their mode alone.
    """
    for companion in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            status = companion.stat()
            if status.st_uid == os.geteuid() and status.st_mode & 0o077:
                companion.chmod(0o600)
        except FileNotFoundError:
            pass


def _make_private_folders(folder: Path) -> None:
    missing: list[Path] = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made by another process just now: its mode is its maker's business
        created.chmod(0o700)  # mkdir's mode is masked by the umask
