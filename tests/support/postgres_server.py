"""A throwaway PostgreSQL cluster on a free port, which tests may restart at will.

Never the machine's shared server on 5432: `initdb` makes a fresh cluster in a temporary
directory, `postgres` serves it in the foreground as a child of the test run (as the `postgres`
user when the tests run as root, which PostgreSQL refuses), and `close()` removes it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg

from tests.support import ServerProcess, _die_with_parent, log_tail, wait_until
from tests.support.ports import free_port


class PostgresServerError(RuntimeError):
    """The cluster could not be made or did not come up; the message carries its log tail."""


def postgres_bindir() -> Path | None:
    """Directory holding initdb and postgres (Debian's newest, or on PATH), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _version(path: str) -> float:
    try:
        return float(Path(path).parent.parent.name)
    except ValueError:
        return 0.0


class PostgresServer(ServerProcess):
    """One cluster, trust authentication on loopback, user `postgres`, fsync off."""

    def __init__(self, *, max_connections: int = 100, start_timeout: float = 30.0) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise PostgresServerError(
                "PostgreSQL's server is not installed (apt-get install postgresql)"
            )
        self.bindir = bindir
        self.port = free_port()
        self.max_connections = max_connections
        self.start_timeout = start_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="roomchat-pg-"))
        self.datadir = self.workdir / "data"
        self.log_path = self.workdir / "postgres.log"
        self.proc: subprocess.Popen[bytes] | None = None
        # PostgreSQL refuses to run as root: as root, run it as the `postgres` user.
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            owner = pwd.getpwnam(self.user)
            os.chown(self.workdir, owner.pw_uid, owner.pw_gid)

    def url(self, database: str = "postgres", **query: str) -> str:
        """postgres:// URL of `database`, with libpq options (e.g. application_name)."""
        options = "&".join(f"{key}={value}" for key, value in query.items())
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}" + (
            f"?{options}" if options else ""
        )

    def connect(self, database: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection as the superuser."""
        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=2)

    def start(self) -> PostgresServer:
        """initdb on first start, then serve on `self.port` until a query answers."""
        if self.running:
            raise PostgresServerError(f"postgres on port {self.port} is already running")
        if not self.datadir.exists():
            self._run(
                str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                "--auth=trust", "-E", "UTF8", "--no-sync", "--locale=C",
            )  # fmt: skip
        argv = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.datadir),
            "-p",
            str(self.port),
            "-k",
            str(self.workdir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"max_connections={self.max_connections}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "shared_buffers=32MB",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self.user,
                preexec_fn=_die_with_parent,
            )

        def answers() -> bool | None:
            if not self.running:
                return True
            try:
                with self.connect() as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.OperationalError:
                return None

        wait_until(answers, timeout=self.start_timeout, interval=0.1, what=f"postgres :{self.port}")
        if not self.running:
            raise PostgresServerError(f"postgres did not start:\n{log_tail(self.log_path)}")
        return self

    def stop(self, timeout: float = 30.0) -> int | None:
        """Fast shutdown (SIGINT): every client connection is cut, as in a real restart."""
        return self._end(signal.SIGINT, timeout)

    def restart(self) -> PostgresServer:
        """Stop (cutting every connection), then start again on the same port."""
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def _run(self, *argv: str) -> None:
        result = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=120, user=self.user, check=False
        )
        if result.returncode != 0:
            raise PostgresServerError(f"{argv[0]} failed:\n{result.stdout}{result.stderr}")
