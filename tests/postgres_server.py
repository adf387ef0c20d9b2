"""A real PostgreSQL (Debian's package) on loopback, in a temporary directory: for Unleash,
and for the receiver's PostgreSQL journal.

PostgreSQL refuses to run as root, so as root its commands run as the `postgres` user.
`fsync=off`: a crash of the server process still loses nothing (the OS has the pages), and
the suite is not the place to measure disks.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

from tests import processes


def _bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run scripts/test, which installs it")
    return Path(found[-1]).parent


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


class Postgres:
    def __init__(self, home: Path, *, fsync: bool = False) -> None:
        self.home = home
        self.fsync = fsync
        self.data = home / "pgdata"
        self.port = processes.free_port()
        self.user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
        self._bin = _bin()
        self._databases = 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its URL."""
        self._databases += 1
        name = name or f"journal_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_postgres([str(self._bin / "pg_ctl"), "-D", str(self.data), *args]),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        self._pg_ctl(
            "-l",
            str(self.home / "postgres.log"),
            "-w",
            "start",
            "-o",
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
            f" -c fsync={'on' if self.fsync else 'off'} -c max_connections=300",
        )

    def stop(self, mode: str = "fast") -> None:
        self._pg_ctl("-m", mode, "-w", "stop")

    def initdb(self) -> None:
        self.data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres")
            shutil.chown(self.data, "postgres")
        subprocess.run(
            _as_postgres(
                [str(self._bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", self.user]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )


@contextlib.contextmanager
def blocked_writes(url: str) -> Iterator[None]:
    """Another session holds the lease row: renewals and fenced writes wait meanwhile."""
    with psycopg.connect(url) as connection:
        connection.execute("SELECT * FROM leases FOR UPDATE")
        yield
        connection.rollback()


@contextlib.contextmanager
def running(*, fsync: bool = False) -> Iterator[Postgres]:
    # Its own directory under /tmp: pytest's are private to root, and PostgreSQL runs as
    # `postgres` when the tests run as root.
    server = Postgres(Path(tempfile.mkdtemp(prefix="selfheal-postgres-")), fsync=fsync)
    try:
        server.initdb()
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            server.stop("immediate")
        shutil.rmtree(server.home, ignore_errors=True)
