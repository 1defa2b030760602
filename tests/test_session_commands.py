"""`list`, `show`, `search` and `delete`, run as the installed command on SQLite and PostgreSQL: sessions written
through the store API read back exactly (`--json` against the store's own answers, markdown against the
renderer), another user's sessions out of reach, delete only with `--yes` or a yes on a terminal, colour only on
a terminal, and each refusal one line that changes nothing and creates no database file."""

import io
import json
import os
import pty
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from rich.console import Console
from rich.markdown import Markdown

from mcp_server_sessions.server.terminal_output import one_line, utc_time
from mcp_server_sessions.server.transcript_markdown import session_markdown
from mcp_server_sessions.store import NewRun, NewToolCall, RunMetrics, SessionNotFound, SessionSummary, UserSessions
from tests.conftest import open_test_store
from tests.test_copy import _drain
from tests.test_http_cli import TIMEOUT, cli, cli_all, environment, one_line_refusal
from tests.test_stdio import server_script

pytestmark = pytest.mark.anyio
T = TypeVar("T")

HOSTILE = "Remember the kayak rental \x00 \x1b[31mred\x1b[0m\n# not a heading"
WIDE = {"COLUMNS": "200"}
"""A terminal width no row of these tables wraps at."""


async def fill(db: str) -> None:
    """alice: `trip` (state, summary, two runs, a tool call, metrics) and `notes` (hostile text); bob: his own
    `trip` and `secret`."""
    store = await open_test_store(db)
    try:
        alice = store.for_user("alice")
        await alice.start_session("trip", name="Fjord trip", state={"city": "Bergen"})
        weather = NewToolCall(tool_name="weather", arguments={"city": "Bergen"}, result={"rain": True}, duration_ms=12)
        metrics = RunMetrics(input_tokens=100, output_tokens=20, model="claude-x")
        await alice.append_run("trip", NewRun.recorded("Plan a kayak trip", "Go in June.", [weather], metrics, "r-1"))
        await alice.append_run("trip", NewRun.recorded("Which fjord?", "The Nærøyfjord.", run_id="r-2"))
        summary = SessionSummary(summary="Kayaking the fjords.", topics=["fjords"], run_count=2, updated_at="2025")
        await alice.set_summary("trip", summary)
        await alice.append_run("notes", NewRun.recorded(HOSTILE, "Noted.", run_id="r-3"))
        bob = store.for_user("bob")
        await bob.append_run("trip", NewRun.recorded("Kayak prices in Oslo?", "About 500 NOK.", run_id="r-1"))
        await bob.start_session("secret", name="Bob's kayak")
    finally:
        await store.close()


async def read(db: str, user_id: str, call: Callable[[UserSessions], Awaitable[T]]) -> T:
    """What the store API answers `user_id` at `db`."""
    store = await open_test_store(db)
    try:
        return await call(store.for_user(user_id))
    finally:
        await store.close()


def run(cwd: Path, db: str, *args: str, user: str = "alice", **env: str) -> subprocess.CompletedProcess[str]:
    return cli(cwd, *args, "--db", db, "--user", user, **env)


def succeeded(done: subprocess.CompletedProcess[str]) -> str:
    assert (done.returncode, done.stderr) == (0, ""), (done.args, done.stderr)
    assert "\x1b" not in done.stdout  # piped: no colour, and no stored escape sequence reaches the terminal
    return done.stdout


def words(output: str) -> list[list[str]]:
    return [line.split() for line in output.splitlines() if line.strip()]


def at(db: str, user: str, *commands: tuple[str, ...]) -> list[tuple[str, ...]]:
    return [(*command, "--db", db, "--user", user) for command in commands]


async def test_list_json_is_the_stores_page_sorted_filtered_and_limited(sessions_db: str, tmp_path: Path) -> None:
    await fill(sessions_db)
    listed, oldest, named = cli_all(
        tmp_path,
        *at(
            sessions_db,
            "alice",
            ("list", "--json"),
            ("list", "--json", "--sort", "created_at", "--limit", "1"),
            ("list", "--json", "--name", "FJORD"),
        ),
    )
    page = await read(sessions_db, "alice", lambda user: user.list_sessions())
    everything = [session.model_dump(mode="json") for session in page.sessions]
    assert [session["session_id"] for session in everything] == ["notes", "trip"]
    assert json.loads(succeeded(listed)) == {"sessions": everything, "total": 2}
    first = await read(sessions_db, "alice", lambda user: user.get_session("notes"))
    assert json.loads(succeeded(oldest)) == {"sessions": [first.model_dump(mode="json")], "total": 2}
    assert json.loads(succeeded(named)) == {"sessions": everything[1:], "total": 1}


async def test_list_follows_the_pages_up_to_the_limit(sessions_db: str, tmp_path: Path) -> None:
    async def start(user: UserSessions) -> list[dict[str, Any]]:
        for number in range(205):
            await user.start_session(f"s{number:03}")
        first = await user.list_sessions(limit=200, sort_by="created_at")
        second = await user.list_sessions(limit=3, cursor=first.next_cursor, sort_by="created_at")
        return [session.model_dump(mode="json") for session in first.sessions + second.sessions]

    expected = await read(sessions_db, "alice", start)
    assert [session["session_id"] for session in expected] == [f"s{number:03}" for number in range(204, 1, -1)]
    listed = run(tmp_path, sessions_db, "list", "--json", "--limit", "203", "--sort", "created_at")
    assert json.loads(succeeded(listed)) == {"sessions": expected, "total": 205}


async def test_show_json_is_the_record_and_markdown_the_transcript(sessions_db: str, tmp_path: Path) -> None:
    await fill(sessions_db)
    formats = [("show", "trip", "--format", "json"), ("show", "trip", "--format", "markdown")]
    as_json, as_markdown = cli_all(tmp_path, *at(sessions_db, "alice", *formats))
    record = await read(sessions_db, "alice", lambda user: user.session_record("trip"))
    assert [run.run_id for run in record.runs] == ["r-1", "r-2"] and record.runs[0].tool_calls
    assert json.loads(succeeded(as_json)) == record.model_dump(mode="json")
    markdown = succeeded(as_markdown)
    assert markdown == session_markdown(record)
    assert markdown.startswith("# Fjord trip\n") and "**Tool call** `weather` · 12 ms" in markdown


async def test_search_json_is_the_stores_hits_for_this_user_only(sessions_db: str, tmp_path: Path) -> None:
    await fill(sessions_db)
    found = run(tmp_path, sessions_db, "search", "kayak", "--json", "--limit", "5")
    hits = await read(sessions_db, "alice", lambda user: user.search("kayak", limit=5))
    assert {(hit.session_id, hit.run_id) for hit in hits} == {("trip", "r-1"), ("notes", "r-3")}  # none of bob's
    assert json.loads(succeeded(found)) == {"results": [hit.model_dump(mode="json") for hit in hits]}


async def test_delete_with_yes_deletes_only_this_users_session(sessions_db: str, tmp_path: Path) -> None:
    await fill(sessions_db)
    deleted = run(tmp_path, sessions_db, "delete", "trip", "--yes")
    assert succeeded(deleted) == "Deleted session 'trip' (Fjord trip, 2 runs).\n"
    foreign = run(tmp_path, sessions_db, "delete", "secret", "--yes")
    assert one_line_refusal(foreign, status=1) == (
        "mcp-server-sessions: User alice has no session 'secret'; `mcp-server-sessions list` shows yours."
    )
    left = await read(sessions_db, "alice", lambda user: user.list_sessions())
    assert [session.session_id for session in left.sessions] == ["notes"]
    bobs = await read(sessions_db, "bob", lambda user: user.list_sessions())
    assert sorted((session.session_id, session.run_count) for session in bobs.sessions) == [("secret", 0), ("trip", 1)]


@pytest.mark.sqlite_only
async def test_tables_and_text_are_plain_when_piped(sessions_db: str, tmp_path: Path) -> None:
    await fill(sessions_db)
    listed, shown, searched = cli_all(
        tmp_path, *at(sessions_db, "alice", ("list",), ("show", "notes"), ("search", "kayak")), **WIDE
    )
    sessions = await read(sessions_db, "alice", lambda user: user.list_sessions())
    notes, trip = sessions.sessions
    assert words(succeeded(listed)) == [
        ["ID", "Name", "Runs", "Updated", "Summary"],
        ["notes", "1", *utc_time(notes.updated_at, seconds=False).split()],
        ["trip", "Fjord", "trip", "2", *utc_time(trip.updated_at, seconds=False).split(), "Kayaking", "the", "fjords."],
    ]
    record = await read(sessions_db, "alice", lambda user: user.session_record("notes"))
    rendered = io.StringIO()
    Console(file=rendered, width=200, highlight=False).print(Markdown(session_markdown(record)))
    text = succeeded(shown)
    assert text == rendered.getvalue()
    assert "Remember the kayak rental ␀ ␛[31mred␛[0m" in text and "# not a heading" in text
    hits = await read(sessions_db, "alice", lambda user: user.search("kayak"))
    rows = [["Session", "When", "Match"]]
    for hit in hits:  # the session's name on the row's second line; the snippet without its ** marks
        snippet = one_line(hit.snippet).replace("**", "").split()
        rows.append([hit.session_id, *utc_time(hit.created_at, seconds=False).split(), *snippet])
        rows += [hit.session_name.split()] if hit.session_name else []
    assert words(succeeded(searched)) == rows
    assert "**" not in searched.stdout


@pytest.mark.sqlite_only
async def test_show_refuses_a_missing_or_foreign_session_in_the_same_words(sessions_db: str, tmp_path: Path) -> None:
    await fill(sessions_db)
    foreign, missing = cli_all(tmp_path, *at(sessions_db, "alice", ("show", "secret"), ("show", "nowhere")))
    expected = "mcp-server-sessions: User alice has no session '{}'; `mcp-server-sessions list` shows yours."
    assert one_line_refusal(foreign, status=1) == expected.format("secret")
    assert one_line_refusal(missing, status=1) == expected.format("nowhere")


@pytest.mark.sqlite_only
async def test_bad_limits_and_a_missing_database_are_refused_in_one_line(sessions_db: str, tmp_path: Path) -> None:
    await fill(sessions_db)
    missing = str(tmp_path / "missing.db")
    zero, word, listed, deleted = cli_all(
        tmp_path,
        *at(sessions_db, "alice", ("list", "--limit", "0"), ("search", "kayak", "--limit", "ten")),
        *at(missing, "alice", ("list",), ("delete", "trip", "--yes")),
    )
    assert one_line_refusal(zero, status=2).endswith("--limit must be a whole number from 1 to 100,000; got '0'.")
    assert one_line_refusal(word, status=2).endswith("--limit must be a whole number from 1 to 100; got 'ten'.")
    for done in (listed, deleted):
        assert f"There is no session database at {missing}" in one_line_refusal(done, status=2)
    assert not Path(missing).exists()


@pytest.mark.sqlite_only
async def test_delete_without_a_terminal_or_yes_deletes_nothing(sessions_db: str, tmp_path: Path) -> None:
    await fill(sessions_db)
    refused = run(tmp_path, sessions_db, "delete", "trip")
    assert one_line_refusal(refused, status=2) == (
        "mcp-server-sessions: Deleting 'trip' needs confirmation; pass --yes to delete without a terminal."
    )
    assert (await read(sessions_db, "alice", lambda user: user.get_session("trip"))).run_count == 2


def on_terminal(tmp_path: Path, args: list[str], typed: bytes, terminal_stream: str) -> tuple[int, str, str]:
    """Run the command with `terminal_stream` (stdin and stderr, or stdout) on a pseudo-terminal and `typed`
    as its input; the exit status, what the terminal showed, and what went to the other (piped) stream."""
    controller, terminal = pty.openpty()
    streams: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    streams |= {"stdin": terminal, "stderr": terminal} if terminal_stream == "stderr" else {"stdout": terminal}
    try:
        process = subprocess.Popen(
            [server_script(), *args],
            cwd=tmp_path,
            env=environment(tmp_path / "home", TERM="xterm", COLUMNS="100"),
            text=True,
            **streams,
        )
        os.close(terminal)  # the command holds the only other end: reading ends when it exits
        terminal = -1
        os.write(controller, typed)
        shown = _drain(controller)
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    finally:
        if terminal != -1:
            os.close(terminal)
        os.close(controller)
    return process.returncode, shown, stdout if terminal_stream == "stderr" else stderr


@pytest.mark.sqlite_only
@pytest.mark.parametrize(("answer", "deleted"), [(b"y\n", True), (b"\n", False)], ids=["yes", "no"])
async def test_delete_asks_on_a_terminal(sessions_db: str, tmp_path: Path, answer: bytes, deleted: bool) -> None:
    await fill(sessions_db)
    args = ["delete", "trip", "--db", sessions_db, "--user", "alice"]
    status, shown, stdout = on_terminal(tmp_path, args, answer, "stderr")
    assert "Delete session 'trip' (Fjord trip, 2 runs) of user alice? [y/N]" in shown
    try:
        await read(sessions_db, "alice", lambda user: user.get_session("trip"))
        still_there = True
    except SessionNotFound:
        still_there = False
    if deleted:
        assert (status, stdout, still_there) == (0, "Deleted session 'trip' (Fjord trip, 2 runs).\n", False)
    else:
        assert (status, stdout, still_there) == (1, "", True)
        assert "Nothing was deleted." in shown


@pytest.mark.sqlite_only
async def test_search_highlights_matches_on_a_terminal(sessions_db: str, tmp_path: Path) -> None:
    await fill(sessions_db)
    args = ["search", "fjord", "--db", sessions_db, "--user", "alice"]
    status, shown, stderr = on_terminal(tmp_path, args, b"", "stdout")
    assert (status, stderr) == (0, "")
    assert "\x1b[1;33mfjord\x1b[0m" in shown and "**" not in shown


def test_usage_mistakes_are_one_line_each(tmp_path: Path) -> None:
    """argparse's own refusals (a missing argument, an unknown flag, a bad --user) are one line, exit 2."""
    db = str(tmp_path / "none.db")
    missing, unknown, bad_user = cli_all(
        tmp_path, ("show", "--db", db), ("list", "--db", db, "--bogus"), ("list", "--db", db, "--user", "a b")
    )
    assert one_line_refusal(missing, 2) == (
        "mcp-server-sessions: The following arguments are required: SESSION_ID; see mcp-server-sessions show --help."
    )
    assert one_line_refusal(unknown, 2) == (
        "mcp-server-sessions: Unrecognized arguments: --bogus; see mcp-server-sessions list --help."
    )
    assert one_line_refusal(bad_user, 2).startswith("mcp-server-sessions: --user (or MCP_SESSIONS_USER)")
    assert not (tmp_path / "none.db").exists()
