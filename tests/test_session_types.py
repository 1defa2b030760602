"""Team and workflow sessions: the session's type and owners, member runs under a leader's run, workflow
steps, paused runs listed on the session; stored alike on SQLite and PostgreSQL and kept by records."""

import sqlite3
from pathlib import Path

import pytest

from mcp_server_sessions.store import (
    NewMessage,
    NewRun,
    Requirement,
    SessionKind,
    SessionStore,
    SqliteStore,
    WorkflowStep,
)
from mcp_server_sessions.store.sqlite_schema import MIGRATIONS, migrate

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
        assert [row[0] for row in conn.execute("SELECT version FROM schema_migrations")] == [1, 2, 3, 4, 5, 6]


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
