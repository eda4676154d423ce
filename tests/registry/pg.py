"""A throwaway PostgreSQL server on loopback for the registry's tests.

``PostgresServer.start()`` finds the server binaries (on PATH, or Debian's
/usr/lib/postgresql/<version>/bin, or Homebrew's), runs ``initdb`` in a fresh temporary
folder and starts ``postgres`` on 127.0.0.1 and a free port, with fsync off (the data is
thrown away). As root it runs the server as the ``postgres`` user (or ``nobody``), since
PostgreSQL refuses to run as root. ``stop()`` stops it and deletes the folder.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

INSTALL = "apt-get install postgresql (macOS: brew install postgresql)"
SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/opt/homebrew/opt/postgresql*/bin",
          "/usr/local/opt/postgresql*/bin")  # fmt: skip


def find_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (the newest version), or None."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    found = [Path(d) for pattern in SEARCH for d in glob.glob(pattern)]
    found = [d for d in found if (d / "initdb").exists() and (d / "pg_ctl").exists()]

    def version(d: Path):
        digits = "".join(c if c.isdigit() else " " for c in str(d)).split()
        return [int(x) for x in digits] or [0]

    return max(found, key=version) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One private server; ``url(db)`` names a database on it."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="forge-pg-"))
        self.port = _free_port()
        self.user = None  # the OS user running the server (None: us)
        if os.geteuid() == 0:
            for candidate in ("postgres", "nobody"):
                try:
                    self.user = pwd.getpwnam(candidate)
                    break
                except KeyError:
                    continue
            os.chown(self.folder, self.user.pw_uid, self.user.pw_gid)

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        kwargs = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        return subprocess.run(
            [str(self.bindir / args[0]), *args[1:]], capture_output=True, text=True,
            timeout=timeout, cwd=self.folder, check=False, **kwargs,
        )  # fmt: skip

    def start(self) -> PostgresServer:
        data = self.folder / "data"
        done = self._run("initdb", "-D", str(data), "-A", "trust", "-U", "forge", "-E", "UTF8",
                         "--locale=C", "--no-sync")  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()[-800:]}")
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=100")  # fmt: skip
        done = self._run("pg_ctl", "-D", str(data), "-l", str(self.folder / "server.log"),
                         "-w", "-t", "60", "-o", options, "start")  # fmt: skip
        if done.returncode:
            log = (self.folder / "server.log").read_text(errors="replace")[-800:]
            self.stop()
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()} {log}")
        return self

    def stop(self) -> None:
        if (self.folder / "data" / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://forge@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database; return its URL."""
        import psycopg

        name = f"reg_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url().replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # a generated name, not user input
        return self.url(name)
