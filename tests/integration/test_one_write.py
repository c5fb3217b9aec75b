"""One durable write per issuance group: the sealed keys commit with the events that name
them, in the event store's database, and an older release's separate key file moves in."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from psycopg import sql

from domain.adapters import keystore_backends
from domain.adapters.keystore_backends import SQLiteKeyStore
from domain.adapters.masterkeys import MasterKeyring
from domain.adapters.settings import EVENTS_FILE, KEYS_FILE, Settings, open_service
from domain.application.service import PrivateCA
from domain.audit.chain import AuditChainError
from domain.model.certificate import Certificate
from domain.pki.formats import DownloadFormat, DownloadOptions
from tests.builders import (
    ADMIN,
    OPERATOR,
    enabled_intermediate,
    enabled_root,
    issue,
    root_profile,
)
from tests.conftest import PUBLIC_URL


def stored_key_ids(settings: Settings) -> set[str]:
    """The key ids in the key store's table, read beside the service."""
    if settings.database_url is None:
        with contextlib.closing(sqlite3.connect(settings.data_dir / EVENTS_FILE)) as db:
            return {row[0] for row in db.execute("SELECT key_id FROM pca_keys")}
    table = sql.Identifier(settings.database_schema, "pca_keys")
    with psycopg.connect(settings.database_url) as db:
        return {row[0] for row in db.execute(sql.SQL("SELECT key_id FROM {}").format(table))}


def test_a_groups_keys_and_events_commit_together(service: PrivateCA, settings: Settings) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    before = stored_key_ids(settings)
    certificate = issue(service, ca_id).certificate
    assert stored_key_ids(settings) - before == {certificate.key_id}


def break_the_chain(service: PrivateCA, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next saves fail after their keys and events were inserted: the chain's
    link comes last in the transaction."""

    def broken_chain(*args: object) -> None:
        raise AuditChainError("the chain cannot be written")

    monkeypatch.setattr(service.recorder, "_append", broken_chain)


def test_a_failed_events_insert_rolls_back_the_keys_written_before_it(
    service: PrivateCA, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    keys, head = stored_key_ids(settings), service.recorder.max_notification_id()
    break_the_chain(service, monkeypatch)
    with pytest.raises(AuditChainError):
        issue(service, ca_id)
    monkeypatch.undo()
    assert stored_key_ids(settings) == keys
    assert service.recorder.max_notification_id() == head
    assert issue(service, ca_id).certificate.key_id in stored_key_ids(settings)


def test_a_ca_key_commits_with_the_event_that_enables_the_ca(
    service: PrivateCA, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    root_id = service.create_root(ADMIN, root_profile()).id
    keys = stored_key_ids(settings)
    break_the_chain(service, monkeypatch)
    with pytest.raises(AuditChainError):
        service.enable_ca(ADMIN, root_id)
    monkeypatch.undo()
    assert stored_key_ids(settings) == keys
    service.enable_ca(ADMIN, root_id)
    assert stored_key_ids(settings) - keys == {f"ca-{root_id}"}


@pytest.fixture
def old_data_dir(sqlite_settings: Settings) -> tuple[Settings, Certificate]:
    """A data directory as an older release left it: keys in their own ``keys.db``."""
    settings = sqlite_settings
    settings.prepare_data_dir()
    ring = MasterKeyring.load(settings.data_dir, None)
    with SQLiteKeyStore(settings.data_dir / KEYS_FILE, ring) as old_keys:
        old = PrivateCA(settings.eventsourcing_env(), keystore=old_keys, public_url=PUBLIC_URL)
        try:
            certificate = issue(old, enabled_intermediate(old, enabled_root(old))).certificate
        finally:
            old.close()
    return settings, certificate


def exported_key(service: PrivateCA, certificate_id: UUID) -> bytes:
    options = DownloadOptions("correct horse battery staple")
    export = service.export_certificate(OPERATOR, certificate_id, DownloadFormat.PKCS8, options)
    return export.download.body


def exported_after_a_start(settings: Settings, certificate: Certificate) -> bytes:
    """The certificate's key as ``pca cert download`` would give it, from a fresh start."""
    service = open_service(settings)
    try:
        return exported_key(service, certificate.id)
    finally:
        service.close()
        service.keystore.close()


def test_an_old_data_directory_moves_its_keys_into_the_event_store_once(
    old_data_dir: tuple[Settings, Certificate],
) -> None:
    settings, certificate = old_data_dir
    assert (settings.data_dir / KEYS_FILE).exists()
    service = open_service(settings)
    try:
        assert b"ENCRYPTED PRIVATE KEY" in exported_key(service, certificate.id)
        ca_id = certificate.ca_id
        assert issue(service, ca_id).certificate.key_id in stored_key_ids(settings)
    finally:
        service.close()
        service.keystore.close()
    assert certificate.key_id in stored_key_ids(settings)
    assert sorted(p.name for p in settings.data_dir.glob(f"{KEYS_FILE}*")) == []


def test_an_interrupted_move_is_redone_safely(
    old_data_dir: tuple[Settings, Certificate], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, certificate = old_data_dir

    def crash(path: Path) -> None:
        raise KeyboardInterrupt  # the process dies after the copy committed

    monkeypatch.setattr(keystore_backends, "_delete_database", crash)
    with pytest.raises(KeyboardInterrupt):
        open_service(settings)
    monkeypatch.undo()
    assert (settings.data_dir / KEYS_FILE).exists()
    assert certificate.key_id in stored_key_ids(settings)
    assert b"ENCRYPTED PRIVATE KEY" in exported_after_a_start(settings, certificate)
    assert not (settings.data_dir / KEYS_FILE).exists()


def test_a_move_interrupted_before_its_commit_leaves_the_old_file_whole(
    old_data_dir: tuple[Settings, Certificate], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, certificate = old_data_dir

    def crash(path: Path) -> list[tuple[object, ...]]:
        raise KeyboardInterrupt  # the process dies while it reads the old file

    monkeypatch.setattr(keystore_backends, "_old_rows", crash)
    with pytest.raises(KeyboardInterrupt):
        open_service(settings)
    monkeypatch.undo()
    assert certificate.key_id not in stored_key_ids(settings)
    assert b"ENCRYPTED PRIVATE KEY" in exported_after_a_start(settings, certificate)
    assert not (settings.data_dir / KEYS_FILE).exists()
