"""The store's own small exception set: every backend maps its driver errors onto these.

Each message is one sentence that says what was wrong and how to fix it, written for a
model or a person reading a tool error.
"""


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class InvalidInput(StoreError):
    """An argument is malformed, too large or out of range."""


class SessionNotFound(StoreError):
    """No session with this id for this user (a foreign session looks exactly the same)."""

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"No session {session_id!r} for this user; call list_sessions to see your sessions "
            "or start_session to create it."
        )
        self.session_id = session_id


class SessionChanged(StoreError):
    """A conditional write found the session changed since the caller read it."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"Session {session_id!r} changed since it was read; read it again, then decide.")
        self.session_id = session_id


class StoreBusy(StoreError):
    """The database stayed locked by other writers for longer than the bounded retry."""


class SchemaTooNew(StoreError):
    """The database file was written by a newer version of the server."""


class MigrationFailed(StoreError):
    """A schema migration failed and was rolled back."""


class StoreUnavailable(StoreError):
    """The database cannot be opened or used (disk full, permissions, corrupt file)."""
