"""The Agno sessions the importer tests bring in, built with the real agno package (no model call: the
objects are made directly), and written as Agno 3.x's SqliteDb writes them and as Agno 2.x's did."""

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agno.db.sqlite import SqliteDb
from agno.metrics import RunMetrics, ToolCallMetrics
from agno.models.message import Message
from agno.models.response import ToolExecution
from agno.run.agent import RunInput, RunOutput
from agno.run.base import RunStatus
from agno.run.team import TeamRunInput, TeamRunOutput
from agno.run.workflow import WorkflowRunOutput
from agno.session import AgentSession, TeamSession, WorkflowSession
from agno.session.summary import SessionSummary
from agno.workflow.types import StepOutput, WorkflowMetrics

T0 = 1_700_000_000
"""The sessions' times are seconds after this one."""

AnySession = AgentSession | TeamSession | WorkflowSession


def agno_message(role: str, content: str | None, seconds: int, **fields: Any) -> Message:
    return Message(role=role, content=content, created_at=T0 + seconds, **fields)


def agno_run(run_id: str, session_id: str, prompt: str, content: str | None, seconds: int, **fields: Any) -> RunOutput:
    """An agent's run, completed unless `fields` say otherwise."""
    fields = {"status": RunStatus.completed, **fields}
    question = RunInput(input_content=prompt)
    return RunOutput(
        run_id=run_id, session_id=session_id, input=question, content=content, created_at=T0 + seconds, **fields
    )


def agno_tool(
    call_id: str, name: str, arguments: dict[str, Any], result: str, seconds: int, **fields: Any
) -> ToolExecution:
    return ToolExecution(
        tool_call_id=call_id, tool_name=name, tool_args=arguments, result=result, created_at=T0 + seconds, **fields
    )


def agno_tokens(input_tokens: int, output_tokens: int, **fields: Any) -> RunMetrics:
    total = input_tokens + output_tokens
    return RunMetrics(input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=total, **fields)


def agno_sessions() -> list[AnySession]:
    return [agent_session(), team_session(), workflow_session()]


def agent_session() -> AgentSession:
    """Alice's: its name, state, metadata and summary, a run with a tool call and its messages (the system
    prompt among them), and a run that ended in error, its messages repeating the first run's."""
    weather = agno_tool(
        "call_weather", "get_weather", {"city": "Oslo"}, "Sunny, 21 °C", 11, metrics=ToolCallMetrics(duration=0.25)
    )
    asks = [{"id": "call_weather", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]
    answer = "Sunny and 21 °C in Oslo."
    messages = [
        agno_message("system", "You report the weather.", 10),
        agno_message("user", "What is the weather in Oslo?", 10),
        agno_message("assistant", None, 11, tool_calls=asks),
        agno_message(
            "tool", "Sunny, 21 °C", 12, tool_call_id="call_weather", tool_name="get_weather", tool_args={"city": "Oslo"}
        ),
        agno_message("assistant", answer, 13),
    ]
    figures = agno_tokens(120, 30, cache_read_tokens=100, duration=1.5, time_to_first_token=0.4)
    first = agno_run(
        "run-1",
        "oslo-weather",
        "What is the weather in Oslo?",
        answer,
        10,
        agent_id="weather-agent",
        model="gpt-4o",
        messages=messages,
        tools=[weather],
        metrics=figures,
    )
    again = [
        agno_message("system", "You report the weather.", 20),
        *(m.model_copy(update={"from_history": True}) for m in (messages[1], messages[4])),
        agno_message("user", "And tomorrow?", 20),
    ]
    second = agno_run(
        "run-2",
        "oslo-weather",
        "And tomorrow?",
        None,
        20,
        status=RunStatus.error,
        agent_id="weather-agent",
        model="gpt-4o",
        messages=again,
        metrics=agno_tokens(200, 0),
    )
    summary = SessionSummary(
        summary="Alice asked about Oslo.", topics=["weather", "Oslo"], updated_at=datetime.fromtimestamp(T0 + 15, UTC)
    )
    state = {"session_name": "Weather in Oslo", "session_state": {"city": "Oslo", "units": "metric"}}
    return AgentSession(
        session_id="oslo-weather",
        agent_id="weather-agent",
        user_id="alice",
        session_data=state,
        agent_data={"name": "Weather agent"},
        metadata={"channel": "slack"},
        summary=summary,
        created_at=T0,
        runs=[first, second],
    )


def team_session() -> TeamSession:
    """Of no user: the leader delegates to a member, whose run is both inside the team's run and a run of
    its own in the session (as Agno stores member runs)."""
    flights = agno_tool("call_flights", "search_flights", {"to": "OSL"}, "SK4035", 102)
    member = agno_run(
        "member-run",
        "trip",
        "Find flights to Oslo",
        "SK4035 at 09:10.",
        101,
        parent_run_id="team-run",
        agent_id="researcher",
        model="claude-sonnet-4-5",
        tools=[flights],
        metrics=agno_tokens(50, 20),
    )
    task = {"member_id": "researcher", "task": "Find flights to Oslo"}
    delegate = agno_tool(
        "call_delegate", "delegate_task_to_member", task, "SK4035 at 09:10.", 101, child_run_id="member-run"
    )
    said = [agno_message("user", "Plan my trip to Oslo", 100), agno_message("assistant", "Take SK4035 at 09:10.", 103)]
    leader = TeamRunOutput(
        run_id="team-run",
        team_id="travel-team",
        session_id="trip",
        input=TeamRunInput(input_content="Plan my trip to Oslo"),
        content="Take SK4035 at 09:10.",
        model="gpt-4o",
        status=RunStatus.completed,
        created_at=T0 + 100,
        member_responses=[member],
        tools=[delegate],
        metrics=agno_tokens(300, 40, duration=4.0),
        messages=said,
    )
    state = {"session_state": {"destination": "Oslo"}}
    return TeamSession(
        session_id="trip",
        team_id="travel-team",
        team_data={"name": "Travel team"},
        session_data=state,
        created_at=T0 + 100,
        runs=[leader, member],
    )


def workflow_session() -> WorkflowSession:
    """Bob's: a function step, a step an agent ran, a step that failed."""
    writer = agno_run(
        "writer-run",
        "blog",
        "Write about Oslo",
        "Oslo is green.",
        201,
        agent_id="writer",
        model="claude-haiku-4-5",
        metrics=agno_tokens(80, 200),
    )
    steps = [
        StepOutput(
            step_name="research",
            step_id="step-research",
            executor_type="function",
            executor_name="fetch_facts",
            content="Oslo has forests.",
        ),
        StepOutput(
            step_name="write",
            step_id="step-write",
            executor_type="agent",
            executor_name="Writer",
            content="Oslo is green.",
            step_run_id="writer-run",
        ),
        StepOutput(
            step_name="publish",
            step_id="step-publish",
            executor_type="function",
            executor_name="publish",
            success=False,
            error="CMS unreachable",
        ),
    ]
    run = WorkflowRunOutput(
        run_id="workflow-run",
        workflow_id="blog-workflow",
        session_id="blog",
        input="Oslo",
        content="Oslo is green.",
        status=RunStatus.completed,
        created_at=T0 + 200,
        step_results=steps,
        step_executor_runs=[writer],
        metrics=WorkflowMetrics(steps={}, duration=6.5),
    )
    data = {"session_name": "Blog post about Oslo"}
    return WorkflowSession(
        session_id="blog",
        workflow_id="blog-workflow",
        user_id="bob",
        session_data=data,
        workflow_data={"name": "Blog"},
        created_at=T0 + 200,
        runs=[run],
    )


def write_agno_3(path: Path, sessions: list[AnySession]) -> Path:
    """The sessions as Agno 3.x's SqliteDb writes them: a session row, then a row per run."""
    db = SqliteDb(db_file=str(path))
    for found in sessions:
        db.upsert_session(found)
        for index, run in enumerate(found.runs or []):
            db.upsert_run(run, session_id=found.session_id, user_id=found.user_id, run_index=index)
    db.close()
    return path


_V2_COLUMNS = (
    "session_id", "session_type", "agent_id", "team_id", "workflow_id", "user_id", "session_data", "agent_data",
    "team_data", "workflow_data", "metadata", "runs", "summary", "created_at", "updated_at",
)  # fmt: skip
_V2_JSON = {"session_data", "agent_data", "team_data", "workflow_data", "metadata", "runs", "summary"}


def write_agno_2(path: Path, sessions: list[AnySession]) -> Path:
    """The sessions as Agno 2.x's SqliteDb wrote them: one row each, its runs in the row's `runs` column;
    its JSON columns through json.dumps (serialize_session_json_fields) and again by SQLAlchemy's JSON type."""
    kinds = {AgentSession: "agent", TeamSession: "team", WorkflowSession: "workflow"}
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE agno_sessions ({', '.join(_V2_COLUMNS)}, PRIMARY KEY (session_id))")
        for found in sessions:
            row = {**found.to_dict(), "session_type": kinds[type(found)], "updated_at": found.created_at}
            values = [
                json.dumps(json.dumps(row.get(column)))
                if column in _V2_JSON and row.get(column) is not None
                else row.get(column)
                for column in _V2_COLUMNS
            ]
            db.execute(f"INSERT INTO agno_sessions VALUES ({', '.join('?' * len(values))})", values)
    db.close()
    return path
