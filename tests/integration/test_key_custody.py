"""No private key in any event, nor anywhere in the data directory unencrypted."""

from __future__ import annotations

import contextlib
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from psycopg import sql

from domain.adapters.settings import EVENTS_FILE, Settings, open_service
from domain.application.service import PrivateCA
from domain.model.values import KeyAlgorithm, RevocationReason
from tests.builders import (
    OPERATOR,
    enabled_intermediate,
    enabled_root,
    issue,
    server_request,
)

PEM_MARKERS = (b"PRIVATE KEY-----", b"PRIVATE KEY", b"BEGIN EC PRIVATE", b"BEGIN RSA PRIVATE")


def _encodings(key: PrivateKeyTypes) -> Iterator[bytes]:
    """Every way the key could have leaked: PKCS#8 and traditional, DER and PEM."""
    for encoding in (Encoding.DER, Encoding.PEM):
        for private_format in (PrivateFormat.PKCS8, PrivateFormat.TraditionalOpenSSL):
            yield key.private_bytes(encoding, private_format, NoEncryption())


def _data_dir_bytes(data_dir: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(data_dir.rglob("*")) if path.is_file())


def _postgres_bytes(settings: Settings) -> bytes:
    """Every row of every table in the test's schema, as bytes."""
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (settings.database_schema,),
        ).fetchall()
        dump = bytearray()
        for (table,) in tables:
            query = sql.SQL("SELECT * FROM {}").format(
                sql.Identifier(settings.database_schema, table)
            )
            for row in conn.execute(query):
                for value in row:
                    dump += value if isinstance(value, bytes) else str(value).encode()
    return bytes(dump)


def _everything_stored(service: PrivateCA, settings: Settings) -> bytes:
    stored = _data_dir_bytes(settings.data_dir)
    if settings.uses_postgres:
        stored += _postgres_bytes(settings)
    return stored


@pytest.mark.slow
def test_no_private_key_is_stored_unencrypted_anywhere(
    service: PrivateCA, settings: Settings
) -> None:
    root_id = enabled_root(service, key_algorithm=KeyAlgorithm.RSA_2048)
    ca_id = enabled_intermediate(service, root_id)
    issued = [
        issue(service, ca_id, server_request(key_algorithm=KeyAlgorithm.RSA_2048)).certificate,
        issue(service, ca_id, server_request(key_algorithm=KeyAlgorithm.EC_P384)).certificate,
    ]
    key_ids = [service.get_ca(root_id).key_id, service.get_ca(ca_id).key_id]
    key_ids += [certificate.key_id for certificate in issued]
    keys = [service.keystore.get(key_id) for key_id in key_ids if key_id is not None]
    assert len(keys) == 4
    service.recorder.max_notification_id()  # the writes are committed
    stored = _everything_stored(service, settings)
    for marker in PEM_MARKERS:
        assert marker not in stored
    for key in keys:
        for leaked in _encodings(key):
            assert leaked not in stored


def test_events_carry_key_ids_and_public_material_only(service: PrivateCA) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    certificate = issue(service, ca_id).certificate
    assert certificate.key_id is not None
    key = service.keystore.get(certificate.key_id)
    scalar = key.private_numbers().private_value.to_bytes(32, "big")  # type: ignore[union-attr]
    notifications = service.recorder.select_notifications(start=1, limit=1000)
    raw_events = b"".join(notification.state for notification in notifications)
    assert certificate.key_id.encode() in raw_events
    assert scalar not in raw_events
    for leaked in _encodings(key):
        assert leaked not in raw_events


def test_data_directory_and_files_are_private_to_the_owner(sqlite_settings: Settings) -> None:
    app = open_service(sqlite_settings)
    try:
        enabled_root(app)
        data_dir = sqlite_settings.data_dir
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        for name in ("events.db", "master.keys"):  # the key store is a table of events.db
            assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    finally:
        app.close()
        app.keystore.close()


def _key_store_bytes(settings: Settings) -> bytes:
    if not settings.uses_postgres:
        with contextlib.closing(sqlite3.connect(settings.data_dir / EVENTS_FILE)) as db:
            rows = db.execute("SELECT key_id FROM pca_keys").fetchall()
        return "".join(row[0] for row in rows).encode()
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as conn:
        table = sql.Identifier(settings.database_schema, "pca_keys")
        rows = conn.execute(sql.SQL("SELECT key_id FROM {}").format(table)).fetchall()
    return "".join(row[0] for row in rows).encode()


def test_deleting_a_certificate_removes_its_key_from_the_key_store(
    service: PrivateCA, settings: Settings
) -> None:
    certificate = issue(service, enabled_intermediate(service, enabled_root(service))).certificate
    assert certificate.key_id is not None
    assert certificate.key_id.encode() in _key_store_bytes(settings)
    service.revoke_certificate(OPERATOR, certificate.id, RevocationReason.SUPERSEDED)
    service.delete_certificate(OPERATOR, certificate.id)
    assert certificate.key_id.encode() not in _key_store_bytes(settings)
