"""Backup and restore (issue 8): a copy taken while certificates are being issued restores
into an empty SQLite directory or PostgreSQL schema with the same state, the same CRLs, a
verifying audit chain and keys that still sign; damaged or misdirected restores change
nothing."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from domain.adapters.masterkeys import MASTER_KEYS_FILE, MasterKeyring
from domain.adapters.settings import Settings, open_service
from domain.application.service import PrivateCA
from domain.audit.verify import AuditLog
from domain.model.errors import ConflictError, KeyCustodyError, NotFoundError
from domain.model.values import RevocationReason
from projections.audit.pointintime import render_json, state_at
from projections.backup.archive import BackupDamagedError
from projections.backup.operations import BackupTargetNotEmptyError, create_backup, restore_backup
from projections.readmodels.queries import ReadModels
from projections.readmodels.worker import catch_up
from projections.revocation.crlstore import BASE, DELTA, StoredCRL, open_crl_store
from projections.revocation.publisher import CRLPublisher
from tests.builders import ADMIN, enabled_intermediate, issue, server_request
from tests.conftest import PUBLIC_URL, STORES, SettableClock
from tests.pgserver import create_schema, drop_schema
from tests.projection_helpers import write_history


@dataclass(frozen=True)
class Source:
    """A deployment with a history, a busy intermediate, a published CRL and a checkpoint."""

    settings: Settings
    service: PrivateCA
    busy_id: UUID
    revoked_serial: int


@pytest.fixture
def source(settings: Settings, clock: SettableClock) -> Iterator[Source]:
    service = open_service(settings, clock=clock)
    history = write_history(service)
    service.purchase_quota(ADMIN, history.root_id, 1000)
    busy_id = enabled_intermediate(service, history.root_id, remaining=900)
    revoked = issue(service, busy_id, server_request("revoked.example.com")).certificate
    service.revoke_certificate(ADMIN, revoked.id, RevocationReason.KEY_COMPROMISE)
    catch_up(settings)
    with ReadModels.open(settings) as read_models:
        crls = open_crl_store(settings)
        CRLPublisher(service, read_models, crls).publish(busy_id, force_base=True)
        crls.close()
    AuditLog.of(service).create_checkpoint(clock())
    yield Source(settings, service, busy_id, int(revoked.serial_number, 16))
    service.close()
    service.keystore.close()


def sqlite_target(directory: Path, source: Settings) -> Settings:
    """An empty data directory holding only the source's master.keys."""
    directory.mkdir(mode=0o700)
    shutil.copy2(source.data_dir / MASTER_KEYS_FILE, directory / MASTER_KEYS_FILE)
    return Settings(data_dir=directory, public_url=PUBLIC_URL)


def empty_target(
    store: str, request: pytest.FixtureRequest, directory: Path, source: Settings
) -> Settings:
    """An empty SQLite target, or a new PostgreSQL schema with the master key beside it."""
    settings = sqlite_target(directory, source)
    if store == "sqlite":
        return settings
    url = str(request.getfixturevalue("postgres_url"))
    schema = create_schema(url)
    request.addfinalizer(lambda: drop_schema(url, schema))
    return Settings(
        data_dir=settings.data_dir, public_url=PUBLIC_URL, database_url=url, database_schema=schema
    )


def served_crls(settings: Settings, ca_id: UUID) -> list[StoredCRL | None]:
    store = open_crl_store(settings)
    try:
        return [store.get(ca_id, kind) for kind in (BASE, DELTA)]
    finally:
        store.close()


def while_issuing(service: PrivateCA, ca_id: UUID, action: Callable[[], object]) -> int:
    """Run ``action`` while a thread keeps issuing from ``ca_id``; how many certificates
    the thread issued while ``action`` ran."""
    issued: list[UUID] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def keep_issuing() -> None:
        try:
            while not stop.is_set():
                name = f"busy{len(issued)}.example.com"
                issued.append(issue(service, ca_id, server_request(name)).certificate.id)
        except BaseException as failure:  # handed to the test's thread below
            failures.append(failure)

    thread = threading.Thread(target=keep_issuing)
    thread.start()
    try:
        while len(issued) < 3 and thread.is_alive():
            stop.wait(0.01)
        before = len(issued)
        action()
        return len(issued) - before
    finally:
        stop.set()
        thread.join()
        if failures:
            raise failures[0]


def openssl(*args: str | Path) -> str:
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def pem(path: Path, *ders: bytes) -> Path:
    path.write_bytes(
        b"".join(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM) for der in ders)
    )
    return path


@pytest.mark.parametrize("target_store", STORES)
def test_a_backup_taken_while_issuing_restores_the_same_state_crls_and_chain(
    source: Source,
    target_store: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    clock: SettableClock,
) -> None:
    path = tmp_path / "backups" / "pca.backup"
    results = []
    issued_meanwhile = while_issuing(
        source.service,
        source.busy_id,
        lambda: results.append(create_backup(source.settings, path, clock())),
    )
    backup = results[0]
    assert issued_meanwhile > 0
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    head = backup.manifest.head_position

    target = empty_target(target_store, request, tmp_path / "restored", source.settings)
    restored = restore_backup(target, path)

    assert restored.audit.ok, restored.audit.to_json()
    assert restored.audit.position == head
    assert len(restored.audit.checkpoints) == 1
    assert restored.read_models_position == head
    before = state_at(source.settings, head)
    after = state_at(target, head)
    assert render_json(after) == render_json(before)
    with ReadModels.open(target) as read_models:
        assert read_models.list_cas(clock()) == list(state_at(target).cas)
    assert served_crls(target, source.busy_id) == served_crls(source.settings, source.busy_id)
    assert commit_stamps(target, head) == commit_stamps(source.settings, head)

    service = open_service(target, clock=clock)
    try:
        for certificate in after.certificates:  # each restored certificate finds its key
            key_id = service.get_certificate(certificate.id).key_id
            if key_id is not None:
                service.keystore.get(key_id)
        assert_restored_keys_sign(service, target, source, tmp_path)
    finally:
        service.close()
        service.keystore.close()


def commit_stamps(settings: Settings, head: int) -> list[tuple[int, int | None]]:
    """The chain's commit stamps up to ``head``, each present."""
    service = open_service(settings)
    try:
        links = AuditLog.of(service).store.select_links_after(0, head)
    finally:
        service.close()
        service.keystore.close()
    stamps = [(link.position, link.recorded_at) for link in links if link.position <= head]
    assert stamps
    assert all(stamp is not None for _, stamp in stamps)
    return stamps


def assert_restored_keys_sign(
    service: PrivateCA, target: Settings, source: Source, tmp_path: Path
) -> None:
    """The restored intermediate issues a certificate openssl verifies against the
    restored root, with revocation checked against the CRL the restored store serves."""
    fresh = issue(service, source.busy_id, server_request("after-restore.example.com"))
    intermediate, root = fresh.chain_der
    base = served_crls(target, source.busy_id)[0]
    assert base is not None
    crl = tmp_path / "busy.crl.pem"
    crl.write_bytes(x509.load_der_x509_crl(base.der).public_bytes(Encoding.PEM))
    assert x509.load_der_x509_crl(base.der).get_revoked_certificate_by_serial_number(
        source.revoked_serial
    )
    verified = openssl(
        "verify",
        "-crl_check",
        "-CRLfile",
        crl,
        "-CAfile",
        pem(tmp_path / "root.pem", root),
        "-untrusted",
        pem(tmp_path / "intermediate.pem", intermediate),
        pem(tmp_path / "leaf.pem", fresh.certificate.certificate_der),
    )
    assert verified.strip().endswith(": OK"), verified


def test_restore_into_a_store_that_holds_data_is_refused_and_changes_nothing(
    source: Source, tmp_path: Path, clock: SettableClock
) -> None:
    path = tmp_path / "pca.backup"
    create_backup(source.settings, path, clock())
    issue(source.service, source.busy_id)  # the live store moved on since
    state = render_json(state_at(source.settings))
    crls = served_crls(source.settings, source.busy_id)

    with pytest.raises(BackupTargetNotEmptyError) as refused:
        restore_backup(source.settings, path)

    assert "new directory" in refused.value.detail
    assert "new schema" in refused.value.detail
    assert render_json(state_at(source.settings)) == state
    assert served_crls(source.settings, source.busy_id) == crls
    assert AuditLog.of(source.service).verify().ok


@pytest.fixture
def sqlite_backup(sqlite_settings: Settings, clock: SettableClock, tmp_path: Path) -> Path:
    """A backup of a small SQLite deployment."""
    service = open_service(sqlite_settings, clock=clock)
    try:
        write_history(service)
    finally:
        service.close()
        service.keystore.close()
    path = tmp_path / "pca.backup"
    create_backup(sqlite_settings, path, clock())
    return path


def rewrite_member(path: Path, member: str, change: Callable[[bytes], bytes]) -> None:
    """Replace ``member`` of the zip at ``path`` by ``change(its bytes)``."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members[member] = change(members[member])
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def alter_first_event(data: bytes) -> bytes:
    """Change the topic of the first event."""
    first, rest = data.split(b"\n", 1)
    return first.replace(b"domain.", b"domain_", 1) + b"\n" + rest


def alter_event_and_manifest(path: Path) -> None:
    """What someone who knows the format does: alter an event, fix up the manifest."""
    rewrite_member(path, "events.jsonl", alter_first_event)
    with zipfile.ZipFile(path) as archive:
        events = archive.read("events.jsonl")

    def fix(manifest: bytes) -> bytes:
        data = json.loads(manifest)
        data["parts"]["events"]["sha256"] = hashlib.sha256(events).hexdigest()
        return json.dumps(data, indent=2, sort_keys=True).encode("ascii") + b"\n"

    rewrite_member(path, "manifest.json", fix)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "an altered event": (
        lambda path: rewrite_member(path, "events.jsonl", alter_first_event),
        "part events.jsonl of the backup does not match its manifest",
    ),
    "an altered event with a fixed-up manifest": (
        alter_event_and_manifest,
        "does not authenticate under master key",
    ),
    "an altered key record": (
        lambda path: rewrite_member(path, "keys.jsonl", lambda d: d.replace(b'"', b"'", 2)),
        "part keys.jsonl",
    ),
    "a truncated file": (truncate, "is not a readable pca-backup archive"),
}


@pytest.mark.parametrize("tampering", TAMPERING)
def test_a_tampered_backup_is_refused_before_anything_is_written(
    sqlite_backup: Path, sqlite_settings: Settings, tmp_path: Path, tampering: str
) -> None:
    tamper, message = TAMPERING[tampering]
    tamper(sqlite_backup)
    target = sqlite_target(tmp_path / "restored", sqlite_settings)

    with pytest.raises(BackupDamagedError) as refused:
        restore_backup(target, sqlite_backup)

    assert message in refused.value.detail
    assert refused.value.field == "path"
    assert sorted(os.listdir(target.data_dir)) == [MASTER_KEYS_FILE]


def test_restore_without_the_master_key_says_where_to_put_it_and_writes_nothing(
    sqlite_backup: Path, tmp_path: Path
) -> None:
    target = Settings(data_dir=tmp_path / "restored", public_url=PUBLIC_URL)
    with pytest.raises(KeyCustodyError) as refused:
        restore_backup(target, sqlite_backup)
    assert "copy master.keys from the source's data directory" in refused.value.detail
    assert not target.data_dir.exists()

    other_key = base64.b64encode(os.urandom(32)).decode()
    stranger = Settings(data_dir=target.data_dir, public_url=PUBLIC_URL, master_key=other_key)
    with pytest.raises(KeyCustodyError) as refused:
        restore_backup(stranger, sqlite_backup)
    assert "which the configured keyring" in refused.value.detail
    assert not target.data_dir.exists()


def test_a_backup_never_overwrites_a_file_and_needs_a_store(
    sqlite_backup: Path, sqlite_settings: Settings, tmp_path: Path, clock: SettableClock
) -> None:
    original = sqlite_backup.read_bytes()
    with pytest.raises(ConflictError, match="already exists"):
        create_backup(sqlite_settings, sqlite_backup, clock())
    assert sqlite_backup.read_bytes() == original

    nowhere = sqlite_target(tmp_path / "none", sqlite_settings)
    with pytest.raises(NotFoundError, match="nothing to back up"):
        create_backup(nowhere, tmp_path / "none.backup", clock())
    assert sorted(os.listdir(nowhere.data_dir)) == [MASTER_KEYS_FILE]
    assert not (tmp_path / "none.backup").exists()


def as_version_1(path: Path, keyring: MasterKeyring) -> None:
    """Rewrite the backup at ``path`` as the previous release wrote it: chain rows without
    commit stamps, format version 1, authenticated under ``keyring`` like any backup."""
    rewrite_member(path, "audit_chain.jsonl", drop_stamps)
    with zipfile.ZipFile(path) as archive:
        chain = archive.read("audit_chain.jsonl")
        manifest = json.loads(archive.read("manifest.json"))
    manifest["version"] = 1
    manifest["parts"]["audit_chain"]["sha256"] = hashlib.sha256(chain).hexdigest()
    text = json.dumps(manifest, indent=2, sort_keys=True).encode("ascii") + b"\n"
    key_id, tag = keyring.encrypt(b"", b"pca-backup/v1 manifest sha256=" + sha256_hex(text))
    auth = {"master_key_id": key_id, "gmac": base64.b64encode(tag).decode("ascii")}
    rewrite_member(path, "manifest.json", lambda _: text)
    rewrite_member(path, "manifest.auth", lambda _: json.dumps(auth).encode("ascii"))


def drop_stamps(chain: bytes) -> bytes:
    rows = [json.loads(line) for line in chain.splitlines()]
    assert rows
    assert all(len(row) == 4 and row[3] is not None for row in rows)
    return b"".join(json.dumps(row[:3]).encode("ascii") + b"\n" for row in rows)


def sha256_hex(data: bytes) -> bytes:
    return hashlib.sha256(data).hexdigest().encode("ascii")


def test_a_backup_from_before_the_commit_stamps_restores_and_gets_them(
    sqlite_backup: Path, sqlite_settings: Settings, tmp_path: Path
) -> None:
    as_version_1(sqlite_backup, MasterKeyring.load(sqlite_settings.data_dir, None))
    target = sqlite_target(tmp_path / "restored", sqlite_settings)

    restored = restore_backup(target, sqlite_backup)

    assert restored.audit.ok, restored.audit.to_json()
    stamps = [stamp or 0 for _, stamp in commit_stamps(target, restored.audit.position)]
    assert stamps == sorted(stamps)
