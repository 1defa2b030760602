"""Who owns a `running` run: enough to tell, at the next start, whether its process is gone.

An owner is `host:pid:start`, where `start` is the process start time from /proc (so a
reused pid is not mistaken for the original process). Several servers share one SQLite file,
so a starting server must not mark the live runs of its neighbours as interrupted.
"""

import os
import socket
from functools import cache


@cache
def current_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def owner_is_gone(owner: str | None) -> bool:
    """True when `owner` was a process on this host that no longer runs."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine's process: we cannot tell, so leave its run alone
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, under another user
    state, started = _stat(pid)
    return state in ("Z", "X") or started != start  # a zombie has died, only its parent has not reaped it


def _start_time(pid: int) -> str:
    return _stat(pid)[1]


def _stat(pid: int) -> tuple[str, str]:
    """The process state letter and start time (clock ticks after boot) from /proc, or '?'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), fields[19].decode()
    except (OSError, IndexError):
        return "?", "?"
