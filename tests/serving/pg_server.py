"""A throwaway PostgreSQL server for tests: initdb + pg_ctl into a temporary folder on a free port.

The binaries are looked for under ``/usr/lib/postgresql/*/bin`` (Debian's ``postgresql`` package, newest
first) and on ``PATH``. PostgreSQL refuses to run as root, so as root the server runs as the ``postgres``
OS user (created by the Debian package) through ``runuser``. Authentication is ``trust`` on 127.0.0.1
only; ``fsync`` is off: the data is thrown away.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from ports import free_port

__all__ = ["PgServer", "find_binaries"]


def find_binaries() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None when PostgreSQL is not installed."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version(p.parent.name),
                        reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all((folder / b).is_file() for b in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


class PgServer:
    """One running server; :meth:`new_database` gives each test its own empty database."""

    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.root = Path(tempfile.mkdtemp(prefix="yibao-pg-"))
        self.port = free_port()
        self._n = 0
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root and there is no 'postgres' OS user to run PostgreSQL as") from None
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def start(self) -> PgServer:
        data = self.root / "data"
        self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync",
                  "--locale=C.UTF-8")
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "-D", str(data), "-o", opts, "-l", str(self.root / "server.log"), "-w", "-t", "60",
                  "start")
        return self

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        import psycopg

        self._n += 1
        name = f"clues_{os.getpid()}_{self._n}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def _run(self, binary: str, *args: str) -> None:
        cmd = [*self._as_user, str(self.binaries / binary), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root)
        if done.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}{done.stderr}{tail}")


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in name.split(".") if x.isdigit())

