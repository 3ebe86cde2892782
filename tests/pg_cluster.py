"""A throwaway PostgreSQL server for the tests: a real cluster in a temporary folder.

`initdb` + `pg_ctl` from the machine's PostgreSQL (/usr/lib/postgresql/*/bin, or $FACER_PG_BIN),
else from the `pgserver` package (which carries the binaries in its wheel). `initdb` refuses to
run as root, so as root the cluster belongs to an unprivileged user (`postgres` where it exists,
else `nobody`). It listens on 127.0.0.1 at a free port, trusts local connections, and is stopped
and deleted when the tests end. Where no binaries can be found the PostgreSQL tests skip with the
reason — unless FACER_REQUIRE_POSTGRES=1 (set by `.ci/run`), where they fail instead.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class NoPostgres(Exception):
    """No PostgreSQL server binaries on this machine."""


def server_binaries() -> Path:
    """The folder holding initdb, pg_ctl and postgres: $FACER_PG_BIN, the machine's newest, or pgserver's."""
    for folder in [os.environ.get("FACER_PG_BIN", ""), *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]:
        if folder and (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    try:
        import pgserver  # type: ignore[import-not-found]  # imported only when needed: it sets up a runtime dir
    except ImportError:
        pass
    else:
        folder = str(Path(pgserver.__file__).parent / "pginstall" / "bin")
        if (Path(folder) / "initdb").is_file():
            return Path(folder)
    raise NoPostgres("no PostgreSQL server binaries (install Debian's postgresql, or pip install pgserver)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Cluster:
    """One PostgreSQL server: `start()`, `stop()`, `restart()`, `url(database)`."""

    def __init__(self) -> None:
        self.bin = server_binaries()
        self.folder = Path(tempfile.mkdtemp(prefix="facer-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.owner = None if os.geteuid() != 0 else self._unprivileged_user()
        if self.owner is not None:
            os.chown(self.folder, self.owner.pw_uid, self.owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "facer", "--auth=trust", "-E", "UTF8", "--no-sync")
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.folder}'\nfsync = off\nmax_connections = 100\n"
            )

    @staticmethod
    def _unprivileged_user() -> pwd.struct_passwd:
        for name in ("postgres", "nobody"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise NoPostgres("running as root and no unprivileged user (postgres, nobody) to own the cluster")

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        kwargs = {}
        if self.owner is not None:
            kwargs = {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []}
        return subprocess.run(
            [str(self.bin / tool), *args],
            capture_output=True,
            text=True,
            check=check,
            cwd=self.folder,
            timeout=120,
            **kwargs,  # type: ignore[arg-type]
        )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop", check=False)

    def restart(self) -> None:
        self.stop()
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://facer@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


def wait_until_up(url: str, timeout_s: float = 30) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
