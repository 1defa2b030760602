"""The database file and its folders: private modes whatever the umask, clear words when a file cannot be used."""

import logging
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from mcp_server_sessions.store import NewMessage, NewRun, SqliteStore, StoreBusy, sqlite_connection

pytestmark = pytest.mark.anyio

START_TIMEOUT = 30


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def umask(mask: int) -> Iterator[None]:
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def a_run(run_id: str = "r1") -> NewRun:
    return NewRun(run_id=run_id, input="hello", content="hi", messages=[NewMessage(role="user", content="hello")])


@pytest.mark.parametrize("mask", [0o000, 0o022, 0o077])
async def test_created_folders_are_0700_and_the_file_0600_whatever_the_umask(tmp_path: Path, mask: int) -> None:
    db = tmp_path / "a" / "b" / "c" / "sessions.db"
    tmp_path.chmod(0o755)
    with umask(mask):
        store = await SqliteStore.open(db)
    try:
        await store.for_user("alice").append_run("s1", a_run())
        assert {folder.name: mode(folder) for folder in (db.parents[2], db.parents[1], db.parent)} == {
            "a": 0o700,
            "b": 0o700,
            "c": 0o700,
        }
        assert mode(db) == 0o600
        assert mode(tmp_path) == 0o755  # a folder that already existed is left as it was
    finally:
        await store.close()


async def test_wal_and_shm_are_0600_beside_an_older_0644_file_and_a_warning_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "old.db"
    with umask(0o022), closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE placeholder (x)")  # an older server's file, 0644 by the umask
    assert mode(db) == 0o644
    with umask(0o022), caplog.at_level(logging.WARNING):
        store = await SqliteStore.open(db)
    try:
        await store.for_user("alice").append_run("s1", a_run())
        companions = [Path(f"{db}-wal"), Path(f"{db}-shm")]
        assert {path.name: mode(path) for path in companions} == {"old.db-wal": 0o600, "old.db-shm": 0o600}
    finally:
        await store.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(db) in text and "644" in text and "chmod 600" in text for text in warnings), warnings
    assert mode(db) == 0o644  # the owner's choice is reported, not overridden


async def test_wal_and_shm_left_0644_by_an_older_server_become_0600(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with umask(0o022), closing(sqlite3.connect(db)) as older:
        older.execute("PRAGMA journal_mode = WAL")
        older.execute("CREATE TABLE placeholder (x)")  # the older server is still running: its -wal and -shm exist
        companions = [Path(f"{db}-wal"), Path(f"{db}-shm")]
        assert [mode(path) for path in companions] == [0o644, 0o644]
        store = await SqliteStore.open(db)
        try:
            assert [mode(path) for path in companions] == [0o600, 0o600]
        finally:
            await store.close()


def without_root_privileges() -> list[str]:
    """A command prefix that takes from root its power to write any file, so a read-only file is read-only."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


OPEN_AND_REPORT = """
import asyncio, sys
from mcp_server_sessions.store import SqliteStore, StoreError

async def main() -> None:
    try:
        store = await SqliteStore.open(sys.argv[1])
    except StoreError as exc:
        print(exc)
    else:
        await store.close()
        print("opened")

asyncio.run(main())
"""


def test_a_read_only_database_file_is_reported_as_not_writable(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE placeholder (x)")
    db.chmod(0o400)
    result = subprocess.run(
        [*without_root_privileges(), sys.executable, "-c", OPEN_AND_REPORT, str(db)],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    message = result.stdout.strip()
    assert message.startswith("Cannot write the session database"), message
    assert "create" not in message and str(db) in message and "--db" in message
    assert "\n" not in message


async def test_a_lock_held_by_any_process_is_blamed_on_another_process(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_connection, "BUSY_TIMEOUT_MS", 20)  # give up in well under a second
    store = await SqliteStore.open(db_path)
    try:
        with closing(sqlite3.connect(db_path, isolation_level=None)) as holder:  # e.g. the sqlite3 shell
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreBusy) as refused:
                await store.for_user("alice").append_run("s1", a_run())
            holder.execute("ROLLBACK")
        assert str(refused.value) == "The session database stayed locked by another process; retry the call."
        await store.for_user("alice").append_run("s1", a_run())  # once the lock is gone, the same call succeeds
    finally:
        await store.close()
