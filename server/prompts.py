"""The `resume_session` prompt: hands a host's own model one of the caller's sessions to continue.

The prompt is one user message: an instruction, then the session as markdown (summary, state, the last
runs with their tool calls), bounded like the `session://` resource. One message rather than the runs as
user/assistant pairs, because:
- a list that ends with an assistant turn is taken as a prefill by the Messages API, and a context message
  before the first run's user turn makes two user turns in a row, which some hosts refuse;
- many hosts flatten a prompt's messages into one attachment or accept only user messages;
- tool calls, a run's status and the state have no place in plain user/assistant text pairs.
"""

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.prompts.base import Message, Prompt, UserMessage
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, InputRequiredResult
from pydantic import Field

from mcp_server_sessions.store import InvalidInput, UserSessions
from mcp_server_sessions.store.limits import HISTORY_RUNS, MAX_HISTORY_RUNS, check_id

from .context import user_sessions
from .resources import bounded_transcript, protocol_failures
from .validation import describe_unknown

RESUME = "resume_session"
INSTRUCTION = (
    "Below is an earlier conversation (session `{session_id}`): its summary and state if it has them, and "
    "{shown}. Continue it: answer the user's next message as the assistant of this conversation, picking up "
    "where it left off. If you have this server's record_run tool, record each new turn with it (session_id "
    "`{session_id}`) so the session stays whole."
)


class ArgumentCheckedPrompt(Prompt):
    """A prompt whose missing or unknown arguments are one sentence, as a tool's are (the SDK answers
    "Internal server error"). The protocol itself refuses arguments that are not strings."""

    async def render(self, arguments: dict[str, Any] | None, context: Any) -> list[Message] | InputRequiredResult:
        given = arguments or {}
        accepted = [argument.name for argument in self.arguments or []]
        unknown = [name for name in given if name not in accepted]
        if unknown:
            raise MCPError(INVALID_PARAMS, describe_unknown(self.name, {"unknown": unknown, "accepted": accepted}))
        missing = [repr(a.name) for a in self.arguments or [] if a.required and a.name not in given]
        if missing:
            it = "it" if len(missing) == 1 else "them"
            raise MCPError(INVALID_PARAMS, f"{self.name} needs {', '.join(missing)}; add {it} and call again.")
        return await super().render(arguments, context)


def register_prompts(server: MCPServer[Any]) -> None:
    prompt = protocol_failures(f"{RESUME} prompt")(resume_session)
    server.add_prompt(ArgumentCheckedPrompt.from_function(prompt, name=RESUME, title="Resume a session"))


async def resume_session(
    ctx: Context,
    session_id: Annotated[str, Field(description="The session to continue (resources/list or list_sessions).")],
    num_runs: Annotated[
        str | None,
        Field(
            description=f"How many of its last runs to include, 0 to {MAX_HISTORY_RUNS}; default: the "
            f"session's num_history_runs, else {HISTORY_RUNS}."
        ),
    ] = None,
) -> list[Message]:
    """One of your sessions (summary, state, last runs) as context for your model to continue it."""
    check_id(session_id, "session_id")
    sessions = user_sessions(ctx, None)
    runs = parse_num_runs(num_runs) if num_runs is not None else await default_runs(sessions, session_id)
    transcript = await bounded_transcript(sessions, session_id, runs)
    shown = "none of its runs" if runs == 0 else f"its last {_runs(runs)} at most"
    return [UserMessage(INSTRUCTION.format(session_id=session_id, shown=shown) + "\n\n" + transcript)]


def parse_num_runs(value: str) -> int:
    """`num_runs` as the protocol sends it (a string), checked: a whole number from 0 to MAX_HISTORY_RUNS."""
    text = value.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 3 and int(text) <= MAX_HISTORY_RUNS):
        shown = repr(value) if len(text) <= 40 else f"{len(text)} characters"
        raise InvalidInput(f"num_runs must be a whole number from 0 to {MAX_HISTORY_RUNS}; got {shown}.")
    return int(text)


async def default_runs(sessions: UserSessions, session_id: str) -> int:
    """The session's own num_history_runs (what `run` puts in context), else HISTORY_RUNS."""
    agent = (await sessions.get_session(session_id)).agent
    wanted = agent.num_history_runs if agent is not None else HISTORY_RUNS
    return min(max(wanted, 0), MAX_HISTORY_RUNS)


def _runs(count: int) -> str:
    return "1 run" if count == 1 else f"{count} runs"
