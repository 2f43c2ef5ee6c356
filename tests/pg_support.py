"""A real PostgreSQL server for the tests: Debian's, in a temporary folder, on a free port.

:class:`PgServer` runs ``initdb`` and ``pg_ctl`` from ``/usr/lib/postgresql/<v>/bin``
(``scripts/system-packages.sh`` installs them), as the ``postgres`` account when the
tests run as root (PostgreSQL refuses to run as root), listening on 127.0.0.1 only,
with trust authentication for its one user. Durability is switched off (``fsync``):
the cluster lives as long as the test session.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

USER = "miqa"


def pg_bin() -> Path | None:
    """The folder of Debian's PostgreSQL programs (the newest version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """A PostgreSQL cluster of its own; :meth:`new_database` gives each test a database."""

    def __init__(self) -> None:
        found = pg_bin()
        if found is None:
            raise RuntimeError(
                "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): "
                "run bash scripts/system-packages.sh"
            )
        self.bin = found
        self.folder = Path(tempfile.mkdtemp(prefix="miqa-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self._names = itertools.count(1)
        self._as: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.folder, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200",
            "start",
        )

    def _run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self._as, str(self.bin / program), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stdout}\n{done.stderr}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A new, empty database's URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
