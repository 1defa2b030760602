"""`mcp-server-sessions copy --from SRC --to DST`, run as the real command: a SQLite file filled through the
store API copied into another SQLite file and into PostgreSQL (a throwaway cluster, tests/postgres_cluster.py)
and back, each side exported through the store API and compared exactly; a second copy adding nothing;
the counts line on stdout; a progress bar only on a terminal; each refusal one line."""

import itertools
import os
import pty
import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mcp_server_sessions.store.opening import open_store
from mcp_server_sessions.store.records import StoreCounts
from tests.postgres_cluster import Cluster, start_cluster
from tests.test_http_cli import TIMEOUT, cli, environment, one_line_refusal
from tests.test_records import dumped, fill, records
from tests.test_stdio import server_script

pytestmark = pytest.mark.anyio
_names = itertools.count()

COUNTS = StoreCounts(users=2, sessions=4, runs=5, messages=12, tool_calls=3)
SUMMARY = "Copied 4 sessions, 5 runs, 12 messages and 3 tool calls of 2 users"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    yield from start_cluster()


@pytest.fixture
async def database(cluster: Cluster) -> AsyncIterator[str]:
    """The URL of a new, empty database of the cluster, dropped afterwards."""
    name = f"copy_{next(_names)}"
    yield await cluster.create_database(name)
    await cluster.drop_database(name)


@pytest.fixture
async def source(tmp_path: Path) -> Path:
    """A SQLite file filled through the store API (tests/test_records.py's sample: several users, tool
    calls, content blocks, a summary, state, NUL characters, a deleted session)."""
    path = tmp_path / "source.db"
    store = await open_store(str(path))
    try:
        await fill(store)
    finally:
        await store.close()
    return path


async def exported(db: str | Path) -> tuple[list[str], StoreCounts]:
    """Every record of the store at `db` as JSON text, and its counts, read through the store API."""
    store = await open_store(str(db))
    try:
        return dumped(await records(store)), await store.counts()
    finally:
        await store.close()


def copy(cwd: Path, source: str | Path, destination: str | Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return cli(cwd, "copy", "--from", str(source), "--to", str(destination), *flags)


def copied(done: subprocess.CompletedProcess[str], added: int) -> None:
    """A copy that succeeded: the counts line alone on stdout, nothing on stderr (not a terminal)."""
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    [line] = done.stdout.splitlines()
    assert line.startswith(f"{SUMMARY} ({added} runs added by this copy)") and "verified" in line, line


async def test_a_copy_into_sqlite_is_exact_and_a_second_copy_adds_nothing(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy" / "target.db"
    copied(copy(tmp_path, source, target, "--quiet"), added=5)
    original, counts = await exported(source)
    assert counts == COUNTS
    assert await exported(target) == (original, COUNTS)
    copied(copy(tmp_path, source, target), added=0)
    assert await exported(target) == (original, COUNTS)
    assert await exported(source) == (original, COUNTS)  # the source is read, not changed


async def test_a_copy_into_postgres_and_back_is_exact_and_a_second_copy_adds_nothing(
    source: Path, database: str, tmp_path: Path
) -> None:
    copied(copy(tmp_path, source, database), added=5)
    original, _ = await exported(source)
    assert await exported(database) == (original, COUNTS)
    copied(copy(tmp_path, source, database), added=0)
    assert await exported(database) == (original, COUNTS)
    back = tmp_path / "back.db"
    copied(copy(tmp_path, database, back), added=5)
    assert await exported(back) == (original, COUNTS)


async def test_a_missing_source_is_one_line_and_creates_nothing(tmp_path: Path) -> None:
    line = one_line_refusal(copy(tmp_path, tmp_path / "missing.db", tmp_path / "target.db"), status=2)
    assert "missing.db is not an existing SQLite file" in line
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "target.db").exists()


async def test_copying_a_store_onto_itself_is_refused(source: Path, tmp_path: Path) -> None:
    line = one_line_refusal(copy(tmp_path, source, tmp_path / "." / "source.db"), status=2)
    assert "the same store" in line


async def test_an_unusable_destination_is_one_sentence_and_status_1(source: Path, tmp_path: Path) -> None:
    line = one_line_refusal(copy(tmp_path, source, source / "below-a-file.db"), status=1)
    assert "Cannot create the session database" in line


async def test_a_url_of_another_kind_is_one_sentence_without_the_url(source: Path, tmp_path: Path) -> None:
    line = one_line_refusal(copy(tmp_path, source, "mysql://root:s3cret@localhost/db"), status=1)
    assert "mysql URL names no store" in line and "s3cret" not in line


@pytest.mark.parametrize("quiet", [False, True], ids=["progress", "quiet"])
async def test_the_progress_bar_shows_on_a_terminal_unless_quiet(source: Path, tmp_path: Path, quiet: bool) -> None:
    """stderr a terminal: a progress bar over the sessions there, unless --quiet; stdout the same line."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [server_script(), "copy", "--from", str(source), "--to", str(tmp_path / "t.db")]
            + (["--quiet"] if quiet else []),
            cwd=tmp_path,
            env=environment(tmp_path / "home", TERM="xterm", COLUMNS="100"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
        )
        os.close(terminal)  # the command holds the only other end: reading ends when it exits
        terminal = -1
        shown = _drain(controller)  # read while it runs, so a full terminal buffer never blocks it
        stdout, _ = process.communicate(timeout=TIMEOUT)
    finally:
        if terminal != -1:
            os.close(terminal)
        os.close(controller)
    assert process.returncode == 0 and stdout.startswith(SUMMARY), stdout
    if quiet:
        assert shown == ""
    else:
        assert re.search(r"Copying sessions.*4/4", shown, re.DOTALL), shown


def _drain(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the terminal's other end is closed: all read
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")
