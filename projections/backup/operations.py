"""Backup and restore of a deployment: the event log with its audit chain and checkpoints,
the key store and the CRLs being served (``pca backup PATH``, ``pca restore PATH``).

Consistent while the service runs. Keys are stored with (or before) the events that name
them, in the events' database, and a CRL is served only after its ``CRLPublished`` event
is saved, so the stores are read in the order CRLs, then events with keys: every event in
a backup then finds its key, and every CRL its event. SQLite: one online-backup copy
(``sqlite3.Connection.backup``) per file, in that order, into a private staging
directory, read from there. PostgreSQL: every table read in
one REPEATABLE READ transaction (one snapshot, so the order does not matter there).

Restore into an empty store only: it checks the archive through (authenticator, then
every part's SHA-256) before it touches the target, writes every row with its original
position in one transaction, then rebuilds the read models and verifies the audit chain.
The archive format is in :mod:`projections.backup.archive`, reading the live stores in
:mod:`~projections.backup.sources`, writing the target in :mod:`~projections.backup.targets`;
docs/BACKUP.md is the guide.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from domain.adapters.masterkeys import MASTER_KEYS_FILE, MasterKeyring
from domain.adapters.pkcs11 import Pkcs11Signer
from domain.adapters.settings import Settings, open_service
from domain.audit.stamps import stamp_legacy_links
from domain.audit.verify import AuditLog, ChainReport
from domain.model.authority import CertificateAuthority
from domain.model.errors import ConflictError, KeyCustodyError
from domain.model.values import KeyStorage
from projections.backup.archive import (
    AUDIT_CHAIN,
    CRLS,
    EVENTS,
    KEYS,
    PARTS,
    ArchiveReader,
    ArchiveWriter,
    Manifest,
    Part,
    Row,
)
from projections.backup.sources import RowSource, open_source
from projections.backup.targets import BackupTargetNotEmptyError, target_for
from projections.readmodels.lease import acquire_lease
from projections.readmodels.queries import ReadModels
from projections.readmodels.worker import CATCH_UP_BATCH_SIZE, Worker
from projections.revocation.crlstore import open_crl_store

__all__ = [
    "BackupResult",
    "BackupTargetNotEmptyError",
    "RestoreResult",
    "create_backup",
    "restore_backup",
]


_CA_ENABLED = f":{CertificateAuthority.CAEnabled.__qualname__}"
_MISSING_MASTER_KEY = (
    "there is no master key: PCA_MASTER_KEY is unset and {keyfile} does not exist. {hint}"
)
_BACKUP_HINT = (
    "Point PCA_DATA_DIR at the service's data directory, or set PCA_MASTER_KEY as the service"
    " has it"
)
_RESTORE_HINT = (
    "Restore needs the master key(s) the backup was made under: copy master.keys from the"
    " source's data directory into PCA_DATA_DIR (mode 0600), or set PCA_MASTER_KEY, then"
    " restore again"
)


@dataclass(frozen=True)
class BackupResult:
    """A backup just written."""

    path: Path
    size: int
    manifest: Manifest

    def to_row(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "bytes": self.size,
            "head_position": self.manifest.head_position,
            "events": self.manifest.count(EVENTS),
            "keys": self.manifest.count(KEYS),
            "crls": self.manifest.count(CRLS),
            "chain_head": self.manifest.chain_head,
            "master_key_ids": list(self.manifest.master_key_ids),
            "ca_keys_in_token": self.manifest.token_keys,
            "token_label": self.manifest.token_label,
        }


@dataclass(frozen=True)
class RestoreResult:
    """A restore just done, and the restored audit chain's verification."""

    manifest: Manifest
    read_models_position: int
    audit: ChainReport

    def to_row(self) -> dict[str, object]:
        return {
            "head_position": self.manifest.head_position,
            "events": self.manifest.count(EVENTS),
            "keys": self.manifest.count(KEYS),
            "crls": self.manifest.count(CRLS),
            "read_models_position": self.read_models_position,
            "audit_chain_ok": self.audit.chain_ok,
            "checkpoints_checked": len(self.audit.checkpoints),
            "checkpoints_ok": self.audit.checkpoints_ok,
        }


def create_backup(settings: Settings, path: Path, now: dt.datetime) -> BackupResult:
    """Write a consistent backup of ``settings``' stores to the new file ``path`` (0600).

    Never overwrites a file (ConflictError); a missing parent directory is created 0700.
    NotFoundError if there is no event store to back up.
    """
    path = path.absolute()
    keyring = _load_keyring(settings, _BACKUP_HINT)
    if path.exists():
        raise ConflictError(
            f"{path} already exists; a backup never overwrites a file: choose a new name",
            field="path",
        )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".pca-backup-") as staging:
        partial = Path(staging) / "backup.zip"
        with open_source(settings, Path(staging)) as source:
            manifest = _write_archive(partial, source, keyring, settings, now)
        _place(partial, path)
    return BackupResult(path, path.stat().st_size, manifest)


def restore_backup(settings: Settings, path: Path) -> RestoreResult:
    """Restore the backup at ``path`` into ``settings``' stores, which must be empty.

    Nothing is written unless the archive authenticates under the configured master
    keyring and every part matches its manifest (BackupDamagedError, KeyCustodyError),
    and the target holds no events, keys or CRLs (BackupTargetNotEmptyError).
    """
    with ArchiveReader(path.absolute()) as archive:
        archive.authenticate(_load_keyring(settings, _RESTORE_HINT))
        archive.verify()
        _require_token_keys(settings, archive.manifest)
        target = target_for(settings)
        target.refuse_unless_empty()
        with acquire_lease(settings):  # no runner writes read models meanwhile
            _create_tables(settings)
            target.load(archive)
            position = _rebuild_read_models(settings)
        manifest = archive.manifest
    return RestoreResult(manifest, position, _verify_audit_chain(settings))


def _load_keyring(settings: Settings, hint: str) -> MasterKeyring:
    """The configured keyring, without creating a master.keys file the way a start does."""
    keyfile = settings.data_dir / MASTER_KEYS_FILE
    if settings.master_key is None and not keyfile.exists():
        raise KeyCustodyError(
            _MISSING_MASTER_KEY.format(keyfile=keyfile, hint=hint), field="PCA_MASTER_KEY"
        )
    return MasterKeyring.load(settings.data_dir, settings.master_key)


def _write_archive(
    partial: Path, source: RowSource, keyring: MasterKeyring, settings: Settings, now: dt.datetime
) -> Manifest:
    """Write every part and the manifest to the new file ``partial``, synced to disk."""
    tally = _Tally()
    fd = os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as handle:
        with ArchiveWriter(handle) as writer:
            digests = {
                part.name: writer.write_part(part, tally.watch(part, source(part)))
                for part in PARTS
            }
            manifest = Manifest(
                created_at=now.astimezone(dt.UTC).isoformat(),
                source="postgresql" if settings.uses_postgres else "sqlite",
                head_position=tally.head_position,
                chain_head=tally.chain_head,
                master_key_ids=tuple(sorted(tally.master_key_ids)),
                parts=digests,
                ca_keys=tally.ca_keys,
                token_label=settings.pkcs11.token_label if settings.pkcs11 else None,
            )
            writer.finish(manifest, keyring)
        handle.flush()
        os.fsync(handle.fileno())
    return manifest


@dataclass
class _Tally:
    """What the manifest states about the rows, gathered as they stream by."""

    head_position: int = 0
    chain_head: str | None = None
    master_key_ids: set[str] = field(default_factory=set)
    ca_keys: dict[str, str] = field(default_factory=dict)

    def watch(self, part: Part, rows: Iterator[Row]) -> Iterator[Row]:
        for row in rows:
            if part is EVENTS:
                self.head_position = max(self.head_position, int(row[0]))
                self._note_ca_key(str(row[3]), bytes(row[4]))
            elif part is AUDIT_CHAIN:
                self.chain_head = bytes(row[2]).hex()  # rows come by position
            elif part is KEYS:
                self.master_key_ids.add(str(row[1]))
            yield row

    def _note_ca_key(self, topic: str, state: bytes) -> None:
        """Where the key of a CA enabled by this event lives (a token, or the key store)."""
        if not topic.endswith(_CA_ENABLED):
            return
        fields = json.loads(state)
        if fields.get("key_id") is not None:
            storage = fields.get("key_storage") or {"_data_": KeyStorage.SOFTWARE.value}
            self.ca_keys[fields["key_id"]] = storage["_data_"]


def _require_token_keys(settings: Settings, manifest: Manifest) -> None:
    """KeyCustodyError, before anything is written, unless every CA key the backup left in
    a PKCS#11 token is found in the token this machine is configured with."""
    missing = manifest.token_keys
    if not missing:
        return
    label = manifest.token_label or "unknown"
    if settings.pkcs11 is None:
        raise KeyCustodyError(
            f"the CA keys {', '.join(missing)} of this backup live in the PKCS#11 token "
            f"{label!r}, not in the backup, and this machine has no token configured: set "
            "PCA_PKCS11_MODULE, PCA_PKCS11_TOKEN_LABEL and PCA_PKCS11_PIN for that token "
            "(or a copy of its keys), then restore again",
            field="PCA_PKCS11_MODULE",
        )
    signer = Pkcs11Signer(settings.pkcs11)
    try:
        for key_id in missing:
            signer.signing_key(key_id)
    except KeyCustodyError:
        raise KeyCustodyError(
            f"the configured token {settings.pkcs11.token_label!r} lacks the CA key {key_id} "
            f"of this backup, which lives in the token {label!r}: configure that token (or "
            "a copy of its keys), then restore again",
            field="PCA_PKCS11_TOKEN_LABEL",
        ) from None
    finally:
        signer.close()


def _place(partial: Path, path: Path) -> None:
    """Give the finished file its name, never replacing one (a hard link fails if the
    name exists), and make the new name durable."""
    try:
        os.link(partial, path)
    except FileExistsError:
        raise ConflictError(
            f"{path} appeared while the backup was written; choose a new name", field="path"
        ) from None
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_tables(settings: Settings) -> None:
    """Create the target's tables the way the service does on its first start."""
    service = open_service(settings)
    service.close()
    service.keystore.close()
    open_crl_store(settings).close()


def _rebuild_read_models(settings: Settings) -> int:
    """Rebuild the read models from the restored log (the caller holds the lease); return
    the position they reached."""
    with Worker(settings, batch_size=CATCH_UP_BATCH_SIZE) as worker:
        worker.reset()
        worker.catch_up()
        worker.analyze()
    with ReadModels.open(settings) as read_models:
        return read_models.position()


def _verify_audit_chain(settings: Settings) -> ChainReport:
    """The restored log's chain, verified once rows from a version-1 archive are stamped."""
    service = open_service(settings)
    try:
        stamp_legacy_links(service)
        return AuditLog.of(service).verify()
    finally:
        service.close()
        service.keystore.close()
