"""`export` and `import`, run as the real command on both backends: export -> import into an empty database
-> export again gives the same bytes, SQLite -> PostgreSQL -> SQLite and back; export takes the default
user, `--user`, `--session` or `--all-users`; each `--on-conflict`; bad input refused in one line naming
the line, with nothing imported."""

import itertools
import json
import os
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mcp_server_sessions.server.export_format import encode
from mcp_server_sessions.store import NewRun
from mcp_server_sessions.store.records import SessionRecord
from tests.conftest import open_test_store
from tests.postgres_cluster import Cluster
from tests.test_export_format import HOSTILE, session
from tests.test_http_cli import cli, cli_all, one_line_refusal
from tests.test_records import dumped, fill, records

pytestmark = pytest.mark.anyio
_databases = itertools.count()

NewDatabase = Callable[[str], Awaitable[str]]


@pytest.fixture
async def new_database(postgres_cluster: Cluster, tmp_path: Path) -> AsyncIterator[NewDatabase]:
    """Makes an empty database of the backend asked for ("sqlite" or "postgres"); its --db."""
    made: list[str] = []

    async def make(backend: str) -> str:
        name = f"transfer_{next(_databases)}"
        if backend == "sqlite":
            return str(tmp_path / f"{name}.db")
        made.append(name)
        return await postgres_cluster.create_database(name)

    yield make
    for name in made:
        await postgres_cluster.drop_database(name)


def run_of(session_id: str, run_id: str, status: str = "completed", **fields: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "session_id": session_id,
        "status": status,
        "input": f"Input {HOSTILE}",
        "content": None if status == "paused" else f"Output {HOSTILE}",
        "tool_calls": [],
        "metrics": {"input_tokens": 7, "output_tokens": 2, "model": "m-1"},
        "created_at": "2025-03-04T05:06:07.000008Z",
        "messages": [{"role": "user", "content": f"Input {HOSTILE}"}],
        **fields,
    }


TEAM_AND_WORKFLOW = [
    SessionRecord.model_validate(
        {
            "session": session("crew", "default", session_type="team", team_id="team-1", run_count=2),
            "runs": [
                run_of(
                    "crew",
                    "lead",
                    "paused",
                    requirements=[{"tool_call_id": "toolu_9", "tool_name": "confirm", "arguments": {"q": HOSTILE}}],
                    resume={"model": "m-1", "conversation": [{"role": "user", "content": HOSTILE}], "n": 2.5},
                ),
                run_of("crew", "member", parent_run_id="lead", agent_id="agent-1"),
            ],
        }
    ),
    SessionRecord.model_validate(
        {
            "session": session("flow", "default", session_type="workflow", workflow_id="wf-1", run_count=1),
            "runs": [
                run_of(
                    "flow",
                    "wf-run",
                    steps=[
                        {"name": "fetch", "input": {"url": HOSTILE}, "output": [1, None], "duration_ms": 5.5},
                        {"name": "send", "input": None, "output": HOSTILE, "status": "skipped"},
                    ],
                )
            ],
        }
    ),
]
"""A team session with a paused leader run (its requirements and resume state) and a member run, and a
workflow session with steps: what only a record can carry in, written with import_session."""


async def filled(db: str) -> list[SessionRecord]:
    """tests/test_records.py's sample (several users, tool calls, content blocks, metrics, a summary, state,
    NUL characters, a deleted session), a session of the default user holding every kind of line end, and
    its team and workflow sessions; every record, in creation order."""
    store = await open_test_store(db)
    try:
        await fill(store)
        default = store.for_user("default")
        await default.start_session("lines", name=HOSTILE, state={"text": HOSTILE}, metadata={HOSTILE: [HOSTILE]})
        await default.append_run("lines", NewRun.recorded(HOSTILE, f"Reply: {HOSTILE}", run_id="run-x"))
        for record in TEAM_AND_WORKFLOW:
            await store.import_session(record)
        return await records(store)
    finally:
        await store.close()


async def stored(db: str) -> list[SessionRecord]:
    store = await open_test_store(db)
    try:
        return await records(store)
    finally:
        await store.close()


def lines(found: list[SessionRecord]) -> str:
    return "".join(encode(record) for record in found)


def backend_of(db: str) -> str:
    return "postgres" if "://" in db else "sqlite"


async def test_export_import_export_gives_the_same_bytes_on_each_backend_and_across(
    sessions_db: str, new_database: NewDatabase, tmp_path: Path
) -> None:
    """The source's backend -> the other backend -> an empty database of the source's backend: each export
    is byte for byte the store's own records encoded."""
    records = await filled(sessions_db)
    expected = lines(records).encode()
    other = "sqlite" if backend_of(sessions_db) == "postgres" else "postgres"
    hops = [sessions_db, await new_database(other), await new_database(backend_of(sessions_db))]
    sessions, runs = len(records), sum(len(record.runs) for record in records)
    assert (sessions, runs) == (7, 9)
    crew, flow = TEAM_AND_WORKFLOW
    paused = crew.session.model_copy(update={"paused_run_ids": ["lead"]})
    assert records[-2:] == [crew.model_copy(update={"session": paused}), flow]  # stored as given
    previous: Path | None = None
    for hop, db in enumerate(hops):
        if previous is not None:
            imported = cli(tmp_path, "import", str(previous), "--db", db, "--json")
            assert imported.returncode == 0 and imported.stderr == "", imported.stderr
            assert json.loads(imported.stdout) == {
                "sessions": sessions,
                "created": sessions,
                "merged": 0,
                "replaced": 0,
                "skipped": 0,
                "runs_added": runs,
            }
        output = tmp_path / f"hop-{hop}.jsonl"
        done = cli(tmp_path, "export", "--all-users", "--db", db, "-o", str(output))
        assert (done.returncode, done.stdout, done.stderr) == (0, f"Exported 7 sessions (9 runs) to {output}.\n", "")
        assert output.read_bytes() == expected, f"hop {hop} ({backend_of(db)})"
        assert stat.S_IMODE(output.stat().st_mode) == 0o600  # whole conversations: the owner's only
        previous = output
    assert dumped(await stored(hops[-1])) == dumped(records)


async def test_export_takes_the_default_user_a_user_some_sessions_or_all(sessions_db: str, tmp_path: Path) -> None:
    records = await filled(sessions_db)
    out = tmp_path / "out"
    out.mkdir()
    export = ("export", "--db", sessions_db)
    default, alice, chosen, everyone, missing, both = cli_all(
        tmp_path,
        export,
        (*export, "--user", "alice"),
        (*export, "--user", "bob", "--session", "empty", "--session", "trip", "--session", "empty"),
        (*export, "--all-users"),
        (*export, "--user", "bob", "--session", "trip", "--session", "agent", "-o", str(out / "x")),
        (*export, "--all-users", "--session", "trip"),
    )
    for done, user in ((default, "default"), (alice, "alice"), (chosen, "bob")):
        assert (done.returncode, done.stderr) == (0, "")
        assert done.stdout == lines([record for record in records if record.session.user_id == user]), user
    assert [json.loads(line)["session"]["session_id"] for line in chosen.stdout.splitlines()] == ["trip", "empty"]
    assert (everyone.returncode, everyone.stdout, everyone.stderr) == (0, lines(records), "")
    assert one_line_refusal(missing, status=1) == (
        "mcp-server-sessions: User 'bob' has no session 'agent'; `list` shows theirs (or name the user with --user)."
    )
    assert list(out.iterdir()) == []  # no file, no temporary file
    assert one_line_refusal(both, status=2) == (
        "mcp-server-sessions: --session picks sessions of one user (--user); leave out --all-users or --session."
    )


async def test_each_on_conflict_choice(sessions_db: str, tmp_path: Path) -> None:
    """A file of alice's sessions imported back after `trip` gained a run and a new name and `agent` was
    deleted: skip restores `agent` only, merge gives `trip` the file's fields and keeps its new run,
    replace makes both exactly the file's."""
    original = [record for record in await filled(sessions_db) if record.session.user_id == "alice"]
    path = tmp_path / "alice.jsonl"
    path.write_text(lines(original), encoding="utf-8")
    store = await open_test_store(sessions_db)
    try:
        alice = store.for_user("alice")
        await alice.append_run("trip", NewRun.recorded("And in July?", "Midnight sun.", run_id="run-3"))
        await alice.update_session("trip", name="Renamed")
        await alice.delete_session("agent")
        [changed_trip] = [record for record in await records(store) if record.session.user_id == "alice"]
    finally:
        await store.close()
    trip, agent = original

    def alices(found: list[SessionRecord]) -> dict[str, SessionRecord]:
        return {record.session.session_id: record for record in found if record.session.user_id == "alice"}

    skipped = cli(tmp_path, "import", str(path), "--db", sessions_db, "--json")
    assert json.loads(skipped.stdout) == {
        "sessions": 2,
        "created": 1,
        "merged": 0,
        "replaced": 0,
        "skipped": 1,
        "runs_added": 2,
    }
    assert alices(await stored(sessions_db)) == {"trip": changed_trip, "agent": agent}

    merged = cli(tmp_path, "import", str(path), "--db", sessions_db, "--on-conflict", "merge")
    assert (merged.returncode, merged.stderr) == (0, "")
    assert (
        merged.stdout == f"Imported 2 sessions from {path}: 0 created, 2 merged, 0 replaced, 0 skipped; 0 runs added.\n"
    )
    after_merge = alices(await stored(sessions_db))
    assert after_merge["agent"] == agent
    assert after_merge["trip"].session.name == trip.session.name
    assert after_merge["trip"].runs == [*trip.runs, changed_trip.runs[-1]]

    replaced = cli(tmp_path, "import", str(path), "--db", sessions_db, "--on-conflict", "replace", "--json")
    assert json.loads(replaced.stdout) == {
        "sessions": 2,
        "created": 0,
        "merged": 0,
        "replaced": 2,
        "skipped": 0,
        "runs_added": 0,
    }
    assert alices(await stored(sessions_db)) == {"trip": trip, "agent": agent}


def renamed(record: SessionRecord, session_id: str) -> SessionRecord:
    """The record as another session of its user (a session the database does not hold yet)."""
    runs = [run.model_copy(update={"session_id": session_id}) for run in record.runs]
    return record.model_copy(
        update={"session": record.session.model_copy(update={"session_id": session_id}), "runs": runs}
    )


async def test_bad_input_is_one_line_and_imports_nothing(db_path: Path, tmp_path: Path) -> None:
    records = await filled(str(db_path))
    fresh = [renamed(records[0], "new-1"), renamed(records[1], "new-2")]
    broken = tmp_path / "broken.jsonl"
    broken.write_text(lines(fresh) + '{"format":"mcp-server-sessions/1","session":{\n', encoding="utf-8")
    twice = tmp_path / "twice.jsonl"
    twice.write_text(lines([fresh[0], fresh[1], fresh[0]]), encoding="utf-8")
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(4096))
    folder = tmp_path / "folder"
    folder.mkdir()
    absent_db = tmp_path / "absent.db"
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    commands = [
        ("import", str(broken), "--db", str(db_path)),
        ("import", str(twice), "--db", str(db_path), "--on-conflict", "replace"),
        ("import", str(photo), "--db", str(absent_db)),
        ("import", str(tmp_path / "missing.jsonl"), "--db", str(db_path)),
        ("import", str(folder), "--db", str(db_path)),
        ("import", str(photo / "inside.jsonl"), "--db", str(db_path)),
        ("import", str(pipe), "--db", str(db_path)),
    ]
    refusals = [one_line_refusal(done, status=1) for done in cli_all(tmp_path, *commands)]
    assert refusals == [
        f"mcp-server-sessions: {broken} line 3 is not JSON (the error is at character 47); "
        "fix or remove it, then import again.",
        f"mcp-server-sessions: {twice} line 3 holds session 'new-1' of user 'alice' again (first at {twice} line 1); "
        "keep one of the two, then import again.",
        f"mcp-server-sessions: {photo} is not JSON Lines (line 1 is not UTF-8 text); name a file that `export` wrote.",
        f"mcp-server-sessions: There is no file {tmp_path / 'missing.jsonl'}; name a file that `export` wrote.",
        f"mcp-server-sessions: {folder} is a directory; name a file that `export` wrote (a directory of Claude Code "
        "transcripts takes --from claude-code).",
        f"mcp-server-sessions: Cannot read {photo / 'inside.jsonl'} (Not a directory); make it readable.",
        f"mcp-server-sessions: {pipe} is not a regular file, and import reads its input twice (to check it, then "
        "to write it); save it to a file first.",
    ]
    assert dumped(await stored(str(db_path))) == dumped(records)  # the good lines before the bad one: not imported
    assert not absent_db.exists()  # checked before the store was opened


async def test_an_output_export_cannot_write_is_one_line_and_an_old_file_stays_whole(
    db_path: Path, tmp_path: Path
) -> None:
    await filled(str(db_path))
    kept = tmp_path / "kept.jsonl"
    kept.write_text("the previous export\n")
    export = ("export", "--db", str(db_path), "--all-users", "-o")
    folder, nowhere, failed = cli_all(
        tmp_path,
        (*export, str(tmp_path)),
        (*export, str(tmp_path / "no" / "such.jsonl")),
        ("export", "--db", str(db_path), "--session", "nope", "-o", str(kept)),
    )
    assert one_line_refusal(folder, status=1) == (
        f"mcp-server-sessions: {tmp_path} is a directory; name a file to write the sessions to."
    )
    assert one_line_refusal(nowhere, status=1) == (
        f"mcp-server-sessions: Cannot write {tmp_path / 'no' / 'such.jsonl'} (No such file or directory); "
        "name a file in a directory you can write to."
    )
    assert one_line_refusal(failed, status=1) == (
        "mcp-server-sessions: User 'default' has no session 'nope'; `list` shows theirs (or name the user with --user)."
    )
    assert kept.read_text() == "the previous export\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["home", "kept.jsonl", "sessions.db"]
