"""The token file: lines `USER_ID SHA256_HEX`, read by the server and rewritten by `tokens add|revoke`.

The file holds hashes only. The commands rewrite it whole and rename it into place, so the server
never reads half a file. No MCP import here: the `tokens` commands start fast.
"""

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_LINE = re.compile(r"^([A-Za-z0-9._:@-]{1,128})\s+([0-9a-fA-F]{64})$")
MAX_TOKEN_CHARS = 4096
"""Longer bearer values are refused before hashing: no token this server issues comes close."""


@dataclass(frozen=True)
class TokenLine:
    user_id: str
    sha256: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def read_token_file(path: Path) -> list[TokenLine]:
    """The file's token lines; comments and blank lines skipped, a malformed line logged and skipped."""
    lines: list[TokenLine] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        match = _LINE.match(text)
        if match is None:
            logger.warning("%s line %d is not 'USER_ID SHA256_HEX'; it is ignored", path, number)
            continue
        lines.append(TokenLine(match[1], match[2].lower()))
    return lines


def add_token(path: Path, user_id: str) -> str:
    """A new random 256-bit token for `user_id`; only its hash is written to the file."""
    token = secrets.token_urlsafe(32)
    with _locked(path):
        kept = path.read_text(encoding="utf-8") if path.exists() else _HEADER
        if kept and not kept.endswith("\n"):
            kept += "\n"
        _replace(path, f"{kept}{user_id} {token_hash(token)}\n")
    return token


def revoke_tokens(path: Path, user_id: str) -> int:
    """Removes every line of `user_id`; the number removed."""
    with _locked(path):
        if not path.exists():
            return 0
        kept, removed = [], 0
        for raw in path.read_text(encoding="utf-8").splitlines(keepends=True):
            match = _LINE.match(raw.split("#", 1)[0].strip())
            if match is not None and match[1] == user_id:
                removed += 1
            else:
                kept.append(raw)
        if removed:
            _replace(path, "".join(kept))
    return removed


_HEADER = "# mcp-server-sessions tokens: USER_ID SHA256_HEX_OF_TOKEN (managed with `mcp-server-sessions tokens`)\n"


class _locked:
    """An exclusive lock on the file's directory, so two commands never rewrite the file at once."""

    def __init__(self, path: Path) -> None:
        self.directory = path.parent

    def __enter__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.directory, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *_: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _replace(path: Path, text: str) -> None:
    """`path` now holds `text`, written whole then renamed in; an existing file keeps its mode and
    owner (`sudo tokens add` must not leave a file the server's own account cannot read)."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            _keep_mode_and_owner(path, file.fileno())
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _keep_mode_and_owner(path: Path, fd: int) -> None:
    try:
        before = path.stat()
    except FileNotFoundError:
        return
    os.fchmod(fd, before.st_mode & 0o777)
    with contextlib.suppress(PermissionError):  # not root: the file stays this user's, who wrote it
        os.fchown(fd, before.st_uid, before.st_gid)
