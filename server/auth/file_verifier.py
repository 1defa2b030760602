"""Bearer tokens checked against the token file, which is re-read whenever it changes (no restart)."""

import hmac
import logging
from pathlib import Path

from mcp.server.auth.provider import AccessToken

from .identity import UserAccessToken
from .token_file import MAX_TOKEN_CHARS, TokenLine, read_token_file, token_hash

logger = logging.getLogger(__name__)


class TokenFile:
    """A `TokenVerifier` over a token file, re-read whenever the file changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._seen: tuple[int, int, int, int] | None = None
        self._unreadable = False
        self._lines: list[TokenLine] = []

    def user_of(self, token: str) -> str | None:
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        digest = token_hash(token)
        found = None
        for line in self._current():  # every line compared, in constant time each: no early exit
            if hmac.compare_digest(line.sha256, digest) and found is None:
                found = line.user_id
        return found

    async def verify_token(self, token: str) -> AccessToken | None:
        user = self.user_of(token)
        if user is None:
            return None
        return UserAccessToken(token=token, client_id=user, scopes=[], subject=user, user_id=user)

    def _current(self) -> list[TokenLine]:
        try:
            stat = self.path.stat()
        except OSError:
            if self._seen is not None:
                logger.warning("token file %s is gone: every token is refused until it is back", self.path)
            self._seen, self._lines = None, []
            return self._lines
        # ctime too: a chmod or chown that makes the file readable changes nothing else.
        seen = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)
        if seen != self._seen:
            try:
                self._lines = read_token_file(self.path)
            except OSError as exc:
                if not self._unreadable:  # once, not per request
                    logger.warning("token file %s cannot be read (%s): every token is refused", self.path, exc)
                self._lines, self._seen, self._unreadable = [], None, True  # read again on the next request
                return self._lines
            self._unreadable = False
            self._seen = seen
        return self._lines
