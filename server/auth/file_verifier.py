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
        self._problem: str | None = None
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
            self._refuse_all("is gone")
            return self._lines
        # ctime too: a chmod or chown that makes the file readable changes nothing else.
        seen = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino)
        if seen != self._seen:
            try:
                self._lines = read_token_file(self.path)
            except OSError as exc:
                self._refuse_all(f"cannot be read ({exc.strerror or exc})")
                return self._lines
            self._seen, self._problem = seen, None
        return self._lines

    def _refuse_all(self, problem: str) -> None:
        """No token is valid until the file can be read again, which the next request tries."""
        if problem != self._problem:  # once per problem, not per request
            logger.warning("token file %s %s: every token is refused until that is mended", self.path, problem)
        self._lines, self._seen, self._problem = [], None, problem
