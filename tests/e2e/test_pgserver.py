"""Tests for the throwaway PostgreSQL helper used by the rest of the suite."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.pgserver import PostgresServer, create_schema, drop_schema, find_pg_bin

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _require_binaries() -> None:
    try:
        find_pg_bin()
    except RuntimeError as exc:
        if os.environ.get("PCA_TEST_POSTGRES_URL"):
            pytest.skip(f"PostgreSQL binaries unavailable, suite uses an external server: {exc}")
        raise


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    _require_binaries()
    with PostgresServer.start(tmp_path_factory.mktemp("pgserver")) as srv:
        yield srv


def _with_password(url: str, password: str) -> str:
    userinfo, _, rest = url.removeprefix("postgresql://").partition("@")
    user = userinfo.partition(":")[0]
    return f"postgresql://{user}:{password}@{rest}"


def test_app_role_can_create_tables_in_fresh_schema(server: PostgresServer) -> None:
    assert server.url.startswith("postgresql://pca:")
    assert f"@127.0.0.1:{server.port}/pca" in server.url

    schema = create_schema(server.url)
    other = create_schema(server.url)
    assert schema != other
    assert schema.startswith("t_")
    try:
        with psycopg.connect(server.url) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("pca",)
            table = sql.Identifier(schema, "things")
            conn.execute(sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, name text)").format(table))
            conn.execute(sql.SQL("INSERT INTO {} VALUES (1, 'one')").format(table))
            rows = conn.execute(sql.SQL("SELECT id, name FROM {}").format(table)).fetchall()
            assert rows == [(1, "one")]
    finally:
        drop_schema(server.url, schema)
        drop_schema(server.url, other)

    with psycopg.connect(server.url) as conn:
        found = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name IN (%s, %s)",
            (schema, other),
        ).fetchone()
        assert found == (0,)


def test_tcp_connections_require_the_password(server: PostgresServer) -> None:
    for url in (
        _with_password(server.url, "wrong-password"),
        _with_password(server.url, ""),
        f"postgresql://postgres@127.0.0.1:{server.port}/postgres",
    ):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(url, connect_timeout=5)


def test_server_uses_test_settings(server: PostgresServer) -> None:
    with psycopg.connect(server.url) as conn:

        def show(name: str) -> str:
            row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
            assert row is not None
            return str(row[0])

        assert show("listen_addresses") == "127.0.0.1"
        assert show("max_connections") == "200"
        assert show("fsync") == "off"
        assert show("synchronous_commit") == "off"
        assert show("server_version").split(".")[0].isdigit()


def test_stop_removes_directories(tmp_path: Path) -> None:
    _require_binaries()
    base = tmp_path / "pg"
    with PostgresServer.start(base) as srv:
        cluster_dir = srv.cluster_dir
        url = srv.url
        assert srv.is_running()
    assert not base.exists()
    assert not cluster_dir.exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


def test_command_line_start_and_stop(tmp_path_factory: pytest.TempPathFactory) -> None:
    _require_binaries()
    # A directory the postgres OS user can reach even when we run as root.
    base = Path(tmp_path_factory.getbasetemp()) / "pgcli"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tests.pgserver", *args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    started = cli("start", str(base))
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip()
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert (base / "pgserver.json").exists()
    finally:
        stopped = cli("stop", str(base))
    assert stopped.returncode == 0, stopped.stderr
    assert not base.exists()
