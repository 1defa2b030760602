"""`prune --older-than DAYS`, run as the real command: a dry run lists the user's old sessions and changes
nothing; `--archive` writes exactly the sessions it then deletes, and importing the archive brings them
back; a kill while the archive is written deletes nothing; a session changed while prune waits for its
confirmation is kept; without a terminal or `--yes` nothing happens."""

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mcp_server_sessions.store import NewRun
from mcp_server_sessions.store.records import SessionRecord
from tests.conftest import open_test_store
from tests.test_export_format import session
from tests.test_export_import import lines, stored
from tests.test_http_cli import TIMEOUT, cli, cli_all, environment, finish, one_line_refusal, start
from tests.test_records import dumped, fill, records
from tests.test_stdio import server_script

pytestmark = pytest.mark.anyio

PROG = "mcp-server-sessions"
SINCE = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
"""The cutoff as a person reads it."""


def long_ago(days: int) -> str:
    """A time in early 2020, `days` after its first day: far older than a year."""
    return (datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def old_record(user_id: str, session_id: str, when: str, content: str = "Fine, thanks.") -> SessionRecord:
    """A session of one run last updated at `when`."""
    run = {
        "run_id": f"{session_id}-run",
        "session_id": session_id,
        "status": "completed",
        "input": "How are you?",
        "content": content,
        "tool_calls": [],
        "metrics": {"input_tokens": 3},
        "created_at": when,
        "messages": [{"role": "user", "content": "How are you?"}, {"role": "assistant", "content": content}],
    }
    fields = {"name": f"Old {session_id}", "run_count": 1, "created_at": when, "updated_at": when}
    return SessionRecord.model_validate({"session": session(session_id, user_id, **fields), "runs": [run]})


async def with_old_sessions(db: str, count: int, content: str = "Fine, thanks.") -> list[SessionRecord]:
    """tests/test_records.py's sample (recent sessions of alice and bob), `count` sessions of alice last
    updated in 2020 (old-00 oldest) and an old one of bob's; every record."""
    store = await open_test_store(db)
    try:
        await fill(store)
        for number in range(count):
            await store.import_session(old_record("alice", f"old-{number:02}", long_ago(number), content))
        await store.import_session(old_record("bob", "old-bob", long_ago(0)))
        return await records(store)
    finally:
        await store.close()


def alices_old(found: list[SessionRecord]) -> list[SessionRecord]:
    return [r for r in found if r.session.user_id == "alice" and r.session.session_id.startswith("old-")]


def cutoff_of(days: float, text: str) -> datetime:
    """The cutoff a command printed, checked to be `days` before now (give or take a minute)."""
    cutoff = datetime.fromisoformat(text)
    assert abs(cutoff - (datetime.now(UTC) - timedelta(days=days))) < timedelta(minutes=1), text
    return cutoff


async def test_a_dry_run_lists_the_users_old_sessions_and_changes_nothing(sessions_db: str, tmp_path: Path) -> None:
    before = await with_old_sessions(sessions_db, 2)
    prune = ("prune", "--db", sessions_db, "--older-than", "365", "--dry-run")
    as_json, table, nobody = cli_all(
        tmp_path, (*prune, "--user", "alice", "--json"), (*prune, "--user", "alice"), prune, COLUMNS="200"
    )
    listed = json.loads(as_json.stdout)
    cutoff_of(365, listed.pop("cutoff"))
    assert listed == {
        "dry_run": True,
        "sessions": [
            {"session_id": "old-00", "name": "Old old-00", "run_count": 1, "updated_at": long_ago(0)},
            {"session_id": "old-01", "name": "Old old-01", "run_count": 1, "updated_at": long_ago(1)},
        ],
    }
    assert (table.returncode, table.stderr) == (0, "")
    heading, *rest = table.stdout.splitlines()
    assert re.fullmatch(rf"2 sessions of user 'alice' not updated since {SINCE} would be deleted:", heading)
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in rest if line.startswith("│")]
    assert rows == [
        ["old-00", "Old old-00", "1", "2020-01-01 00:00:00 UTC"],
        ["old-01", "Old old-01", "1", "2020-01-02 00:00:00 UTC"],
    ]
    assert (nobody.returncode, nobody.stderr) == (0, "")
    nothing = rf"No session of user 'default' was last updated before {SINCE}: nothing would be deleted\.\n"
    assert re.fullmatch(nothing, nobody.stdout)
    assert dumped(await stored(sessions_db)) == dumped(before)


async def test_an_archive_holds_what_prune_deletes_and_brings_it_back(sessions_db: str, tmp_path: Path) -> None:
    before = await with_old_sessions(sessions_db, 3)
    old = alices_old(before)
    archive = tmp_path / "archive.jsonl"
    prune = ("prune", "--db", sessions_db, "--user", "alice", "--older-than", "365")
    done = cli(tmp_path, *prune, "--archive", str(archive), "--yes")
    assert (done.returncode, done.stderr) == (0, "")
    deleted = rf"Deleted 3 sessions of user 'alice' not updated since {SINCE}, archived in {re.escape(str(archive))}"
    assert re.fullmatch(rf"{deleted} first\.\n", done.stdout), done.stdout
    assert archive.read_text(encoding="utf-8") == lines(old)
    assert dumped(await stored(sessions_db)) == dumped([r for r in before if r not in old])  # bob's old one stays
    back = cli(tmp_path, "import", str(archive), "--db", sessions_db)
    assert back.returncode == 0, back.stderr
    assert dumped(await stored(sessions_db)) == dumped(before)


async def test_prune_refuses_without_a_terminal_or_yes(db_path: Path, tmp_path: Path) -> None:
    before = await with_old_sessions(str(db_path), 1)
    prune = ("prune", "--db", str(db_path), "--user", "alice")
    unconfirmed, both, days, absent = cli_all(
        tmp_path,
        (*prune, "--older-than", "365"),
        (*prune, "--older-than", "365", "--dry-run", "--archive", str(tmp_path / "a.jsonl")),
        (*prune, "--older-than", "nan", "--yes"),
        ("prune", "--db", str(tmp_path / "absent.db"), "--older-than", "1", "--yes"),
    )
    assert one_line_refusal(unconfirmed, status=2) == (
        f"{PROG}: prune deletes sessions and no terminal is there to confirm; pass --yes (or --dry-run to list them)."
    )
    assert one_line_refusal(both, status=2) == (
        f"{PROG}: --dry-run changes nothing and writes no archive; leave out --dry-run or --archive."
    )
    assert one_line_refusal(days, status=2) == (
        f"{PROG}: Argument --older-than: must be 0 to 100000 days; got nan; see {PROG} prune --help."
    )
    assert one_line_refusal(absent, status=2) == (
        f"{PROG}: There is no session database at {tmp_path / 'absent.db'}; name it with --db (or MCP_SESSIONS_DB)."
    )
    assert dumped(await stored(str(db_path))) == dumped(before)
    assert not (tmp_path / "a.jsonl").exists() and not (tmp_path / "absent.db").exists()


async def test_a_kill_while_the_archive_is_written_deletes_nothing(db_path: Path, tmp_path: Path) -> None:
    """The archive is a named pipe the test reads: after the first session's line (of eight, 300 kB each)
    prune is blocked writing the rest, and is killed there."""
    before = await with_old_sessions(str(db_path), 8, content="x" * 300_000)
    fifo = tmp_path / "archive.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    keeper = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # a writer always there: a read waits, never ends early
    prune = ("prune", "--db", str(db_path), "--user", "alice", "--older-than", "365")
    process = start(tmp_path, *prune, "--archive", str(fifo), "--yes")
    try:
        first_line = _read_until(reader, b"\n").split(b"\n")[0] + b"\n"
        process.send_signal(signal.SIGKILL)
        finish(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        os.close(reader)
        os.close(keeper)
    assert process.returncode == -signal.SIGKILL  # it had not ended by itself: it was still writing
    assert first_line == lines(alices_old(before)[:1]).encode()
    assert dumped(await stored(str(db_path))) == dumped(before)


async def test_a_session_changed_while_prune_asks_is_kept(db_path: Path, tmp_path: Path) -> None:
    """On a terminal prune lists, then asks; a declined prune deletes nothing, and one confirmed after a run
    was added to a listed session deletes the others only (with a progress bar: more than a few)."""
    before = await with_old_sessions(str(db_path), 12)
    prune = ("prune", "--db", str(db_path), "--user", "alice", "--older-than", "365")

    async def nothing() -> None:
        pass

    status, stdout, shown = await _answered(tmp_path, prune, b"n\n", nothing)
    assert (status, stdout) == (1, "")
    question = rf"Delete 12 sessions of user 'alice' not updated since {SINCE}\? \[y/N\] n"
    assert re.search(rf"^{question}\r\n{PROG}: Nothing was deleted\.\r\n$", shown), shown
    assert dumped(await stored(str(db_path))) == dumped(before)

    async def add_a_run() -> None:
        store = await open_test_store(str(db_path))
        try:
            await store.for_user("alice").append_run("old-03", NewRun.recorded("Still there?", "Yes.", run_id="late"))
        finally:
            await store.close()

    status, stdout, shown = await _answered(tmp_path, (*prune, "--json"), b"y\n", add_a_run)
    assert status == 0, shown
    outcome = json.loads(stdout)
    cutoff_of(365, outcome.pop("cutoff"))
    deleted = [f"old-{number:02}" for number in range(12) if number != 3]
    assert outcome == {"dry_run": False, "deleted": deleted, "kept": ["old-03"], "archive": None}
    assert re.search(r"Deleting sessions.*12/12", shown, re.DOTALL), shown
    after = {(r.session.user_id, r.session.session_id): r for r in await stored(str(db_path))}
    assert [run.run_id for run in after["alice", "old-03"].runs] == ["old-03-run", "late"]
    assert set(after) == {(r.session.user_id, r.session.session_id) for r in before} - {("alice", d) for d in deleted}


async def _answered(
    cwd: Path, args: tuple[str, ...], answer: bytes, meanwhile: Callable[[], Awaitable[None]]
) -> tuple[int, str, str]:
    """Run the command with a terminal for stdin and stderr; once it asks, run `meanwhile`, then answer.
    Its exit status, stdout, and what the terminal showed."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [server_script(), *args],
            cwd=cwd,
            env=environment(cwd / "home", TERM="xterm", COLUMNS="100"),
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
        )
        os.close(terminal)  # the command holds the only other end: reading ends when it exits
        terminal = -1
        shown = _read_until(controller, b"[y/N] ")
        await meanwhile()
        os.write(controller, answer)
        shown += _read_until(controller, None)
        stdout, _ = process.communicate(timeout=TIMEOUT)
    finally:
        if terminal != -1:
            os.close(terminal)
        os.close(controller)
    return process.returncode, stdout, shown.decode(errors="replace")


def _read_until(fd: int, marker: bytes | None) -> bytes:
    """Read `fd` until `marker` has come (None: until its other end is closed), for at most TIMEOUT seconds."""
    deadline = time.monotonic() + TIMEOUT
    received = b""
    while marker is None or marker not in received:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"nothing more within {TIMEOUT} s; read so far: {received[-2000:]!r}"
        try:
            chunk = os.read(fd, 65_536)
        except OSError:  # a terminal whose other end closed
            chunk = b""
        if not chunk:
            assert marker is None, f"ended before {marker!r}; read: {received[-2000:]!r}"
            return received
        received += chunk
    return received
