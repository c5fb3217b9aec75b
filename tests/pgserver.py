"""Start and stop a throwaway PostgreSQL cluster for the test suite.

The cluster is for tests only: it runs with ``fsync=off`` and other unsafe-but-fast
settings, listens on 127.0.0.1 on a free port, and has an application role ``pca``
with a random password (scram-sha-256 over TCP) owning a database ``pca``.

Usage from Python::

    with PostgresServer.start(tmp_dir) as server:
        schema = create_schema(server.url)
        ...

Usage from a shell::

    URL=$(python -m tests.pgserver start DIR)   # leaves the server running
    python -m tests.pgserver stop DIR

When running as root, ``initdb`` and ``pg_ctl`` are run as the ``postgres`` OS user via
``runuser -u postgres --``.  If the ``postgres`` user cannot reach ``base_dir`` (pytest's
``/tmp/pytest-of-root`` is mode 0700) or ``base_dir`` is too long for a unix socket
path, the cluster lives in a private directory under ``/tmp`` instead, which ``stop()``
removes as well.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import psycopg
from psycopg import sql

INSTALL_HINT = "install PostgreSQL (apt-get install -y postgresql) or set PCA_TEST_POSTGRES_URL"
APP_ROLE = "pca"
APP_DB = "pca"
SUPERUSER = "postgres"
OS_USER = "postgres"
STATE_FILE = "pgserver.json"
# sun_path is 108 bytes; the socket is "<dir>/.s.PGSQL.<port>" (+ ".lock" for the lock file).
_MAX_SOCKET_DIR_LEN = 80
_PG_CTL_TIMEOUT_S = 60

_SERVER_SETTINGS: dict[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",  # TEST cluster only: data may be lost on OS crash, we don't care.
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "max_connections": "200",
    "shared_buffers": "'128MB'",
    "password_encryption": "'scram-sha-256'",
    "log_min_messages": "warning",
}


def find_pg_bin() -> Path:
    """Return the directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    Order: ``$PCA_PG_BIN``; the highest ``/usr/lib/postgresql/<version>/bin`` (Debian);
    ``pg_config --bindir``.
    """
    override = os.environ.get("PCA_PG_BIN")
    if override:
        path = Path(override)
        if not (path / "initdb").is_file():
            raise RuntimeError(f"PCA_PG_BIN={override} has no initdb; {INSTALL_HINT}")
        return path

    candidates: list[tuple[tuple[int, ...], Path]] = []
    for bindir in Path("/usr/lib/postgresql").glob("*/bin"):
        version = bindir.parent.name
        if re.fullmatch(r"\d+(\.\d+)*", version) and (bindir / "initdb").is_file():
            candidates.append((tuple(int(p) for p in version.split(".")), bindir))
    if candidates:
        return max(candidates)[1]

    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], check=True, capture_output=True, text=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            out = ""
        if out and (Path(out) / "initdb").is_file():
            return Path(out)

    raise RuntimeError(f"PostgreSQL server binaries (initdb) not found; {INSTALL_HINT}")


def _is_root() -> bool:
    return os.geteuid() == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    return env


def _run(args: Sequence[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL tool, as the ``postgres`` OS user if we are root."""
    cmd = list(args)
    if _is_root():
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        cmd = [runuser, "-u", OS_USER, "--", *cmd]
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def _chown_to_postgres(path: Path) -> None:
    shutil.chown(path, user=OS_USER, group=OS_USER)


def _postgres_can_use(path: Path) -> bool:
    """As root: can the ``postgres`` OS user write into and traverse ``path``?"""
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    test = shutil.which("test") or "/usr/bin/test"
    proc = subprocess.run(
        [runuser, "-u", OS_USER, "--", test, "-w", str(path), "-a", "-x", str(path)],
        cwd="/",
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


def _check_root_prerequisites() -> None:
    try:
        pwd.getpwnam(OS_USER)
    except KeyError:
        raise RuntimeError(
            f"running as root but there is no '{OS_USER}' OS user to run initdb as; " + INSTALL_HINT
        ) from None
    if shutil.which("runuser") is None and not Path("/usr/sbin/runuser").exists():
        raise RuntimeError("running as root but runuser (util-linux) is not available")


class PostgresServer:
    """A running throwaway PostgreSQL cluster. Create with :meth:`start`."""

    def __init__(
        self,
        *,
        base_dir: Path,
        cluster_dir: Path,
        bin_dir: Path,
        port: int,
        password: str,
    ) -> None:
        self.base_dir = base_dir
        #: Directory holding ``data/``, the unix socket and ``postgres.log``.
        #: Equal to ``base_dir`` unless a private fallback directory was needed.
        self.cluster_dir = cluster_dir
        self.bin_dir = bin_dir
        self.port = port
        self.password = password
        self._stopped = False

    # -- paths / URLs -------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.cluster_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.cluster_dir

    @property
    def log_file(self) -> Path:
        return self.cluster_dir / "postgres.log"

    @property
    def url(self) -> str:
        """URL for the application role: ``postgresql://pca:PASSWORD@127.0.0.1:PORT/pca``."""
        return f"postgresql://{APP_ROLE}:{self.password}@127.0.0.1:{self.port}/{APP_DB}"

    @property
    def socket_url(self) -> str:
        """The same, through the Unix socket: its directory percent-encoded as the host."""
        directory = quote(str(self.socket_dir), safe="")
        return f"postgresql://{APP_ROLE}:{self.password}@{directory}:{self.port}/{APP_DB}"

    def superuser_conninfo(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` as superuser over the unix socket."""
        return {
            "host": str(self.socket_dir),
            "port": self.port,
            "user": SUPERUSER,
            "dbname": "postgres",
        }

    def __repr__(self) -> str:
        return f"PostgresServer(port={self.port}, cluster_dir={str(self.cluster_dir)!r})"

    # -- lifecycle ----------------------------------------------------------------------

    @classmethod
    def start(cls, base_dir: Path, *, attempts: int = 3) -> PostgresServer:
        """initdb into ``base_dir/data``, start the server and create role+database ``pca``."""
        bin_dir = find_pg_bin()
        base_dir = Path(base_dir).absolute()
        base_dir.mkdir(parents=True, exist_ok=True)
        root = _is_root()
        if root:
            _check_root_prerequisites()

        cluster_dir = base_dir
        needs_private = len(str(base_dir)) > _MAX_SOCKET_DIR_LEN
        if root and not needs_private:
            _chown_to_postgres(base_dir)
            base_dir.chmod(0o700)
            needs_private = not _postgres_can_use(base_dir)
        if needs_private:
            tmp_root = "/tmp" if Path("/tmp").is_dir() else None
            cluster_dir = Path(tempfile.mkdtemp(prefix="pca-pg-", dir=tmp_root))
            if root:
                _chown_to_postgres(cluster_dir)

        if (cluster_dir / "data").exists():
            raise RuntimeError(f"{cluster_dir / 'data'} already exists")

        server = cls(
            base_dir=base_dir,
            cluster_dir=cluster_dir,
            bin_dir=bin_dir,
            port=0,
            password=secrets.token_hex(16),
        )
        try:
            server._initdb()
            last_error: RuntimeError | None = None
            for _ in range(attempts):
                server.port = _free_port()
                server._write_config()
                try:
                    server._pg_ctl_start()
                    break
                except RuntimeError as exc:  # most likely the port was taken meanwhile
                    last_error = exc
            else:
                assert last_error is not None
                raise last_error
            server._create_app_role_and_db()
        except BaseException:
            server._cleanup_after_failed_start()
            raise
        return server

    def _initdb(self) -> None:
        _run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            cwd=self.cluster_dir,
        )

    def _write_config(self) -> None:
        settings = dict(_SERVER_SETTINGS)
        settings["port"] = str(self.port)
        settings["unix_socket_directories"] = f"'{self.socket_dir}'"
        # postgresql.auto.conf is read after postgresql.conf, so it wins; rewriting it on
        # every attempt lets a retry use a different port.
        text = "".join(f"{key} = {value}\n" for key, value in settings.items())
        (self.data_dir / "postgresql.auto.conf").write_text(
            "# Written by tests/pgserver.py\n" + text
        )

    def _pg_ctl_start(self) -> None:
        try:
            _run(
                [
                    str(self.bin_dir / "pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    str(_PG_CTL_TIMEOUT_S),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                ],
                cwd=self.cluster_dir,
            )
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\npostgres.log (tail):\n{self._log_tail()}") from None

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _create_app_role_and_db(self) -> None:
        with psycopg.connect(**self.superuser_conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(APP_ROLE), sql.Literal(self.password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(APP_DB), sql.Identifier(APP_ROLE)
                )
            )

    def is_running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    def stop(self) -> None:
        """Stop the server (``pg_ctl stop -m fast``) and remove its directories."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.stop_server()
        finally:
            self._remove_dirs()

    def stop_server(self) -> None:
        """Shut the server down as an operator's restart would (``pg_ctl stop -m fast``:
        sessions are cut, transactions rolled back), keeping its data for
        :meth:`start_server`. Does nothing if it is not running."""
        if self.is_running():
            _run(
                [
                    str(self.bin_dir / "pg_ctl"),
                    "stop",
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(_PG_CTL_TIMEOUT_S),
                    "-D",
                    str(self.data_dir),
                ],
                cwd=self.cluster_dir,
            )

    def start_server(self) -> None:
        """Start a server stopped by :meth:`stop_server` again, on the same port and data."""
        self._pg_ctl_start()

    def _cleanup_after_failed_start(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        self._remove_dirs()

    def _remove_dirs(self) -> None:
        shutil.rmtree(self.cluster_dir, ignore_errors=True)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- persistence for the command line ----------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "port": self.port,
            "password": self.password,
            "base_dir": str(self.base_dir),
            "cluster_dir": str(self.cluster_dir),
            "bin_dir": str(self.bin_dir),
            "data_dir": str(self.data_dir),
            "pid": self._postmaster_pid(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PostgresServer:
        return cls(
            base_dir=Path(state["base_dir"]),
            cluster_dir=Path(state["cluster_dir"]),
            bin_dir=Path(state["bin_dir"]),
            port=int(state["port"]),
            password=str(state["password"]),
        )

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().splitlines()[0]
            return int(first)
        except (OSError, IndexError, ValueError):
            return None


def create_schema(url: str) -> str:
    """Create a fresh, uniquely named schema (``t_<12 hex>``) and return its name."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    return name


def drop_schema(url: str, schema: str) -> None:
    """Drop ``schema`` and everything in it (no error if it does not exist)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.pgserver", description="Throwaway PostgreSQL for tests"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start_p = sub.add_parser("start", help="start a server in DIR and print its URL")
    start_p.add_argument("dir", type=Path)
    stop_p = sub.add_parser("stop", help="stop the server in DIR and remove DIR")
    stop_p.add_argument("dir", type=Path)
    args = parser.parse_args(argv)
    base_dir: Path = args.dir.absolute()
    state_file = base_dir / STATE_FILE

    if args.command == "start":
        if state_file.exists():
            print(f"error: {state_file} exists; stop that server first", file=sys.stderr)
            return 1
        server = PostgresServer.start(base_dir)
        state_file.write_text(json.dumps(server.to_state(), indent=2) + "\n")
        state_file.chmod(0o600)
        print(server.url)
        return 0

    try:
        state = json.loads(state_file.read_text())
    except OSError as exc:
        print(f"error: cannot read {state_file}: {exc}", file=sys.stderr)
        return 1
    PostgresServer.from_state(state).stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
