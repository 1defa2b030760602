"""Who is who in the file: the users.pk behind a user id, and the sessions.pk behind a user's session id.

Every read and write of a user's data resolves the user here first, once per transaction, so
nothing reaches a session except through its owner. A user id never resolves to the reserved
owner of sessions being deleted (PURGING_USER), so no caller can reach those sessions either.
"""

import sqlite3
from dataclasses import dataclass

from .errors import SessionNotFound
from .sqlite_purge import PURGING_USER


@dataclass(frozen=True)
class OwnedSession:
    """A session resolved for its owner, with what its cursors are bound to."""

    user_pk: int
    session_pk: int
    session_id: str


class UserDirectory:
    """users.pk by user id for one store, cached: users are never renumbered or deleted."""

    def __init__(self) -> None:
        self._known: dict[str, int] = {}

    def user_pk(self, raw: sqlite3.Connection, user_id: str) -> int | None:
        """The user's pk, or None for a user the file does not have; a pk found is cached."""
        user_pk = self._known.get(user_id)
        if user_pk is not None:
            return user_pk
        row = None if user_id == PURGING_USER else raw.execute(_USER, (user_id,)).fetchone()
        if row is not None:
            user_pk = self._known[user_id] = int(row[0])
        return user_pk

    def created_user_pk(self, raw: sqlite3.Connection, user_id: str) -> int:
        """The user's pk, inserting the user if new.

        A user inserted by a transaction that later rolls back must not be remembered, so a pk this
        call inserts is not cached; call it before the transaction could have inserted this user itself.
        """
        user_pk = self.user_pk(raw, user_id)
        if user_pk is None:
            raw.execute("INSERT INTO users (user_id) VALUES (?)", (user_id,))
            user_pk = int(raw.execute(_USER, (user_id,)).fetchone()[0])
        return user_pk

    def session(self, raw: sqlite3.Connection, user_id: str, session_id: str) -> OwnedSession:
        """The user's session `session_id`. Raises SessionNotFound for an unknown user or session."""
        user_pk = self.user_pk(raw, user_id)
        session_pk = None if user_pk is None else find_session(raw, user_pk, session_id)
        if user_pk is None or session_pk is None:
            raise SessionNotFound(session_id)
        return OwnedSession(user_pk, session_pk, session_id)


def find_session(raw: sqlite3.Connection, user_pk: int, session_id: str) -> int | None:
    """The pk of the user's session `session_id`, if it exists."""
    row = raw.execute("SELECT pk FROM sessions WHERE user_pk = ? AND session_id = ?", (user_pk, session_id)).fetchone()
    return None if row is None else int(row[0])


_USER = "SELECT pk FROM users WHERE user_id = ?"
