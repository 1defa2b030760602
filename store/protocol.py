"""The session store contract every backend implements (SQLite and PostgreSQL).

A store hands out handles bound to one user (`for_user`); a handle's methods take no user, so
code holding alice's handle cannot reach bob's data, and a session of another user is
reported exactly as a session that does not exist. Methods raise only the exceptions of
`errors.py`.
"""

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from .attachments import AttachmentRef
from .limits import HISTORY_PAGE, SEARCH_RESULTS, SESSION_PAGE, TOOL_CALL_PAGE
from .models import (
    AgentConfig,
    ChatHistoryPage,
    ContextMessage,
    Run,
    RunTranscript,
    SearchHit,
    Session,
    SessionPage,
    SessionSummary,
    ToolCallPage,
)
from .records import ImportedSession, OnConflict, SessionRecord, StoreCounts
from .run_inputs import NewRun, SessionKind

if TYPE_CHECKING:
    from .sqlite_paused import PausedRun  # its module imports this one

SortKey = Literal["updated_at", "created_at"]
Order = Literal["desc", "asc"]


class UserSessions(Protocol):
    """One user's sessions, runs, history and search."""

    @property
    def user_id(self) -> str:
        """The user every call of this handle acts for."""

    async def start_session(
        self,
        session_id: str | None,
        *,
        name: str | None = None,
        state: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        agent: AgentConfig | None = None,
        kind: SessionKind | None = None,
    ) -> tuple[Session, bool]:
        """The session `session_id` (a new UUID when None), and whether it was created now, of `kind`
        (its type, agent, team and workflow; by default an agent session of none).

        An existing session is returned unchanged (same id = same conversation).
        Raises InvalidInput, also when `kind` names a session_type other than the existing session's.
        """

    async def get_session(self, session_id: str) -> Session:
        """Raises SessionNotFound."""

    async def list_sessions(
        self,
        *,
        limit: int = SESSION_PAGE,
        cursor: str | None = None,
        sort_by: SortKey = "updated_at",
        order: Order = "desc",
        name_contains: str | None = None,
        kind: SessionKind | None = None,
    ) -> SessionPage:
        """A page of the sessions, ordered by `sort_by` (then creation), optionally only those whose
        name contains `name_contains` (ASCII letters in either case) and those of the session_type,
        agent_id, team_id and workflow_id `kind` names. A cursor is bound to its filters.

        Raises InvalidInput for a bad cursor or an unknown `sort_by` or `order`.
        """

    async def update_session(
        self,
        session_id: str,
        *,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
        merge_state: bool = True,
        agent: AgentConfig | None = None,
    ) -> Session:
        """Change the given fields only; `state` is merged by top-level key unless `merge_state` is False,
        and `agent` field by field (the fields set on it replace the stored ones).

        A call that changes nothing writes nothing and leaves `updated_at` as it was.
        Raises SessionNotFound, InvalidInput.
        """

    async def delete_session(self, session_id: str, *, if_updated_at: str | None = None) -> None:
        """Delete the session with its runs, messages, tool calls and search entries; with `if_updated_at`
        (a Session's `updated_at` as read), only if the session has not changed since, checked in the same
        transaction as the delete (so nothing written after that read is deleted unseen).

        Raises SessionNotFound, SessionChanged.
        """

    async def append_run(
        self, session_id: str, run: NewRun, *, finishing: bool = False, kind: SessionKind | None = None
    ) -> tuple[Run, bool]:
        """Commit a whole run (messages, tool calls, metrics, steps, requirements, resume state) at once.

        A recorded run (`finishing` False) starts the session if needed, of `kind` (as start_session;
        a session_type other than an existing session's is refused). A `parent_run_id` must name a run
        of the same session (InvalidInput otherwise). If the session already
        has a finished run with this `run_id`, nothing is written and that run is returned with
        False (a retry stores nothing twice); a `running` run with this id is refused.
        `finishing` completes a run begun with `begin_run`: the session must still exist
        (a deleted session is not re-created), and the `running` row is completed in place.
        Raises InvalidInput; SessionNotFound when finishing in a deleted session.
        """

    async def begin_run(self, session_id: str, run_id: str, input: str) -> Run:
        """Create a `running` run row, committed at once, so a crash leaves a trace.

        The run holds a lease (the store's `lease_s` from now) that `renew_lease` extends while the
        run goes on; once it has expired, any server on the store may mark the run `error`
        (`SessionStore.recover_interrupted_runs`).
        Raises SessionNotFound, InvalidInput.
        """

    async def renew_lease(self, session_id: str, run_id: str) -> bool:
        """Extend the lease of this `running` run to `lease_s` from now; False when the run is no
        longer running (finished, or marked `error` after its lease expired) or does not exist."""

    async def claim_paused_run(self, run_id: str, tool_call_ids: Sequence[str]) -> "PausedRun":
        """Take this user's paused run `run_id` for its continuation: it turns `running` with a lease
        (as `begin_run`), in one transaction with the checks, so of two concurrent claims exactly one
        wins; the other finds it running. Its requirements are as they were; its resume state comes with it.

        Raises InvalidInput, changing nothing: no such run of this user (another user's run reads the
        same), a run not paused, or `tool_call_ids` not naming each of its requirements exactly once.
        """

    async def cancel_run(self, run_id: str) -> Run:
        """End this user's paused run `run_id` as `cancelled`, waiting for nothing any more.

        Raises InvalidInput, changing nothing: no such run of this user, or a run not paused.
        """

    async def finish_continued_run(self, session_id: str, run: NewRun) -> tuple[Run, bool]:
        """Commit the outcome of a continued run (claimed with `claim_paused_run`, so `running`) in one
        transaction: its status, content, metrics, error, requirements and resume replaced by `run`'s,
        `run`'s messages and tool calls added after those it holds, and the session's token totals grown
        by what `run`'s metrics count beyond the stored ones. The whole run, and False (nothing written)
        when it is no longer running (its lease expired and a server marked it `error`).

        Raises InvalidInput; SessionNotFound when its session was deleted meanwhile.
        """

    async def get_chat_history(
        self,
        session_id: str,
        *,
        last_n_runs: int | None = None,
        limit: int = HISTORY_PAGE,
        cursor: str | None = None,
        include_tool_messages: bool = False,
        include_member_runs: bool = False,
    ) -> ChatHistoryPage:
        """Messages oldest first, optionally only those of the last N finished runs; the runs of a team's
        members (those with a `parent_run_id`) are left out unless `include_member_runs`.

        Raises SessionNotFound (before any cursor is looked at), InvalidInput for a bad cursor.
        """

    async def get_attachment(self, session_id: str, attachment_id: str) -> tuple[AttachmentRef, bytes | None]:
        """One attachment of the session: its reference and its bytes (None for one sent as a url).

        Raises SessionNotFound; InvalidInput when the session has no such attachment.
        """

    async def get_tool_calls(
        self,
        session_id: str,
        *,
        limit: int = TOOL_CALL_PAGE,
        tool_name: str | None = None,
        cursor: str | None = None,
        include_member_runs: bool = False,
    ) -> ToolCallPage:
        """Tool calls newest first, optionally only those of one tool; those of a team member's runs only
        with `include_member_runs`.

        Raises SessionNotFound (before any cursor is looked at), InvalidInput for a bad cursor.
        """

    async def search(
        self,
        query: str,
        *,
        num_sessions: int | None = None,
        exclude_session_id: str | None = None,
        limit: int = SEARCH_RESULTS,
    ) -> list[SearchHit]:
        """Best matches first among the user's messages and tool calls; any string is a valid query.

        Only the first words of a long query are read; InvalidInput for a lone surrogate among them.
        """

    async def context_messages(self, session_id: str, num_runs: int) -> list[ContextMessage]:
        """The messages of the last `num_runs` completed runs of the leader (a team member's runs are left
        out), oldest first, whole runs only.

        Raises SessionNotFound.
        """

    async def runs_for_summary(self, session_id: str, after: int) -> tuple[list[RunTranscript], int]:
        """The leader's completed runs (not a team member's) after the first `after` runs of the session,
        and how many runs from the start are finished (a summary covers those): counting stops at the
        first run still running.

        Raises SessionNotFound.
        """

    async def set_summary(self, session_id: str, summary: SessionSummary) -> Session:
        """Store the session summary. Raises SessionNotFound."""

    async def session_record(
        self, session_id: str, *, last_runs: int | None = None, with_bytes: bool = False
    ) -> SessionRecord:
        """The session whole, as `SessionStore.export_sessions` gives it (every run with its messages and
        tool calls, oldest first), or with only its last `last_runs` runs; read in one snapshot.

        Each attachment comes back as its reference, with no `data`, unless `with_bytes` asks for its bytes
        in base64 as an export holds them (up to 16 MiB a run: only for a caller that writes them out).

        Raises SessionNotFound.
        """

    async def fork_session(
        self, session_id: str, new_session_id: str | None = None, *, up_to_run_id: str | None = None
    ) -> Session:
        """A new session of this user (`new_session_id`, or a new UUID) holding copies of the completed runs
        of `session_id` up to and including `up_to_run_id` (by default, all of them), with their messages,
        tool calls and search entries, run ids and timestamps; the source's state, metadata, agent config
        and other fields, and `metadata.forked_from = {session_id, run_id}` (the last run copied, or None).
        The summary comes along only if it covers no run past the fork point. The source is untouched.
        In a team session the fork point is a leader's run, and a member run is copied with its leader.

        Raises SessionNotFound; InvalidInput when `new_session_id` is taken, `up_to_run_id` is not a
        completed leader run of the session, or the fork would copy more than MAX_FORK_RUNS runs or
        MAX_FORK_ATTACHMENT_BYTES of attachments (then nothing is written).
        """


class SessionStore(Protocol):
    @property
    def lease_s(self) -> float:
        """How long the lease of a run begun on this store lasts, in seconds (see `UserSessions.begin_run`)."""

    def for_user(self, user_id: str) -> UserSessions:
        """The handle through which every read and write of `user_id` goes."""

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""

    async def recover_interrupted_runs(self) -> int:
        """Mark `error` the runs left `running` whose lease has expired (their server stopped renewing
        it), and on SQLite also those of a local server process that no longer exists; how many."""

    def export_sessions(
        self, *, user_id: str | None = None, session_ids: Sequence[str] | None = None
    ) -> AsyncIterator[SessionRecord]:
        """Every session, whole, one at a time in the order they were created (for `copy` and `export`):
        of every user, or only of `user_id`, and then only those of `session_ids` (ids the user does
        not have are left out). Nothing is held between two records.
        """

    async def import_session(self, record: SessionRecord, *, on_conflict: OnConflict = "merge") -> ImportedSession:
        """Write one session as the record has it, in one transaction, with the record's ids and
        timestamps; messages and tool calls enter the search index. A session the user does not have
        yet is created. One the user has is merged, skipped or replaced as `on_conflict` says (see
        records.OnConflict): merging sets the session's fields to the record's and adds each run whose
        run_id the session does not hold yet, so importing a record again writes nothing new.
        Raises InvalidInput for a record the store cannot hold (then nothing is written).
        """

    async def counts(self) -> StoreCounts:
        """How many users, sessions, runs, messages and tool calls the store holds."""
