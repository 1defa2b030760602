"""Schema versions: upgrades keep every row, a failing migration rolls back, newer files are refused."""

import sqlite3
from pathlib import Path

import pytest

from mcp_server_sessions.store import MigrationFailed, NewMessage, NewRun, SchemaTooNew, SqliteStore
from mcp_server_sessions.store.sqlite_schema import LATEST_VERSION, MIGRATIONS, Migration

pytestmark = pytest.mark.anyio


async def write_one_run(path: Path, migrations: tuple[Migration, ...] = MIGRATIONS) -> None:
    store = await SqliteStore.open(path, migrations)
    try:
        run = NewRun(run_id="r1", input="hello", content="hi", messages=[NewMessage(role="user", content="hello")])
        await store.for_user("alice").append_run("s1", run)
    finally:
        await store.close()


def versions(path: Path) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]


async def test_a_new_file_gets_every_migration(db_path: Path) -> None:
    await write_one_run(db_path)
    assert versions(db_path) == [m.version for m in MIGRATIONS]


async def test_an_upgrade_migrates_in_place_and_keeps_rows(db_path: Path) -> None:
    await write_one_run(db_path)
    upgrade = Migration(LATEST_VERSION + 1, "add a column", ("ALTER TABLE sessions ADD COLUMN color TEXT",))
    store = await SqliteStore.open(db_path, (*MIGRATIONS, upgrade))
    try:
        history = await store.for_user("alice").get_chat_history("s1")
        assert [m.content for m in history.messages] == ["hello"]
    finally:
        await store.close()
    assert versions(db_path)[-1] == LATEST_VERSION + 1


async def test_a_failing_migration_rolls_back_and_leaves_the_file_usable(db_path: Path) -> None:
    await write_one_run(db_path)
    broken = Migration(
        LATEST_VERSION + 1,
        "broken",
        ("CREATE TABLE half_done (x INTEGER)", "ALTER TABLE no_such_table ADD COLUMN y TEXT"),
    )
    with pytest.raises(MigrationFailed, match=rf"migration {LATEST_VERSION + 1} \(broken\) failed and was rolled back"):
        await SqliteStore.open(db_path, (*MIGRATIONS, broken))
    assert versions(db_path) == [m.version for m in MIGRATIONS]
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = await SqliteStore.open(db_path)
    try:
        assert (await store.for_user("alice").get_session("s1")).run_count == 1
    finally:
        await store.close()


async def test_a_file_from_a_newer_server_is_refused(db_path: Path) -> None:
    await write_one_run(db_path)
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', '2030-01-01T00:00:00Z')")
    with pytest.raises(SchemaTooNew, match="upgrade mcp-server-sessions"):
        await SqliteStore.open(db_path)


async def test_the_file_is_private_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "sessions.db"
    await write_one_run(path)
    assert path.stat().st_mode & 0o777 == 0o600
