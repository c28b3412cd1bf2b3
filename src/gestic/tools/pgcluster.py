"""Throwaway PostgreSQL clusters for the tests and the benchmarks, from Debian's server package.

`start()` runs `initdb` in a new temporary directory and starts the server with `pg_ctl`: it
listens on 127.0.0.1 on a free port and on a Unix socket in that directory; its superuser
(`gestic`) logs in over TCP with a random password, over the socket without one. PostgreSQL
refuses to run as root: as root, the directory belongs to the `postgres` user that Debian's
postgresql-common creates and every server command runs as that user (`runuser`). `stop()`
stops the server of that data directory (`pg_ctl stop`, which signals the PID in its
postmaster.pid; that PID is killed if the server does not stop), then removes the directory.

    with pgcluster.start() as cluster:
        cluster.create_database("t1")
        url = cluster.url("t1")  # postgresql+psycopg://gestic:<password>@127.0.0.1:<port>/t1
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import psycopg
from psycopg import sql

from gestic.errors import PgClusterError
from gestic.tools.ports import free_port

__all__ = [
    "BINDIR_ENV",
    "INSTALL_HINT",
    "PG_VERSION",
    "PgCluster",
    "find_bindir",
    "start",
]

PG_VERSION: Final = 15
#: Where the server binaries are, when not Debian's (`/usr/lib/postgresql/<version>/bin`).
BINDIR_ENV: Final = "GESTIC_PG_BINDIR"
DEBIAN_LIB: Final = Path("/usr/lib/postgresql")
INSTALL_HINT: Final = (
    f"install Debian's PostgreSQL {PG_VERSION} server (`apt-get install postgresql`, which "
    f"`nox -s tests` does as root), or point {BINDIR_ENV} at a directory with initdb and pg_ctl"
)
#: The unprivileged user the server runs as when gestic runs as root (Debian's package's).
SERVER_USER: Final = "postgres"
SUPERUSER: Final = "gestic"
HOST: Final = "127.0.0.1"
TIMEOUT_S: Final = 60
#: A cluster whose data may be lost on a crash (tests): no waiting for the disk.
NOT_DURABLE: Final = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
_PORT_ATTEMPTS: Final = 3


def find_bindir() -> Path | None:
    """The server binaries: $GESTIC_PG_BINDIR, else Debian's PostgreSQL 15, else the newest
    Debian one installed; None if there are none."""
    if env := os.environ.get(BINDIR_ENV):
        candidates = [Path(env)]
    else:
        installed = sorted(
            (d for d in DEBIAN_LIB.glob("*/bin") if d.parent.name.isdigit()),
            key=lambda d: int(d.parent.name),
            reverse=True,
        )
        candidates = [DEBIAN_LIB / str(PG_VERSION) / "bin", *installed]
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class PgCluster:
    """A running throwaway cluster: its directory, port and superuser password."""

    def __init__(
        self, *, base: Path, bindir: Path, run_as: str | None, port: int, password: str
    ) -> None:
        self.base = base
        self.data = base / "data"
        self.log = base / "server.log"
        self.bindir = bindir
        self.run_as = run_as
        self.port = port
        self.password = password
        self.pid: int | None = None
        self._admin: psycopg.Connection[Any] | None = None

    def __repr__(self) -> str:
        return f"PgCluster({HOST}:{self.port}, {self.base})"

    @property
    def socket_dir(self) -> Path:
        return self.base

    def url(self, database: str = "postgres", *, driver: str = "psycopg") -> str:
        """The SQLAlchemy URL of `database` over TCP, with the superuser's password."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{SUPERUSER}:{self.password}@{HOST}:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        self._execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        """Drop `name`, ending the sessions still connected to it."""
        self._execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def _execute(self, statement: sql.Composed) -> None:
        try:
            if self._admin is None or self._admin.closed:
                self._admin = psycopg.connect(
                    host=str(self.socket_dir),
                    port=self.port,
                    user=SUPERUSER,
                    dbname="postgres",
                    autocommit=True,
                )
            self._admin.execute(statement)
        except psycopg.Error as exc:
            text = statement.as_string(self._admin) if self._admin else str(statement)
            raise PgClusterError(f"PostgreSQL cluster {self.base}: {text}: {exc}") from exc

    # -- server commands --------------------------------------------------------------------

    def _command(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        return [*prefix, *args]

    def _run(self, args: Sequence[str], what: str, *, check: bool = True) -> int:
        try:
            proc = subprocess.run(
                self._command(*args),
                cwd=self.base,  # readable by the server user (root's cwd may not be)
                env={**os.environ, "LC_ALL": "C"},
                capture_output=True,
                text=True,
                check=False,
                timeout=TIMEOUT_S + 30,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PgClusterError(f"PostgreSQL cluster {self.base}: {what}: {exc}") from exc
        if check and proc.returncode != 0:
            raise PgClusterError(
                f"PostgreSQL cluster {self.base}: {what} failed (exit {proc.returncode}):\n"
                f"{_tail(proc.stderr + proc.stdout)}"
            )
        return proc.returncode

    def _pg_ctl(self, *args: str, check: bool = True) -> int:
        cmd = [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-t", str(TIMEOUT_S)]
        return self._run([*cmd, *args], f"pg_ctl {args[-1]}", check=check)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _start(self, settings: Mapping[str, str]) -> None:
        conf = {
            "listen_addresses": HOST,
            "unix_socket_directories": str(self.socket_dir),
            **settings,
        }
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as f:
            f.write("\n# gestic.tools.pgcluster\n")
            f.writelines(f"{key} = {_quoted(value)}\n" for key, value in conf.items())
        for _ in range(_PORT_ATTEMPTS):
            # The port is free now; another process may take it before the server binds it.
            self.port = free_port()
            if self._pg_ctl("-l", str(self.log), "-o", f"-p {self.port}", "start", check=False):
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                if "could not bind" in log or "already in use" in log:
                    continue
                raise PgClusterError(
                    f"PostgreSQL cluster {self.base}: the server did not start:\n{_tail(log)}"
                )
            self.pid = self._postmaster_pid()
            return
        raise PgClusterError(f"PostgreSQL cluster {self.base}: found no free port to listen on")

    def stop(self) -> None:
        """Stop the server (by its data directory's PID) and remove the cluster's directory."""
        if self._admin is not None:
            with contextlib.suppress(psycopg.Error):
                self._admin.close()
            self._admin = None
        try:
            running = self._postmaster_pid() is not None
            if running and self._pg_ctl("-m", "fast", "stop", check=False) != 0:
                self._kill()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
        if self.base.exists():
            raise PgClusterError(f"PostgreSQL cluster {self.base}: could not remove its directory")

    def _kill(self) -> None:
        pid = self._postmaster_pid()
        if pid is None or pid != self.pid:
            return  # not the server this object started
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start(
    *,
    bindir: Path | None = None,
    parent: Path | None = None,
    settings: Mapping[str, str] | None = None,
    durable: bool = False,
) -> PgCluster:
    """A new cluster in a temporary directory under `parent` (the system's temp dir), started.

    `settings`: postgresql.conf settings on top of the defaults. `durable`: PostgreSQL's
    defaults (every commit synced, as SQLite does: benchmarks); otherwise nothing waits for
    the disk (tests). PgClusterError says what is missing or what the server logged.
    """
    bindir = bindir or find_bindir()
    if bindir is None:
        raise PgClusterError(f"no PostgreSQL server binaries found: {INSTALL_HINT}")
    run_as = SERVER_USER if os.geteuid() == 0 else None
    owner: pwd.struct_passwd | None = None
    if run_as is not None:
        try:
            owner = pwd.getpwnam(run_as)
        except KeyError:
            raise PgClusterError(
                f"PostgreSQL refuses to run as root and there is no user {run_as!r} to run it "
                "as (Debian's postgresql-common creates it)"
            ) from None
    # Under the system's temp dir, not pytest's: the server user must reach the directory.
    base = Path(tempfile.mkdtemp(prefix="gestic-pg-", dir=parent))
    cluster = PgCluster(
        base=base, bindir=bindir, run_as=run_as, port=0, password=secrets.token_hex(16)
    )
    try:
        if owner is not None:
            os.chown(base, owner.pw_uid, owner.pw_gid)
        pwfile = base / "superuser.pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(cluster.password + "\n")
        if owner is not None:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        cluster._run(
            [
                str(bindir / "initdb"), "-D", str(cluster.data), "-U", SUPERUSER,
                f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
            ],
            "initdb",
        )  # fmt: skip
        pwfile.unlink()
        cluster._start({**({} if durable else NOT_DURABLE), **(settings or {})})
    except BaseException:
        cluster.stop()
        raise
    return cluster
