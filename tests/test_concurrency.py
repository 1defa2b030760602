"""Several processes on one SQLite file: concurrent servers, writers killed mid-storm, interrupted runs."""

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client, StdioServerParameters

from mcp_server_sessions.store import NewMessage, NewRun, SqliteStore
from tests.writer_storm import USER as STORM_USER
from tests.writer_storm import planned

pytestmark = pytest.mark.anyio

TESTS = Path(__file__).parent
WRITER_STORM = TESTS / "writer_storm.py"


def server_script() -> str:
    beside = Path(sys.executable).parent / "mcp-server-sessions"
    found = str(beside) if beside.exists() else shutil.which("mcp-server-sessions")
    assert found, "the mcp-server-sessions console script is not installed"
    return found


def child_env(tmp_path: Path, db: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "MCP_SESSIONS_DB": str(db)}


def integrity(db: Path) -> None:
    """SQLite's own check of the file and FTS5's check of the search index against its content."""
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        conn.execute("INSERT INTO search_index (search_index) VALUES ('integrity-check')")


def runs_by_session(db: Path, user_id: str) -> dict[str, list[str]]:
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT s.session_id, r.run_id FROM runs r JOIN sessions s ON s.pk = r.session_pk "
            "JOIN users u ON u.pk = s.user_pk WHERE u.user_id = ? ORDER BY r.pk",
            (user_id,),
        ).fetchall()
    found: dict[str, list[str]] = {}
    for session_id, run_id in rows:
        found.setdefault(session_id, []).append(run_id)
    return found


# -- (a) three servers on one file ----------------------------------------------------------


class Barrier:
    def __init__(self, parties: int) -> None:
        self._waiting = parties
        self._event = anyio.Event()

    async def wait(self) -> None:
        self._waiting -= 1
        if self._waiting == 0:
            self._event.set()
        await self._event.wait()


CLIENTS = 3
RUNS_PER_CLIENT = 100
CONTENDED_RUN_IDS = 10  # every client records these same run_ids into "shared": each is stored once
WORKERS_PER_CLIENT = 4


def session_for(client_index: int, k: int) -> str:
    return ("shared", f"own-{client_index}", "shared2")[k % 3]


def expected_runs() -> dict[str, set[str]]:
    expected: dict[str, set[str]] = {}
    for index in range(CLIENTS):
        for k in range(RUNS_PER_CLIENT):
            expected.setdefault(session_for(index, k), set()).add(f"c{index}-{k}")
    expected["shared"] |= {f"dup-{j}" for j in range(CONTENDED_RUN_IDS)}
    return expected


async def test_three_servers_on_one_file_lose_no_write_and_report_no_error(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"  # a fresh file: the three servers also race to create the schema
    connected, written = Barrier(CLIENTS), Barrier(CLIENTS)
    errors: list[str] = []
    seen_counts: list[dict[str, int]] = []
    expected = expected_runs()

    async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await client.call_tool(tool, arguments)
        if result.is_error:
            errors.append(f"{tool} {arguments.get('run_id', '')}: {result.content}")
            return {}
        structured: dict[str, Any] | None = result.structured_content
        assert structured is not None
        return structured

    async def drive(index: int) -> None:
        params = StdioServerParameters(command=server_script(), args=["--user", "carol"], env=child_env(tmp_path, db))
        async with Client(params) as client:
            await connected.wait()
            work: list[tuple[str, dict[str, Any]]] = []
            for k in range(RUNS_PER_CLIENT):
                arguments: dict[str, Any] = {
                    "session_id": session_for(index, k),
                    "run_id": f"c{index}-{k}",
                    "input": f"client {index} question {k} about glaciers",
                    "output": f"client {index} answer {k}",
                }
                if k % 10 == 0:
                    arguments["tool_calls"] = [{"tool_name": "probe", "arguments": {"k": k}, "result": "fine"}]
                work.append(("record_run", arguments))
                if k % 10 == 5:
                    j = k // 10
                    contended = {"session_id": "shared", "run_id": f"dup-{j}", "input": f"dup {j}", "output": "x"}
                    work.append(("record_run", contended))
                if k % 20 == 7:  # a retry of one of this client's earlier runs
                    retry = dict(work[0][1])
                    work.append(("record_run", retry))
                if k % 25 == 3:
                    work.append(("list_sessions", {}))
                    work.append(("search_previous_sessions", {"query": "glacier"}))
            pending = iter(work)

            async def worker() -> None:
                for tool, arguments in pending:
                    await call(client, tool, arguments)

            async with anyio.create_task_group() as group:
                for _ in range(WORKERS_PER_CLIENT):
                    group.start_soon(worker)
            await written.wait()
            # every server sees every other server's writes
            counts = {}
            for session_id in expected:
                counts[session_id] = (await call(client, "get_session", {"session_id": session_id}))["run_count"]
            seen_counts.append(counts)
            listed = await call(client, "list_sessions", {"limit": 200})
            assert listed["total"] == len(expected)
            history = await call(client, "get_chat_history", {"session_id": "shared", "limit": 1000})
            assert len(history["messages"]) == 2 * len(expected["shared"])

    with anyio.fail_after(90):
        async with anyio.create_task_group() as group:
            for index in range(CLIENTS):
                group.start_soon(drive, index)

    assert errors == []
    expected_counts = {session_id: len(run_ids) for session_id, run_ids in expected.items()}
    assert seen_counts == [expected_counts] * CLIENTS
    stored = runs_by_session(db, "carol")
    for session_id, run_ids in stored.items():
        assert len(run_ids) == len(set(run_ids)), f"duplicate runs in {session_id}"
    assert {session_id: set(run_ids) for session_id, run_ids in stored.items()} == expected
    with closing(sqlite3.connect(db)) as conn:
        assert dict(conn.execute("SELECT session_id, run_count FROM sessions").fetchall()) == expected_counts
        messages = dict(conn.execute("SELECT is_tool, count(*) FROM messages GROUP BY is_tool").fetchall())
        assert messages == {0: 2 * sum(expected_counts.values()), 1: CLIENTS * RUNS_PER_CLIENT // 10}
        assert conn.execute("SELECT count(*) FROM tool_calls").fetchone()[0] == CLIENTS * RUNS_PER_CLIENT // 10
        assert conn.execute("SELECT DISTINCT status FROM runs").fetchall() == [("completed",)]
    integrity(db)


# -- (b) a writer killed with SIGKILL in the middle of a write storm -------------------------


async def open_storm(tmp_path: Path, db: Path, writer: str, count: int, stderr: Any) -> Process:
    return await anyio.open_process(
        [sys.executable, str(WRITER_STORM), str(db), writer, str(count)],
        env=child_env(tmp_path, db),
        stdin=subprocess.DEVNULL,
        stderr=stderr,
    )


async def read_acks(process: Process, limit: int | None) -> list[tuple[str, str]]:
    """The acknowledged (session_id, run_id) lines, up to `limit` or to end of output."""
    assert process.stdout is not None
    stdout = BufferedByteReceiveStream(process.stdout)
    acks: list[tuple[str, str]] = []
    try:
        while limit is None or len(acks) < limit:
            session_id, run_id = (await stdout.receive_until(b"\n", 10_000)).decode().split()
            acks.append((session_id, run_id))
    except (anyio.EndOfStream, anyio.IncompleteRead):
        pass
    return acks


def assert_every_run_is_whole(db: Path) -> None:
    """Every stored run has exactly its two messages, each with its search entry, and counts agree."""
    with closing(sqlite3.connect(db)) as conn:
        runs = conn.execute(
            "SELECT r.pk, r.run_id, r.status, r.input, r.content, s.session_id FROM runs r "
            "JOIN sessions s ON s.pk = r.session_pk"
        ).fetchall()
        for run_pk, run_id, status, run_input, content, session_id in runs:
            assert status == "completed", run_id
            messages = conn.execute(
                "SELECT m.pk, m.role, m.content, si.body FROM messages m "
                "LEFT JOIN search_index si ON si.rowid = m.pk * 2 WHERE m.run_pk = ? ORDER BY m.pk",
                (run_pk,),
            ).fetchall()
            assert [(role, text) for _, role, text, _ in messages] == [("user", run_input), ("assistant", content)], (
                run_id
            )
            assert [body for *_, body in messages] == [run_input, content], f"{run_id}: search entries missing"
            writer, index = run_id.rsplit("-", 1)
            planned_session, planned_run = planned(writer, int(index))
            assert (session_id, run_input, content) == (planned_session, planned_run.input, planned_run.content)
        messages_total = conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        assert messages_total == 2 * len(runs)
        assert conn.execute("SELECT count(*) FROM search_index").fetchone()[0] == messages_total
        mismatched = conn.execute(
            "SELECT s.session_id, s.run_count, count(r.pk) FROM sessions s LEFT JOIN runs r ON r.session_pk = s.pk "
            "GROUP BY s.pk HAVING s.run_count != count(r.pk)"
        ).fetchall()
        assert mismatched == []


async def test_a_writer_killed_mid_storm_loses_no_acknowledged_run_and_leaves_no_half_run(tmp_path: Path) -> None:
    """Two storm writers on one file: `a` is SIGKILLed after 200 acknowledged runs, `b` goes on
    writing for another 100 and then stops cleanly."""
    db = tmp_path / "storm.db"
    kill_after, more_after_kill = 200, 100
    acks_b: list[tuple[str, str]] = []
    target_b: list[int] = []
    b_went_on = anyio.Event()

    async def collect_b(process: Process) -> None:
        assert process.stdout is not None
        stdout = BufferedByteReceiveStream(process.stdout)
        try:
            while True:
                session_id, run_id = (await stdout.receive_until(b"\n", 10_000)).decode().split()
                acks_b.append((session_id, run_id))
                if target_b and len(acks_b) >= target_b[0]:
                    b_went_on.set()
        except (anyio.EndOfStream, anyio.IncompleteRead):
            pass

    with (tmp_path / "storm-a.err").open("wb") as err_a, (tmp_path / "storm-b.err").open("wb") as err_b:
        with anyio.fail_after(60):
            killed = await open_storm(tmp_path, db, "a", 0, err_a)
            finishing = await open_storm(tmp_path, db, "b", 0, err_b)
            async with killed, finishing:
                async with anyio.create_task_group() as group:
                    group.start_soon(collect_b, finishing)
                    acks_a = await read_acks(killed, kill_after)
                    killed.send_signal(signal.SIGKILL)
                    assert await killed.wait() == -signal.SIGKILL
                    assert finishing.returncode is None, (tmp_path / "storm-b.err").read_text()
                    target_b.append(len(acks_b) + more_after_kill)
                    await b_went_on.wait()
                    finishing.terminate()  # SIGTERM: `b` finishes the run in flight, closes and exits 0
                assert await finishing.wait() == 0, (tmp_path / "storm-b.err").read_text()
    assert len(acks_a) == kill_after
    assert len(acks_b) >= target_b[0]

    integrity(db)
    stored = runs_by_session(db, STORM_USER)
    stored_pairs = {(session_id, run_id) for session_id, run_ids in stored.items() for run_id in run_ids}
    assert set(acks_a) <= stored_pairs
    assert set(acks_b) <= stored_pairs
    assert all(run_id.startswith(("a-", "b-")) for _, run_id in stored_pairs)
    assert len(stored_pairs) == sum(len(run_ids) for run_ids in stored.values())  # no run twice
    assert_every_run_is_whole(db)
    with closing(sqlite3.connect(db)) as conn:  # `b` really wrote on after `a` died mid-storm
        last_a, last_b = (
            conn.execute("SELECT max(pk) FROM runs WHERE run_id LIKE ?", (f"{writer}-%",)).fetchone()[0]
            for writer in ("a", "b")
        )
    assert last_b > last_a

    # the file reopens and takes new runs; search still finds old and new ones
    store = await SqliteStore.open(db)
    storm = store.for_user(STORM_USER)
    try:
        before = (await storm.get_session("shared")).run_count
        message = "after the crash: a quiet lake"
        run = NewRun(
            run_id="after-crash",
            input=message,
            content="noted",
            messages=[NewMessage(role="user", content=message), NewMessage(role="assistant", content="noted")],
        )
        stored_run, created = await storm.append_run("shared", run)
        assert created and stored_run.status == "completed"
        assert (await storm.get_session("shared")).run_count == before + 1
        assert [hit.run_id for hit in await storm.search("quiet lake")] == ["after-crash"]
        assert await storm.search("storm kayak fjord", limit=5)
    finally:
        await store.close()
    integrity(db)


# -- (c) runs left `running` by a dead process ---------------------------------------------

BEGIN_AND_HANG = """
import asyncio, sys
from mcp_server_sessions.store import SqliteStore

async def main() -> None:
    store = await SqliteStore.open(sys.argv[1])
    await store.for_user("alice").start_session("s1")
    run = await store.for_user("alice").begin_run("s1", "r-interrupted", "hello?")
    print(run.status, flush=True)
    sys.stdin.readline()  # held here, mid-run, until the test kills the process

asyncio.run(main())
"""


def run_rows(db: Path) -> dict[str, tuple[str, str | None]]:
    with closing(sqlite3.connect(db)) as conn:
        return {
            run_id: (status, error) for run_id, status, error in conn.execute("SELECT run_id, status, error FROM runs")
        }


async def begin_run_in_a_child(tmp_path: Path, db: Path) -> subprocess.Popen[bytes]:
    """A child process that began a run and now holds it `running` (not yet killed)."""
    child = subprocess.Popen(
        [sys.executable, "-c", BEGIN_AND_HANG, str(db)],
        env=child_env(tmp_path, db),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        with anyio.fail_after(30):
            line = await anyio.to_thread.run_sync(child.stdout.readline, abandon_on_cancel=True)
        assert line == b"running\n"
        assert run_rows(db) == {"r-interrupted": ("running", None)}
    except BaseException:
        reap(child)
        raise
    return child


def reap(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.kill()
    child.wait(timeout=30)
    for stream in (child.stdin, child.stdout):
        if stream is not None:
            stream.close()


async def test_a_run_left_running_by_a_killed_process_is_marked_error_on_the_next_open(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    child = await begin_run_in_a_child(tmp_path, db)
    try:
        # while the child lives, a neighbour opening the file leaves its run alone
        neighbour = await SqliteStore.open(db)
        await neighbour.close()
        assert run_rows(db) == {"r-interrupted": ("running", None)}
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        reap(child)

    store = await SqliteStore.open(db)
    alice = store.for_user("alice")
    try:
        status, error = run_rows(db)["r-interrupted"]
        assert status == "error" and error
        assert (await alice.get_session("s1")).run_count == 1
        assert await store.recover_interrupted_runs() == 0  # nothing left to recover
        # the session goes on: a new run is stored next to the interrupted one
        message = "second try"
        run = NewRun(
            run_id="r-next",
            input=message,
            content="ok",
            messages=[NewMessage(role="user", content=message), NewMessage(role="assistant", content="ok")],
        )
        await alice.append_run("s1", run)
        history = await alice.get_chat_history("s1")
        assert [(m.run_id, m.content) for m in history.messages] == [("r-next", "second try"), ("r-next", "ok")]
        # the retry of an interrupted run_id does not resurrect it as completed behind the client's back
        retried, created = await alice.append_run("s1", run.model_copy(update={"run_id": "r-interrupted"}))
        assert created is False and retried.status == "error"
    finally:
        await store.close()
    assert run_rows(db)["r-interrupted"][0] == "error"
    integrity(db)


async def test_a_run_owned_by_a_live_process_is_left_running(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    first = await SqliteStore.open(db)
    try:
        await first.for_user("alice").start_session("s1")
        begun = await first.for_user("alice").begin_run("s1", "r-live", "still thinking")
        assert begun.status == "running"
        with closing(sqlite3.connect(db)) as conn, conn:  # a run of a server on another machine
            session_pk = conn.execute("SELECT pk FROM sessions WHERE session_id = 's1'").fetchone()[0]
            conn.execute(
                "INSERT INTO runs (session_pk, run_id, status, input, owner, created_at) "
                "VALUES (?, 'r-remote', 'running', 'x', 'some-other-host.example:4242:123', '2026-01-01T00:00:00Z')",
                (session_pk,),
            )
        second = await SqliteStore.open(db)  # a neighbour starting on the same file
        try:
            assert await second.recover_interrupted_runs() == 0
            assert run_rows(db) == {"r-live": ("running", None), "r-remote": ("running", None)}
        finally:
            await second.close()
        await first.close()
        first = await SqliteStore.open(db)  # reopening in the same, live, process changes nothing either
        assert run_rows(db)["r-live"] == ("running", None)

        # the owner finishes its run: completed, counted once
        finished = NewRun(
            run_id="r-live",
            input="still thinking",
            content="done",
            messages=[
                NewMessage(role="user", content="still thinking"),
                NewMessage(role="assistant", content="done"),
            ],
        )
        run, created = await first.for_user("alice").append_run("s1", finished, finishing=True)
        assert created and run.status == "completed" and run.content == "done"
        assert run_rows(db)["r-live"] == ("completed", None)
        assert [hit.run_id for hit in await first.for_user("alice").search("thinking")] == ["r-live"]
    finally:
        await first.close()
    integrity(db)


async def test_a_run_of_a_dead_but_unreaped_process_is_marked_error(tmp_path: Path) -> None:
    """A parent that has not waited for its crashed server yet leaves a zombie: that owner is gone too."""
    db = tmp_path / "s.db"
    child = await begin_run_in_a_child(tmp_path, db)
    try:
        child.send_signal(signal.SIGKILL)
        # wait until it has exited, but leave it unreaped, as a parent that has not waited yet would
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
        store = await SqliteStore.open(db)
        await store.close()
        assert run_rows(db)["r-interrupted"][0] == "error"
    finally:
        reap(child)
