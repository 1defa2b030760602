"""A throwaway PostgreSQL cluster for the tests: `initdb` + `pg_ctl` in a temporary directory, on a
free port, as the `postgres` account when the tests run as root (PostgreSQL refuses to run as root),
torn down at the end. Debian's `postgresql` package provides the binaries.

Without them the PostgreSQL tests are skipped with one line saying how to install them, except when
CI is set: then they fail, so CI cannot pass by not running them.
"""

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.http_server import free_port

USER = "sessions"
START_TIMEOUT = 60
INSTALL = "install PostgreSQL's server (Debian: apt-get install postgresql) to run the PostgreSQL tests"


def server_binaries() -> Path | None:
    """The directory of `initdb` and `pg_ctl`: the newest Debian cluster version, else the PATH's."""
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))
    if versions:
        return Path(versions[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl", path=str(Path(found).parent)) else None


@dataclass
class Cluster:
    directory: Path
    port: int
    bin: Path
    run_as: list[str]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.directory / "data"), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        done = self.pg_ctl("-o", options, "-l", str(self.directory / "server.log"), "-w", "-t", "60", "start")
        assert done.returncode == 0, f"pg_ctl start failed: {done.stderr}\n{self.log()}"

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-m", mode, "-w", "stop")

    async def create_database(self, name: str) -> str:
        """A new, empty database of the cluster; its URL."""
        import asyncpg

        admin = await asyncpg.connect(self.url())
        try:
            await admin.execute(f"CREATE DATABASE {name}")
        finally:
            await admin.close()
        return self.url(name)

    async def drop_database(self, name: str) -> None:
        import asyncpg

        admin = await asyncpg.connect(self.url())
        try:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        finally:
            await admin.close()

    def log(self) -> str:
        path = self.directory / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def start_cluster() -> Iterator[Cluster]:
    binaries = server_binaries()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL server binaries (initdb, pg_ctl) are missing in CI: {INSTALL}")
        pytest.skip(f"PostgreSQL server binaries (initdb, pg_ctl) not found: {INSTALL}")
    directory = Path(tempfile.mkdtemp(prefix="pg-cluster-"))
    run_as: list[str] = []
    cluster = Cluster(directory, free_port(), binaries, run_as)
    try:
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")  # made by Debian's package
            os.chown(directory, account.pw_uid, account.pw_gid)
            run_as.append("runuser")
            run_as += ["-u", "postgres", "--"]
        initdb = [*run_as, str(binaries / "initdb"), "-D", str(directory / "data"), "-U", USER]
        done = subprocess.run(
            [*initdb, "--auth=trust", "-E", "UTF8", "--locale=C"],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
        )
        assert done.returncode == 0, f"initdb failed: {done.stderr}"
        cluster.start()
        yield cluster
    finally:
        if (directory / "data" / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.TimeoutExpired):
                cluster.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
