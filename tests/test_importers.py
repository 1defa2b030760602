"""`import --from agno|claude-code`: the importers' records compared whole with the expected ones in
tests/data/expected/, each passing the store's own checks, then the installed command run on them.

Agno files are written by the real agno package (tests/data/agno_sessions.py): by its own SqliteDb (3.x),
and in the 2.x layout (the runs in a column of twice-encoded JSON). Claude Code transcripts are the
realistic samples in tests/data/claude_code/ and the odd entries of tests/data/claude_code_odd/. A grown
transcript imported again adds only its new turns; a last turn still in progress is left out until it
completes, so importing it later adds it whole; a file of the wrong kind is one sentence and nothing
is imported."""

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agno.models.response import ToolExecution
from agno.run.agent import RunInput, RunOutput
from agno.run.base import RunStatus
from agno.session import AgentSession

from mcp_server_sessions.server.importers import SourceError
from mcp_server_sessions.server.importers.agno import agno_records
from mcp_server_sessions.server.importers.claude_code import claude_code_records
from mcp_server_sessions.store.record_checks import prepare_record
from mcp_server_sessions.store.records import SessionRecord
from tests.conftest import open_test_store
from tests.data.agno_sessions import T0, agno_sessions, write_agno_2, write_agno_3
from tests.test_http_cli import cli, cli_all, one_line_refusal
from tests.test_records import records

pytestmark = pytest.mark.anyio

DATA = Path(__file__).parent / "data"
SAMPLES = DATA / "claude_code"
WEATHER = SAMPLES / "5d0b2f3c-8a4e-4c1b-9f2e-7c6d1a2b3c4d.jsonl"
RETRY = SAMPLES / "9c1e6f7a-2b3d-4e5f-8a9b-0c1d2e3f4a5b.jsonl"
HINT = "name a transcript Claude Code wrote under ~/.claude/projects/ (an Agno database goes with --from agno)"

Reader = Callable[[Path, str], Iterator[SessionRecord]]


def expected(name: str) -> list[dict[str, Any]]:
    """The records of tests/data/expected/NAME.json (a field the file leaves out has its default)."""
    found = json.loads((DATA / "expected" / f"{name}.json").read_text())
    return [SessionRecord.model_validate(record).model_dump() for record in found]


def checked(found: Iterator[SessionRecord]) -> list[dict[str, Any]]:
    """The records, each passing the store's own checks, as plain values."""
    values = []
    for record in found:
        prepare_record(record)
        values.append(record.model_dump())
    return values


def refusal(read: Reader, path: Path) -> str:
    with pytest.raises(SourceError) as refused:
        list(read(path, "ada"))
    return str(refused.value)


def test_an_agno_3_file_gives_each_session_whole(tmp_path: Path) -> None:
    """An agent session (its state, summary, a tool call, an error run that repeats history), a team session
    of no user (the member's run a run of its own, after the leader's it served), a workflow session (its
    steps, and the run of the step an agent ran)."""
    path = write_agno_3(tmp_path / "agno.db", agno_sessions())
    assert checked(agno_records(path, "default")) == expected("agno")


def test_an_agno_2_file_gives_the_same_sessions(tmp_path: Path) -> None:
    path = write_agno_2(tmp_path / "agno2.db", agno_sessions())
    assert checked(agno_records(path, "default")) == expected("agno")


def test_a_migrated_agno_file_reads_runs_from_both_places_the_table_winning(tmp_path: Path) -> None:
    """A 2.x file migrated to 3.x keeps its runs column beside the runs table: Agno reads the column's runs
    in their order, each as the table has it, then the runs only the table has."""
    sessions = agno_sessions()[:1]
    path = write_agno_3(tmp_path / "migrated.db", sessions)
    hello = RunInput(input_content="Hello")
    older = RunOutput(run_id="run-0", input=hello, content="Hi!", status=RunStatus.completed, created_at=T0 + 5)
    stale = sessions[0].runs[0].to_dict() | {"content": "A stale copy."}  # type: ignore[index]
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE agno_sessions ADD COLUMN runs JSON")
        db.execute("UPDATE agno_sessions SET runs = ?", (json.dumps([older.to_dict(), stale]),))
    db.close()
    [record] = checked(agno_records(path, "default"))
    assert [(run["run_id"], run["content"]) for run in record["runs"]] == [
        ("run-0", "Hi!"),
        ("run-1", "Sunny and 21 °C in Oslo."),
        ("run-2", None),
    ]
    assert (record["session"]["run_count"], record["session"]["summary"]["run_count"]) == (3, 2)


def test_agno_values_that_do_not_fit_are_mapped_the_same_way_each_time(tmp_path: Path) -> None:
    """A session, user or agent id of other characters gets a stable id made from it (the original kept in
    metadata); a run of 130 tool calls becomes runs of at most 128; a result over the size limit is cut."""
    tools = [
        ToolExecution(tool_call_id=f"c{n}", tool_name="count", tool_args={"n": n}, result=str(n), created_at=T0)
        for n in range(129)
    ]
    tools.append(ToolExecution(tool_call_id="c-big", tool_name="dump", result="x" * 1_500_000, created_at=T0 + 1))
    count = RunInput(input_content="Count")
    run = RunOutput(
        run_id="big run", input=count, content="Done.", status=RunStatus.completed, created_at=T0, tools=tools
    )
    ids = {"session_id": "weekly sync #3", "user_id": "Ada Lovelace", "agent_id": "Counter Bot"}
    meeting = AgentSession(**ids, created_at=T0, runs=[run])
    path = write_agno_3(tmp_path / "ids.db", [meeting])
    [record] = checked(agno_records(path, "default"))
    assert checked(agno_records(path, "default")) == [record]

    def made(kind: str, raw: bytes) -> str:
        return f"{kind}-{hashlib.sha256(raw).hexdigest()[:40]}"

    session, run_id = record["session"], made("run", b"big run")
    made_ids = (made("session", b"weekly sync #3"), made("user", b"Ada Lovelace"), made("agent", b"Counter Bot"))
    assert (session["session_id"], session["user_id"], session["agent_id"]) == made_ids
    assert session["metadata"] == {"imported_from": {"source": "agno", **ids}}
    assert [(run["run_id"], len(run["tool_calls"]), run["content"]) for run in record["runs"]] == [
        (run_id, 128, "Done."),
        (f"{run_id}:2", 2, None),
    ]
    cut = record["runs"][1]["tool_calls"][1]["result"]
    note = "\n… [cut on import: 1,500,000 bytes in all]"
    assert cut == "x" * (len(cut) - len(note)) + note and 990_000 < len(cut.encode()) < 1_000_000
    lines = [message["content"] for message in record["runs"][1]["messages"]]
    assert lines == ['count({"n": 128}) -> 128', "dump({}) -> " + "x" * 1_987 + "…"]


def test_claude_code_transcripts_give_each_session_whole() -> None:
    """A directory's transcripts in path order. The first: a turn of tool calls (one failing, with its
    duration), a second turn, usage counted once per response, its summary line as the name. The second:
    a local command, a meta entry, a rejected edit and an interruption, /compact and the summary it wrote,
    the first prompt as the name."""
    assert checked(claude_code_records(SAMPLES, "ada")) == expected("claude_code")
    assert checked(claude_code_records(RETRY, "ada")) == expected("claude_code")[1:]


def test_odd_claude_code_entries() -> None:
    """Copied entries of a resumed conversation carry the earlier session's id (the file's own id wins); a
    sidechain is left out; a response's usage repeated on its entries counts once; a tool_use with no result
    is kept with none; Claude Code's API error message ends the turn in error; a command nothing answered
    is no turn; a last line still being written is skipped."""
    path = DATA / "claude_code_odd" / "edge-session.jsonl"
    assert checked(claude_code_records(path, "ada")) == expected("claude_code_odd")


def test_a_source_of_the_wrong_kind_is_refused_in_one_sentence(tmp_path: Path) -> None:
    empty, stray, export = tmp_path / "empty", tmp_path / "not-agno.db", tmp_path / "export.jsonl"
    empty.mkdir()
    (empty / "notes.txt").write_text("no transcripts here")
    agno_file = write_agno_3(tmp_path / "agno.db", agno_sessions()[:1])
    with sqlite3.connect(stray) as db:
        db.execute("CREATE TABLE sessions (id TEXT)")
    db.close()
    export.write_text('{"format": 1, "session": {}, "runs": []}\n')
    missing, nowhere = tmp_path / "missing.db", tmp_path / "missing"
    assert [refusal(agno_records, path) for path in (WEATHER, SAMPLES, missing, stray)] == [
        f"{WEATHER} is not a SQLite database, so not an Agno SqliteDb file; for Claude Code transcripts use "
        "--from claude-code.",
        f"{SAMPLES} is a directory; name the SQLite file your Agno SqliteDb writes (its db_file), or use "
        "--from claude-code for a directory of Claude Code transcripts.",
        f"There is no file at {missing}; name the SQLite file your Agno SqliteDb writes (its db_file).",
        f"{stray} holds no Agno sessions table (one with session_id, session_type and session_data columns); "
        "name the file your Agno SqliteDb writes.",
    ]
    assert [refusal(claude_code_records, path) for path in (agno_file, export, empty, nowhere)] == [
        f"{agno_file} is not a transcript: line 1 is not JSON; {HINT}.",
        f"{export} is not a transcript: line 1 is not a Claude Code entry (a JSON object with a type); {HINT}.",
        f"{empty} holds no Claude Code transcripts (*.jsonl files); name a transcript or a project directory "
        "such as ~/.claude/projects/<project>/.",
        f"There is no file or directory at {nowhere}; {HINT}.",
    ]


# The installed command.


def imported(done: Any) -> dict[str, int]:
    """The --json summary of an import that succeeded."""
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    summary: dict[str, int] = json.loads(done.stdout)
    return summary


def outcome(sessions: int, runs_added: int, **counts: int) -> dict[str, int]:
    return {
        "sessions": sessions,
        "created": 0,
        "merged": 0,
        "replaced": 0,
        "skipped": 0,
        **counts,
        "runs_added": runs_added,
    }


async def stored(db: str) -> list[dict[str, Any]]:
    """Every session the store holds, oldest first, read through the store API."""
    store = await open_test_store(db)
    try:
        return [record.model_dump() for record in await records(store)]
    finally:
        await store.close()


async def test_the_command_imports_an_agno_file_and_again_adds_nothing(sessions_db: str, tmp_path: Path) -> None:
    path = write_agno_3(tmp_path / "agno.db", agno_sessions())
    command = ("import", str(path), "--from", "agno", "--db", sessions_db, "--json")
    assert imported(cli(tmp_path, *command)) == outcome(3, 6, created=3)
    assert await stored(sessions_db) == expected("agno")
    assert imported(cli(tmp_path, *command)) == outcome(3, 0, merged=3)
    assert await stored(sessions_db) == expected("agno")


async def test_a_grown_transcript_imported_again_adds_only_its_new_turns(sessions_db: str, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    transcript = project / WEATHER.name
    lines = WEATHER.read_text().splitlines(keepends=True)
    transcript.write_text("".join(lines[:16]))  # up to the end of the first turn
    command = ("import", str(project), "--from", "claude-code", "--db", sessions_db, "--user", "ada", "--json")
    assert imported(cli(tmp_path, *command)) == outcome(1, 1, created=1)
    [partly] = await stored(sessions_db)
    assert (partly["session"]["run_count"], partly["runs"]) == (1, expected("claude_code")[0]["runs"][:1])
    shutil.copyfile(WEATHER, transcript)
    assert imported(cli(tmp_path, *command)) == outcome(1, 1, merged=1)
    assert await stored(sessions_db) == expected("claude_code")[:1]


@pytest.mark.parametrize(
    ("cut", "settled"),
    [(9, 0), (18, 16), (19, 16)],
    ids=["tool-result-of-the-first-turn", "tool-use-without-result", "no-answer-after-the-tool-result"],
)
async def test_a_last_turn_in_progress_comes_in_whole_once_it_completes(
    sessions_db: str, tmp_path: Path, cut: int, settled: int
) -> None:
    """A transcript read while its last turn is still being answered (`cut` lines: a tool result with no
    answer after it, a tool call waiting for its result) holds the turns before it only (`settled` lines'
    worth, the session's fields theirs); the whole transcript imported after gives the same record as a
    fresh import of it, the last turn whole rather than the cut version."""
    project, settled_copy = tmp_path / "project", tmp_path / "settled" / WEATHER.name
    project.mkdir()
    settled_copy.parent.mkdir()
    transcript = project / WEATHER.name
    lines = WEATHER.read_text().splitlines(keepends=True)
    transcript.write_text("".join(lines[:cut]))
    settled_copy.write_text("".join(lines[:settled]))
    assert checked(claude_code_records(transcript, "ada")) == checked(claude_code_records(settled_copy, "ada"))
    command = ("import", str(project), "--from", "claude-code", "--db", sessions_db, "--user", "ada", "--json")
    imported(cli(tmp_path, *command))
    assert await stored(sessions_db) == checked(claude_code_records(settled_copy, "ada"))
    shutil.copyfile(WEATHER, transcript)
    assert imported(cli(tmp_path, *command)) == outcome(
        1, 2 if settled == 0 else 1, **{"created" if settled == 0 else "merged": 1}
    )
    whole = checked(claude_code_records(WEATHER, "ada"))
    assert await stored(sessions_db) == whole == expected("claude_code")[:1]
    [record] = whole
    assert [len(run["tool_calls"]) for run in record["runs"]] == [5, 1]


@pytest.mark.sqlite_only
def test_a_file_of_the_wrong_kind_is_one_line_and_nothing_is_imported(tmp_path: Path) -> None:
    agno_file = write_agno_3(tmp_path / "agno.db", agno_sessions()[:1])
    db = tmp_path / "sessions.db"
    transcript_as_agno, agno_as_transcript = cli_all(
        tmp_path,
        ("import", str(WEATHER), "--from", "agno", "--db", str(db)),
        ("import", str(agno_file), "--from", "claude-code", "--db", str(db)),
    )
    assert one_line_refusal(transcript_as_agno, 1) == (
        f"mcp-server-sessions: {WEATHER} is not a SQLite database, so not an Agno SqliteDb file; for Claude Code "
        "transcripts use --from claude-code."
    )
    assert one_line_refusal(agno_as_transcript, 1) == (
        f"mcp-server-sessions: {agno_file} is not a transcript: line 1 is not JSON; {HINT}."
    )
    assert not db.exists()
