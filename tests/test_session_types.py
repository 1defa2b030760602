"""Team and workflow sessions: the session's type and owners, member runs under a leader's run, workflow
steps, paused runs listed on the session; stored alike on SQLite and PostgreSQL and kept by records."""

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mcp_server_sessions.store import (
    NewMessage,
    NewRun,
    Requirement,
    SessionKind,
    SessionStore,
    SqliteStore,
    WorkflowStep,
)
from mcp_server_sessions.store.limits import MAX_STEPS_PER_RUN
from mcp_server_sessions.store.sqlite_schema import MIGRATIONS, migrate
from tests.anthropic_double import MessagesDouble, text
from tests.helpers import call_error, call_ok
from tests.test_agent_run import user_texts

pytestmark = pytest.mark.anyio

STEPS = [
    WorkflowStep(name="fetch", input={"url": "https://example.com"}, output="page text", duration_ms=12.5),
    WorkflowStep(name="summarize", input="page text", output={"summary": "kayak fjords"}, status="error"),
]


def paused_run(run_id: str) -> NewRun:
    return NewRun(
        run_id=run_id,
        input="book it",
        content=None,
        status="paused",
        messages=[NewMessage(role="user", content="book it")],
        requirements=[Requirement(tool_call_id="toolu_1", tool_name="book", arguments={"day": "mon"})],
        resume={"messages": [{"role": "user", "content": "book it"}], "model": "claude-x"},
    )


async def test_a_version_5_file_upgrades_in_place_keeping_its_rows(db_path: Path) -> None:
    with sqlite3.connect(db_path, isolation_level=None) as conn:
        assert migrate(conn, MIGRATIONS[:5]) == 5
        conn.execute("INSERT INTO users (user_id) VALUES ('alice')")
        conn.execute(
            "INSERT INTO sessions (user_pk, session_id, name, run_count, created_at, updated_at) "
            "VALUES ((SELECT pk FROM users WHERE user_id = 'alice'), 's1', 'Old', 2, "
            "'2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z')"
        )
        for pk, status in ((1, "completed"), (2, "paused")):
            conn.execute(
                "INSERT INTO runs (pk, session_pk, run_id, status, input, content, created_at) "
                f"VALUES (?, 1, 'r{pk}', ?, 'hello', 'hi', '2024-01-01T00:00:00.000000Z')",
                (pk, status),
            )
            conn.execute(
                "INSERT INTO messages (session_pk, run_pk, role, content) VALUES (1, ?, 'user', 'hello')", (pk,)
            )
    store = await SqliteStore.open(db_path)
    try:
        alice = store.for_user("alice")
        session = await alice.get_session("s1")
        assert (session.name, session.run_count, session.session_type) == ("Old", 2, "agent")
        assert (session.agent_id, session.team_id, session.workflow_id, session.paused_run_ids) == (
            None,
            None,
            None,
            ["r2"],
        )
        history = await alice.get_chat_history("s1")
        assert [(m.run_id, m.content) for m in history.messages] == [("r1", "hello"), ("r2", "hello")]
        record = await alice.session_record("s1")
        assert [(r.run_id, r.steps, r.requirements, r.resume, r.parent_run_id) for r in record.runs] == [
            ("r1", [], [], None, None),
            ("r2", [], [], None, None),
        ]
    finally:
        await store.close()
    with sqlite3.connect(db_path) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [migration.version for migration in MIGRATIONS]


async def test_new_run_fields_are_stored_read_back_and_kept_by_records(store: SessionStore) -> None:
    alice = store.for_user("alice")
    leader = NewRun.recorded("plan the trip", "asking the team", run_id="lead")
    await alice.append_run("t1", leader, kind=SessionKind("team", team_id="travel"))
    member = NewRun.recorded("find kayaks", "found two", run_id="m1")
    member.parent_run_id, member.agent_id, member.steps = "lead", "scout", STEPS
    stored, written = await alice.append_run("t1", member)
    assert written and (stored.parent_run_id, stored.agent_id, stored.steps) == ("lead", "scout", STEPS)
    await alice.append_run("t1", paused_run("p1"))
    await alice.append_run("t1", paused_run("p2"))
    session = await alice.get_session("t1")
    assert (session.session_type, session.team_id, session.paused_run_ids) == ("team", "travel", ["p1", "p2"])
    listed = await alice.list_sessions()
    assert listed.sessions == [session]

    record = await alice.session_record("t1")
    assert [(r.run_id, r.parent_run_id, r.agent_id, r.status) for r in record.runs] == [
        ("lead", None, None, "completed"),
        ("m1", "lead", "scout", "completed"),
        ("p1", None, None, "paused"),
        ("p2", None, None, "paused"),
    ]
    assert record.runs[1].steps == STEPS and record.runs[0].steps == []
    assert record.runs[2].requirements == paused_run("p1").requirements
    assert record.runs[2].resume == paused_run("p1").resume
    assert record.session == session

    bobs = record.model_copy(update={"session": session.model_copy(update={"user_id": "bob"})})
    assert (await store.import_session(bobs)).runs_added == 4
    copied = await store.for_user("bob").session_record("t1")
    assert copied.runs == record.runs
    assert copied.session.model_dump(exclude={"user_id"}) == session.model_dump(exclude={"user_id"})


# -- over MCP -------------------------------------------------------------------------------------

KINDS = {
    "a1": {"agent_id": "writer"},
    "a2": {"agent_id": "coder"},
    "t1": {"session_type": "team", "team_id": "travel"},
    "t2": {"session_type": "team", "team_id": "travel", "agent_id": "writer"},
    "w1": {"session_type": "workflow", "workflow_id": "etl"},
}


async def start_kinds(client: Client, user_id: str = "alice") -> None:
    for session_id, kind in KINDS.items():
        await call_ok(client, "start_session", session_id=session_id, user_id=user_id, **kind)


async def listed_ids(client: Client, **filters: Any) -> list[str]:
    page = await call_ok(client, "list_sessions", **filters)
    assert page["total"] == len(page["sessions"]) and page["next_cursor"] is None
    return [session["session_id"] for session in page["sessions"]]


async def test_start_session_sets_the_type_and_ids_once(client: Client) -> None:
    started = await call_ok(client, "start_session", session_id="t1", session_type="team", team_id="travel")
    assert {key: started[key] for key in ("session_type", "agent_id", "team_id", "workflow_id", "paused_run_ids")} == {
        "session_type": "team",
        "agent_id": None,
        "team_id": "travel",
        "workflow_id": None,
        "paused_run_ids": [],
    }
    again = await call_ok(client, "start_session", session_id="t1", session_type="team", team_id="other")
    assert again == {**started, "created": False}  # an existing session is returned unchanged
    plain = await call_ok(client, "start_session", session_id="a1")
    assert (plain["session_type"], plain["agent_id"]) == ("agent", None)


async def test_list_sessions_filters_by_each_and_combined(client: Client) -> None:
    await start_kinds(client)
    assert await listed_ids(client, session_type="team") == ["t2", "t1"]
    assert await listed_ids(client, session_type="agent") == ["a2", "a1"]
    assert await listed_ids(client, agent_id="writer") == ["t2", "a1"]
    assert await listed_ids(client, team_id="travel") == ["t2", "t1"]
    assert await listed_ids(client, workflow_id="etl") == ["w1"]
    assert await listed_ids(client, session_type="team", agent_id="writer") == ["t2"]
    assert await listed_ids(client, session_type="workflow", team_id="travel") == []
    assert await listed_ids(client, team_id="travel", order="asc", sort_by="created_at") == ["t1", "t2"]


async def test_filtered_pages_follow_their_cursor_and_the_cursor_stays_bound(client: Client) -> None:
    await start_kinds(client)
    first = await call_ok(client, "list_sessions", agent_id="writer", limit=1)
    assert ([s["session_id"] for s in first["sessions"]], first["total"]) == (["t2"], 2)
    second = await call_ok(client, "list_sessions", agent_id="writer", limit=1, cursor=first["next_cursor"])
    assert ([s["session_id"] for s in second["sessions"]], second["total"], second["next_cursor"]) == (["a1"], 2, None)
    message = await call_error(client, "list_sessions", agent_id="coder", limit=1, cursor=first["next_cursor"])
    assert "cursor" in message
    assert "cursor" in await call_error(client, "list_sessions", limit=1, cursor=first["next_cursor"])


async def test_another_users_sessions_never_pass_a_filter(client: Client) -> None:
    await start_kinds(client, user_id="alice")
    await call_ok(client, "start_session", session_id="b1", user_id="bob", session_type="team", team_id="travel")
    assert await listed_ids(client, user_id="bob", team_id="travel") == ["b1"]
    assert await listed_ids(client, user_id="bob", agent_id="writer") == []
    assert await listed_ids(client, user_id="bob", session_type="workflow") == []
    assert await listed_ids(client, user_id="carol", team_id="travel") == []


async def test_a_different_session_type_is_refused_and_changes_nothing(client: Client) -> None:
    await call_ok(client, "record_run", session_id="t1", input="plan", output="ok", session_type="team", run_id="L1")
    before = await call_ok(client, "get_session", session_id="t1")
    message = await call_error(client, "start_session", session_id="t1", session_type="workflow")
    assert message == ("Session 't1' has session_type 'team', not 'workflow'; leave session_type out or pass 'team'.")
    assert await call_error(client, "record_run", session_id="t1", input="more", output="no", session_type="agent") == (
        "Session 't1' has session_type 'team', not 'agent'; leave session_type out or pass 'team'."
    )
    assert await call_ok(client, "get_session", session_id="t1") == before
    same = await call_ok(client, "record_run", session_id="t1", input="more", output="yes", session_type="team")
    assert same["status"] == "completed"
    assert (await call_ok(client, "get_session", session_id="t1"))["run_count"] == 2


async def test_a_parent_run_must_be_a_run_of_the_same_session(client: Client) -> None:
    await call_ok(client, "record_run", session_id="t1", input="plan", output="ok", run_id="L1")
    await call_ok(client, "record_run", session_id="t2", input="other", output="ok", run_id="X1")
    for session_id, parent in (("t1", "X1"), ("t1", "nope"), ("t9", "L1")):
        message = await call_error(
            client, "record_run", session_id=session_id, input="member", output="m", parent_run_id=parent
        )
        assert message == (
            f"parent_run_id {parent!r} is not a run of session {session_id!r}; record the leader's run "
            "in this session first and name its run_id."
        )
    assert (await call_ok(client, "get_session", session_id="t1"))["run_count"] == 1
    assert "t9" in await call_error(client, "get_session", session_id="t9")  # not started by the failed call
    # bob's session t1 holds no run L1 of alice's
    assert "'L1'" in await call_error(
        client, "record_run", session_id="t1", user_id="bob", input="m", output="m", parent_run_id="L1"
    )


async def record_team(client: Client) -> None:
    await call_ok(
        client,
        "record_run",
        session_id="t1",
        input="plan the trip",
        output="asked the team",
        run_id="L1",
        session_type="team",
        team_id="travel",
        agent_id="leader",
    )
    member = await call_ok(
        client,
        "record_run",
        session_id="t1",
        input="find kayaks",
        output="member secret: two kayaks",
        run_id="M1",
        parent_run_id="L1",
        agent_id="scout",
        tool_calls=[{"tool_name": "rentals", "arguments": {"q": "kayak"}, "result": "two"}],
    )
    assert (member["parent_run_id"], member["agent_id"]) == ("L1", "scout")
    await call_ok(client, "record_run", session_id="t1", input="book it", output="booked", run_id="L2")


async def test_team_history_is_the_leaders_unless_member_runs_are_asked_for(client: Client) -> None:
    await record_team(client)
    leader = await call_ok(client, "get_chat_history", session_id="t1")
    assert [(m["run_id"], m["role"], m["content"]) for m in leader["messages"]] == [
        ("L1", "user", "plan the trip"),
        ("L1", "assistant", "asked the team"),
        ("L2", "user", "book it"),
        ("L2", "assistant", "booked"),
    ]
    whole = await call_ok(client, "get_chat_history", session_id="t1", include_member_runs=True)
    assert [(m["run_id"], m["content"]) for m in whole["messages"]] == [
        ("L1", "plan the trip"),
        ("L1", "asked the team"),
        ("M1", "find kayaks"),
        ("M1", "member secret: two kayaks"),
        ("L2", "book it"),
        ("L2", "booked"),
    ]
    last = await call_ok(client, "get_chat_history", session_id="t1", last_n_runs=1)
    assert [m["run_id"] for m in last["messages"]] == ["L2", "L2"]
    last_two = await call_ok(client, "get_chat_history", session_id="t1", last_n_runs=2, include_member_runs=True)
    assert [m["run_id"] for m in last_two["messages"]] == ["M1", "M1", "L2", "L2"]
    assert (await call_ok(client, "get_tool_call_history", session_id="t1"))["tool_calls"] == []
    calls = await call_ok(client, "get_tool_call_history", session_id="t1", include_member_runs=True)
    assert [(c["run_id"], c["tool_name"]) for c in calls["tool_calls"]] == [("M1", "rentals")]
    paged = await call_ok(client, "get_chat_history", session_id="t1", limit=1, include_member_runs=True)
    assert "cursor" in await call_error(client, "get_chat_history", session_id="t1", cursor=paged["next_cursor"])


async def test_the_model_context_of_run_holds_the_leaders_turns_only(
    agent_client: Client, double: MessagesDouble
) -> None:
    await record_team(agent_client)
    double.script(text("noted"))
    await call_ok(agent_client, "run", message="what next?", session_id="t1")
    assert user_texts(double.bodies[-1]) == [
        "user: plan the trip",
        "assistant: asked the team",
        "user: book it",
        "assistant: booked",
        "user: what next?",
    ]
    assert "member secret" not in json.dumps(double.bodies[-1])


async def test_workflow_steps_are_returned_searchable_and_hidden_from_plain_history(client: Client) -> None:
    steps = [
        {"name": "extract", "input": {"source": "crm"}, "output": "twelve rows", "duration_ms": 3.5},
        {"name": "transform", "input": "twelve rows", "output": {"normalized": "glacier"}, "status": "error"},
    ]
    run = await call_ok(
        client,
        "record_run",
        session_id="w1",
        input="nightly",
        output="done",
        run_id="R1",
        session_type="workflow",
        workflow_id="etl",
        steps=steps,
    )
    assert run["steps"] == [{**steps[0], "status": "completed"}, {**steps[1], "duration_ms": None}]
    assert (await call_ok(client, "get_session", session_id="w1"))["session_type"] == "workflow"
    plain = await call_ok(client, "get_chat_history", session_id="w1")
    assert [m["content"] for m in plain["messages"]] == ["nightly", "done"]
    whole = await call_ok(client, "get_chat_history", session_id="w1", include_tool_messages=True)
    assert [m["content"] for m in whole["messages"]] == [
        "nightly",
        'step extract (completed): {"source": "crm"} -> twelve rows',
        'step transform (error): twelve rows -> {"normalized": "glacier"}',
        "done",
    ]
    hits = (await call_ok(client, "search_previous_sessions", query="glaciers"))["results"]
    assert [(h["session_id"], h["run_id"], h["role"]) for h in hits] == [("w1", "R1", "tool")]
    assert (await call_ok(client, "search_previous_sessions", query="glacier", user_id="bob"))["results"] == []
    too_many = [{"name": f"s{i}"} for i in range(MAX_STEPS_PER_RUN + 1)]
    assert "steps" in await call_error(client, "record_run", session_id="w1", input="x", output="y", steps=too_many)
    assert await call_error(
        client, "record_run", session_id="w1", input="x", output="y", steps=[{"name": "s", "colour": "red"}]
    )
    assert (await call_ok(client, "get_session", session_id="w1"))["run_count"] == 1
