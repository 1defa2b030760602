"""The `session://{session_id}` resources: each of the caller's sessions as a markdown transcript, for hosts
that attach context instead of calling tools.

`resources/list` pages through the caller's sessions, most recently updated first, with the store's own
cursor. Reading one renders as many of its last runs as fit in RESULT_BUDGET_BYTES and says how many earlier
runs it leaves out. The user comes from where the tools take it (`context.user_sessions`), so another user's
session reads exactly like a missing one. Failures reach the client as an MCP error with one sentence.
"""

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resources import ResourceSecurity
from mcp.shared.exceptions import MCPError
from mcp.shared.uri_template import UriTemplate
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    Annotations,
    CompleteRequestParams,
    CompleteResult,
    Completion,
    ListResourcesResult,
    PaginatedRequestParams,
    PromptReference,
    Resource,
)

from mcp_server_sessions.store import InvalidInput, Session, SessionNotFound, StoreError, UserSessions
from mcp_server_sessions.store.limits import MAX_SESSION_PAGE, RESULT_BUDGET_BYTES, check_id
from mcp_server_sessions.store.records import RunRecord, SessionRecord

from . import budget
from .context import user_sessions
from .transcript_markdown import session_markdown

logger = logging.getLogger(__name__)

SESSION_URI = "session://{session_id}"
MARKDOWN = "text/markdown"
RESOURCE_PAGE = 50
"""Sessions per page of resources/list."""
FIRST_WINDOW = 20
"""Runs read first for a transcript; most sessions have fewer, so one read does."""
MAX_TRANSCRIPT_RUNS = 100
"""A transcript shows at most this many of the last runs (get_chat_history pages through every one)."""
SUMMARY_CHARS = 160
"""How much of a session's summary its resource description shows."""
MAX_COMPLETIONS = 100  # the most values one completion/complete answer may carry (MCP spec)
CUT_NOTE = "\n\n*[Transcript cut at {budget:,} bytes; get_chat_history and get_tool_call_history return it whole.]*\n"

_SESSION_TEMPLATE = UriTemplate.parse(SESSION_URI)
P = ParamSpec("P")
R = TypeVar("R")


def register_resources(server: MCPServer[Any]) -> None:
    """The session template, the per-user resources/list and completion of session ids."""
    server.resource(
        SESSION_URI,
        name="session",
        title="Session transcript",
        description="One of your sessions as markdown: summary, state and its last runs with their tool calls.",
        mime_type=MARKDOWN,
        # read_session checks the id's form (check_id); `..` is a valid session id here, not a path.
        security=ResourceSecurity(exempt_params=frozenset({"session_id"})),
    )(protocol_failures("session resource")(read_session))
    # MCPServer lists only static resources, without the request or a cursor; these handlers have both.
    lowlevel = server._lowlevel_server
    lowlevel.add_request_handler(
        "resources/list", PaginatedRequestParams, protocol_failures("resources/list")(list_session_resources)
    )
    lowlevel.add_request_handler(
        "completion/complete", CompleteRequestParams, protocol_failures("completion")(complete_session_id)
    )


async def read_session(session_id: str, ctx: Context) -> str:
    """A session of the caller as markdown, its last runs within RESULT_BUDGET_BYTES."""
    check_id(session_id, "session_id")
    return await bounded_transcript(user_sessions(ctx, None), session_id, MAX_TRANSCRIPT_RUNS)


async def list_session_resources(
    ctx: ServerRequestContext[Any, Any], params: PaginatedRequestParams
) -> ListResourcesResult:
    """A page of the caller's sessions, most recently updated first."""
    sessions = user_sessions(Context(request_context=ctx), None)
    page = await sessions.list_sessions(limit=RESOURCE_PAGE, cursor=params.cursor)
    return ListResourcesResult(resources=[session_resource(s) for s in page.sessions], next_cursor=page.next_cursor)


def session_resource(session: Session) -> Resource:
    return Resource(
        uri=session_uri(session.session_id),
        name=session.session_id,
        title=session.name,
        description=describe(session),
        mime_type=MARKDOWN,
        annotations=Annotations(last_modified=session.updated_at),
    )


def session_uri(session_id: str) -> str:
    """The resource URI of a session (`:` and `@` of an id percent-encoded, as the template reads them back)."""
    return _SESSION_TEMPLATE.expand({"session_id": session_id})


def describe(session: Session) -> str:
    runs = f"{session.run_count:,} run{'' if session.run_count == 1 else 's'}, updated {session.updated_at}"
    summary = " ".join(session.summary.summary.split()) if session.summary is not None else ""
    if not summary:
        return runs
    return f"{runs}. {summary if len(summary) <= SUMMARY_CHARS else summary[: SUMMARY_CHARS - 1] + '…'}"


async def complete_session_id(ctx: ServerRequestContext[Any, Any], params: CompleteRequestParams) -> CompleteResult:
    """The caller's recent session ids that start with what was typed, for `session_id` of the template and
    of resume_session."""
    ref, argument = params.ref, params.argument
    ours = ref.uri == SESSION_URI if not isinstance(ref, PromptReference) else ref.name == "resume_session"
    if not ours or argument.name != "session_id":
        return CompleteResult(completion=Completion(values=[]))
    page = await user_sessions(Context(request_context=ctx), None).list_sessions(limit=MAX_SESSION_PAGE)
    found = [s.session_id for s in page.sessions if s.session_id.startswith(argument.value)]
    more = len(found) > MAX_COMPLETIONS or page.next_cursor is not None
    return CompleteResult(completion=Completion(values=found[:MAX_COMPLETIONS], has_more=more))


async def bounded_transcript(
    sessions: UserSessions, session_id: str, most_runs: int, budget_bytes: int = RESULT_BUDGET_BYTES
) -> str:
    """The session as markdown with as many of its last `most_runs` runs as fit in `budget_bytes`.

    Runs are read in two windows (most sessions fit the first), never more than `most_runs`.
    """
    window = min(FIRST_WINDOW, most_runs)
    while True:
        record = await sessions.session_record(session_id, last_runs=window, with_bytes=False)  # references only
        markdown, kept = fit_last_runs(record, budget_bytes)
        if kept < len(record.runs) or len(record.runs) < window or window == most_runs:
            return markdown
        window = most_runs


def fit_last_runs(record: SessionRecord, budget_bytes: int) -> tuple[str, int]:
    """The markdown of the record with the most of its last runs that fit `budget_bytes`, and how many."""

    def render(kept: int) -> str:
        tail = record.runs[len(record.runs) - kept :]
        return session_markdown(record.model_copy(update={"runs": tail}), earlier_runs=record.session.run_count - kept)

    whole = render(len(record.runs))
    if _size(whole) <= budget_bytes:
        return whole, len(record.runs)
    fits, too_many = 0, len(record.runs)  # the markdown grows with every run kept
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        fits, too_many = (middle, too_many) if _size(render(middle)) <= budget_bytes else (fits, middle)
    if fits > 0 or not record.runs:
        return _cut(render(fits), budget_bytes), fits
    # Not even the last run fits: its longest texts are cut (escaping can double a text's size in markdown).
    room = max(budget_bytes - _size(render(0)), 0) // 2
    last = cut_run(record.runs[-1], room)
    shown = record.model_copy(update={"runs": [last]})
    return _cut(session_markdown(shown, earlier_runs=record.session.run_count - 1), budget_bytes), 1


def cut_run(run: RunRecord, room: int) -> RunRecord:
    """`run` with its input and answer cut to about `room` bytes of JSON together, each cut saying so."""
    texts = {"input": run.input, "content": run.content or ""}
    budget.fit(texts, room)
    return run.model_copy(update={"input": texts["input"], "content": texts["content"] or run.content})


def _cut(markdown: str, budget_bytes: int) -> str:
    """`markdown` whole if it fits, else cut at the budget with a note (a huge state or metadata, say)."""
    encoded = markdown.encode()
    if len(encoded) <= budget_bytes:
        return markdown
    note = CUT_NOTE.format(budget=budget_bytes)
    return encoded[: budget_bytes - len(note.encode())].decode(errors="ignore") + note


def _size(text: str) -> int:
    return len(text.encode())


def protocol_failures(what: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """The error boundary of resources and prompts, as `errors.expected_failures` is the tools': a bad or
    unknown id, a bad cursor or argument becomes INVALID_PARAMS with the store's sentence, another store
    failure INTERNAL_ERROR with its sentence, and an unexpected one a generic line whose cause is logged."""

    def decorate(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(handler)
        async def boundary(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await handler(*args, **kwargs)
            except MCPError:
                raise
            except (SessionNotFound, InvalidInput) as exc:
                raise MCPError(INVALID_PARAMS, str(exc)) from exc
            except StoreError as exc:
                raise MCPError(INTERNAL_ERROR, str(exc)) from exc
            except Exception as exc:
                logger.error("%s failed unexpectedly", what, exc_info=exc)
                raise MCPError(
                    INTERNAL_ERROR,
                    f"The {what} failed unexpectedly; the server logged the cause and is still serving, so retry.",
                ) from exc

        return boundary

    return decorate
