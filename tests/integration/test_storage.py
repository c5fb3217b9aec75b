"""Durable storage: configuration, refusal of memory-only stores, restarts."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from domain.adapters import log_head
from domain.adapters.keystore_backends import SQLiteKeyStore
from domain.adapters.masterkeys import MasterKeyring
from domain.adapters.settings import Settings, open_service
from domain.application.service import PrivateCA
from domain.model.errors import StorageNotDurableError
from projections.readmodels.queries import ReadModels
from projections.readmodels.worker import catch_up
from tests.builders import enabled_intermediate, enabled_root, issue
from tests.conftest import SettableClock
from tests.pgserver import PostgresServer


def test_the_service_refuses_an_in_memory_event_store(tmp_path: Path) -> None:
    keystore = SQLiteKeyStore(tmp_path / "keys.db", MasterKeyring.load(tmp_path, None))
    with pytest.raises(StorageNotDurableError, match="would keep nothing"):
        PrivateCA({"PERSISTENCE_MODULE": "eventsourcing.popo"}, keystore=keystore, public_url="")
    keystore.close()


def test_a_test_may_ask_for_memory_explicitly(tmp_path: Path) -> None:
    keystore = SQLiteKeyStore(tmp_path / "keys.db", MasterKeyring.load(tmp_path, None))
    app = PrivateCA(
        {"PERSISTENCE_MODULE": "eventsourcing.popo"},
        keystore=keystore,
        public_url="",
        allow_memory=True,
    )
    assert enabled_root(app)
    keystore.close()


def test_settings_come_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "PCA_DATA_DIR": str(tmp_path),
            "PCA_PUBLIC_URL": "https://pki.example.com",
            "PCA_DATABASE_URL": "postgresql://u:p%40ss@db.internal:6543/pki",
            "PCA_DATABASE_SCHEMA": "ca",
        }
    )
    env = settings.eventsourcing_env()
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"]) == ("db.internal", "6543")
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == ("u", "p@ss")
    assert (env["POSTGRES_DBNAME"], env["POSTGRES_SCHEMA"]) == ("pki", "ca")
    assert settings.public_url == "https://pki.example.com"


def test_sqlite_is_the_default_store(tmp_path: Path) -> None:
    env = Settings.from_env({"PCA_DATA_DIR": str(tmp_path)}).eventsourcing_env()
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert env["SQLITE_DBNAME"] == str(tmp_path / "events.db")


def test_a_malformed_database_url_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="mysql://x/y")
    with pytest.raises(StorageNotDurableError, match="postgresql://USER"):
        settings.eventsourcing_env()


def test_database_url_options_are_refused_pointing_at_libpq_variables(tmp_path: Path) -> None:
    """sslmode in the URL would protect some connections and not the event store's."""
    settings = Settings(
        data_dir=tmp_path, database_url="postgresql://pca:pw@db.example:5432/pca?sslmode=require"
    )
    with pytest.raises(StorageNotDurableError, match="PGSSLMODE"):
        settings.eventsourcing_env()


def test_a_local_server_is_reached_through_its_socket_directory(
    postgres_server: PostgresServer | None, pg_schema: str, tmp_path: Path
) -> None:
    """postgresql://USER:PASSWORD@%2Fdir:PORT/DB, as libpq reads it: the event store, the
    log's head, the key store and the read models all connect through the socket in that
    directory (its case kept)."""
    if postgres_server is None:
        pytest.skip("PCA_TEST_POSTGRES_URL names the server: its socket directory is unknown")
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=postgres_server.socket_url,
        database_schema=pg_schema,
    )
    service = open_service(settings)
    try:
        ca_id = enabled_intermediate(service, enabled_root(service))
        assert issue(service, ca_id).certificate.ca_id == ca_id  # the CA key was read back
        head = service.recorder.max_notification_id()
        assert _head_reader_over_socket(postgres_server, pg_schema)
        catch_up(settings)
        with ReadModels.open(settings) as read_models:
            assert read_models.position() == head
    finally:
        service.close()
        service.keystore.close()


def _head_reader_over_socket(server: PostgresServer, schema: str) -> bool:
    """Whether the connection reading ``schema``'s log head came through the socket."""
    with psycopg.connect(**server.superuser_conninfo(), autocommit=True) as connection:
        row = connection.execute(
            "SELECT client_addr IS NULL FROM pg_stat_activity WHERE application_name = %s",
            (log_head.application_name(schema),),
        ).fetchone()
    return row is not None and bool(row[0])


def test_state_survives_a_restart(settings: Settings, clock: SettableClock) -> None:
    first = open_service(settings, clock=clock)
    ca_id = enabled_intermediate(first, enabled_root(first), remaining=5)
    issued = issue(first, ca_id).certificate
    first.close()
    first.keystore.close()

    second = open_service(settings, clock=clock)
    try:
        assert second.get_ca(ca_id).quota_remaining == 4
        assert second.get_certificate(issued.id).certificate_der == issued.certificate_der
        assert issue(second, ca_id).certificate.ca_id == ca_id  # the CA key is still readable
    finally:
        second.close()
        second.keystore.close()


def test_sqlite_commits_wait_for_the_disk(sqlite_settings: Settings) -> None:
    """An acknowledged certificate must survive power loss, not only a killed process:
    WAL with synchronous=FULL syncs every commit (NORMAL would not), in both stores."""
    service = open_service(sqlite_settings)
    try:
        with service.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
            cursor.execute("PRAGMA synchronous")
            assert cursor.fetchone()[0] == 2  # FULL
            cursor.execute("PRAGMA journal_mode")
            assert cursor.fetchone()[0] == "wal"
        keys = service.keystore
        assert isinstance(keys, SQLiteKeyStore)
        assert keys._conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    finally:
        service.close()
        service.keystore.close()
