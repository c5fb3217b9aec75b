"""Backup and restore of a deployment: the event log with its audit chain and checkpoints,
the key store and the CRLs being served (``pca backup PATH``, ``pca restore PATH``).

Consistent while the service runs. Keys are stored before the events that name them, and
a CRL is served only after its ``CRLPublished`` event is saved, so the stores are read in
the order CRLs, events, keys: every event in a backup then finds its key, and every CRL
its event. SQLite: one online-backup copy (``sqlite3.Connection.backup``) per file, in that
order, into a private staging directory, read from there. PostgreSQL: every table read in
one REPEATABLE READ transaction (one snapshot, so the order does not matter there).

Restore into an empty store only: it checks the archive through (authenticator, then
every part's SHA-256) before it touches the target, writes every row with its original
position in one transaction, then rebuilds the read models and verifies the audit chain.
The archive format is in :mod:`projections.backup.archive`; docs/BACKUP.md is the guide.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from domain.adapters.keystore import MASTER_KEYS_FILE, MasterKeyring
from domain.adapters.settings import EVENTS_FILE, KEYS_FILE, Settings, open_service
from domain.application.service import PrivateCA
from domain.audit.chain import CHAIN_TABLE, CHECKPOINTS_TABLE
from domain.audit.verify import AuditLog, ChainReport
from domain.model.errors import ConflictError, KeyCustodyError, NotFoundError
from projections.backup.archive import (
    AUDIT_CHAIN,
    AUDIT_CHECKPOINTS,
    CRLS,
    EVENTS,
    KEYS,
    PARTS,
    SNAPSHOTS,
    ArchiveReader,
    ArchiveWriter,
    Manifest,
    Part,
    Row,
)
from projections.readmodels.lease import acquire_lease
from projections.readmodels.queries import ReadModels
from projections.readmodels.worker import Worker
from projections.revocation.crlstore import CRLS_FILE, open_crl_store

__all__ = [
    "BackupResult",
    "BackupTargetNotEmptyError",
    "RestoreResult",
    "create_backup",
    "restore_backup",
]

RowSource = Callable[[Part], Iterator[Row]]

# Files in the order a SQLite backup copies them (see the module docstring).
_SQLITE_COPY_ORDER = (CRLS_FILE, EVENTS_FILE, KEYS_FILE)
_SQLITE_ALIASES = {EVENTS_FILE: "events", KEYS_FILE: "keystore", CRLS_FILE: "crlstore"}
_PG_EVENTS = f"{PrivateCA.name}_events"  # eventsourcing names the tables after the app
_PG_UTC_TEXT = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
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
class Table:
    """Where one part lives in one backend."""

    file: str  # SQLite: the file in the data directory; PostgreSQL: unused
    name: str
    columns: tuple[str, ...]  # in the part's order
    select: dict[str, str] = field(default_factory=dict)  # PostgreSQL: column -> expression


_EVENT_COLUMNS = ("originator_id", "originator_version", "topic", "state")
_CHAIN_COLUMNS = ("position", "previous", "link")
_CHECKPOINT_COLUMNS = ("position", "head", "time", "key_id", "public_key", "signature")
_KEY_COLUMNS = ("key_id", "master_key_id", "blob", "created_at")  # domain.adapters.keystore
_CRL_COLUMNS = ("issuer_id", "kind", "number", "der", "sha256", "this_update", "next_update")

SQLITE_TABLES = {
    EVENTS: Table(EVENTS_FILE, "stored_events", ("rowid", *_EVENT_COLUMNS)),
    SNAPSHOTS: Table(EVENTS_FILE, "stored_snapshots", _EVENT_COLUMNS),
    AUDIT_CHAIN: Table(EVENTS_FILE, CHAIN_TABLE, _CHAIN_COLUMNS),
    AUDIT_CHECKPOINTS: Table(EVENTS_FILE, CHECKPOINTS_TABLE, _CHECKPOINT_COLUMNS),
    KEYS: Table(KEYS_FILE, "pca_keys", _KEY_COLUMNS),
    CRLS: Table(CRLS_FILE, "pca_crls", _CRL_COLUMNS),
}
POSTGRES_TABLES = {
    EVENTS: Table("", _PG_EVENTS, ("notification_id", *_EVENT_COLUMNS)),
    SNAPSHOTS: Table("", f"{PrivateCA.name}_snapshots", _EVENT_COLUMNS),
    AUDIT_CHAIN: Table("", CHAIN_TABLE, _CHAIN_COLUMNS),
    AUDIT_CHECKPOINTS: Table("", CHECKPOINTS_TABLE, _CHECKPOINT_COLUMNS),
    KEYS: Table("", "pca_keys", _KEY_COLUMNS, {"created_at": _PG_UTC_TEXT}),
    CRLS: Table("", "pca_crls", _CRL_COLUMNS),
}


class BackupTargetNotEmptyError(ConflictError):
    """Raised when a restore's target already holds events, keys or CRLs."""


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
        with _source(settings, Path(staging)) as source:
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
        target = _target(settings)
        target.refuse_unless_empty()
        with acquire_lease(settings):  # no runner writes read models meanwhile
            _create_tables(settings)
            target.load(archive)
            position = _rebuild_read_models(settings)
        manifest = archive.manifest
    return RestoreResult(manifest, position, _verify_audit_chain(settings))


# --- backup -------------------------------------------------------------------------------


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

    def watch(self, part: Part, rows: Iterator[Row]) -> Iterator[Row]:
        for row in rows:
            if part is EVENTS:
                self.head_position = max(self.head_position, int(row[0]))
            elif part is AUDIT_CHAIN:
                self.chain_head = bytes(row[2]).hex()  # rows come by position
            elif part is KEYS:
                self.master_key_ids.add(str(row[1]))
            yield row


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


@contextlib.contextmanager
def _source(settings: Settings, staging: Path) -> Iterator[RowSource]:
    if settings.database_url is None:
        with _sqlite_source(settings.data_dir, staging) as source:
            yield source
    else:
        with _postgres_source(settings.database_url, _schema(settings)) as source:
            yield source


@contextlib.contextmanager
def _sqlite_source(data_dir: Path, staging: Path) -> Iterator[RowSource]:
    """Online-backup copies of the live files, made in dependency order, to read from."""
    for name in (EVENTS_FILE, KEYS_FILE):
        if not (data_dir / name).exists():
            raise NotFoundError(
                f"there is no {data_dir / name}: nothing to back up; point PCA_DATA_DIR at"
                " the service's data directory",
                field="PCA_DATA_DIR",
            )
    copies: dict[str, sqlite3.Connection] = {}
    try:
        for name in _SQLITE_COPY_ORDER:
            if (data_dir / name).exists():
                copies[name] = _online_copy(data_dir / name, staging / name)
        yield lambda part: _sqlite_rows(copies, SQLITE_TABLES[part])
    finally:
        for connection in copies.values():
            connection.close()


def _online_copy(live: Path, copy: Path) -> sqlite3.Connection:
    """Copy ``live`` as of one read transaction into ``copy`` (mode 0600); the copy, open.

    SQLite's backup API reads the live file through SQLite's own locking, so writers go
    on and this process's connections keep their locks."""
    os.close(os.open(copy, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    target = sqlite3.connect(copy)
    try:
        with contextlib.closing(sqlite3.connect(live, timeout=30)) as source:
            source.backup(target)
    except BaseException:
        target.close()
        raise
    return target


def _sqlite_rows(copies: dict[str, sqlite3.Connection], table: Table) -> Iterator[Row]:
    connection = copies.get(table.file)
    if connection is None or not _sqlite_has_table(connection, "main", table.name):
        return
    columns = ", ".join(table.columns)
    # Names are constants of this module, not input.
    yield from connection.execute(f"SELECT {columns} FROM {table.name} ORDER BY 1, 2")  # noqa: S608


def _sqlite_has_table(connection: sqlite3.Connection, alias: str, name: str) -> bool:
    query = f"SELECT count(*) FROM {alias}.sqlite_master WHERE type = 'table' AND name = ?"  # noqa: S608
    return bool(connection.execute(query, (name,)).fetchone()[0])


@contextlib.contextmanager
def _postgres_source(url: str, schema: str) -> Iterator[RowSource]:
    """Every table as of one snapshot: a read-only REPEATABLE READ transaction."""
    with psycopg.connect(url) as connection:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
        with connection.transaction():
            if not _pg_has_table(connection, schema, _PG_EVENTS):
                raise NotFoundError(
                    f"there is no {schema}.{_PG_EVENTS} table: nothing to back up; check"
                    " PCA_DATABASE_URL and PCA_DATABASE_SCHEMA",
                    field="PCA_DATABASE_SCHEMA",
                )
            yield lambda part: _postgres_rows(connection, schema, part)


def _postgres_rows(connection: psycopg.Connection[Any], schema: str, part: Part) -> Iterator[Row]:
    table = POSTGRES_TABLES[part]
    if not _pg_has_table(connection, schema, table.name):
        return
    columns = sql.SQL(", ").join(
        sql.SQL(table.select[c]) if c in table.select else sql.Identifier(c) for c in table.columns
    )
    query = sql.SQL("SELECT {} FROM {} ORDER BY 1, 2").format(
        columns, sql.Identifier(schema, table.name)
    )
    with connection.cursor(name=f"pca_backup_{part.name}") as cursor:
        cursor.itersize = 2000
        yield from cursor.execute(query)


def _pg_has_table(connection: psycopg.Connection[Any], schema: str, name: str) -> bool:
    qualified = sql.Identifier(schema, name).as_string(connection)
    row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified,)).fetchone()
    return bool(row and row[0])


def _schema(settings: Settings) -> str:
    return settings.database_schema or "public"


# --- restore ------------------------------------------------------------------------------


class _Target(ABC):
    """The stores a restore writes into."""

    @abstractmethod
    def holding(self) -> list[str]:
        """The tables that hold rows (missing tables hold none)."""

    @abstractmethod
    def load(self, archive: ArchiveReader) -> None:
        """Write every part in one transaction, the target re-checked empty inside it."""

    @abstractmethod
    def describe(self) -> str:
        """Where the target is, for messages."""

    def refuse_unless_empty(self) -> None:
        """BackupTargetNotEmptyError if the target holds rows."""
        self._refuse_if(self.holding())

    def _refuse_if(self, held: list[str]) -> None:
        if held:
            raise BackupTargetNotEmptyError(
                f"the restore target {self.describe()} is not empty ({', '.join(held)} hold"
                " data), and a restore never merges: point PCA_DATA_DIR at a new directory"
                " (SQLite) or PCA_DATABASE_SCHEMA at a new schema (PostgreSQL), keeping the"
                " master key, and restore again. Nothing was changed."
            )


def _target(settings: Settings) -> _Target:
    if settings.database_url is None:
        return _SQLiteTarget(settings.data_dir)
    return _PostgresTarget(settings.database_url, _schema(settings))


class _SQLiteTarget(_Target):
    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir

    def describe(self) -> str:
        return f"data directory {self._data_dir}"

    def holding(self) -> list[str]:
        with contextlib.closing(self._connect()) as connection:
            return self._holding(connection)

    def load(self, archive: ArchiveReader) -> None:
        with contextlib.closing(self._connect()) as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                self._refuse_if(self._holding(connection))
                for part in PARTS:
                    table = SQLITE_TABLES[part]
                    connection.executemany(
                        _sqlite_insert(table), map(_sqlite_values, archive.rows(part))
                    )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    def _connect(self) -> sqlite3.Connection:
        """One connection with each existing file attached under its alias, so that one
        transaction spans them (atomic for errors; WAL makes a crash atomic per file)."""
        connection = sqlite3.connect(":memory:", timeout=30, isolation_level=None)
        for name, alias in _SQLITE_ALIASES.items():
            if (self._data_dir / name).exists():
                connection.execute(f"ATTACH DATABASE ? AS {alias}", (str(self._data_dir / name),))
        return connection

    def _holding(self, connection: sqlite3.Connection) -> list[str]:
        attached = {row[1] for row in connection.execute("PRAGMA database_list")}
        held = []
        for table in SQLITE_TABLES.values():
            alias = _SQLITE_ALIASES[table.file]
            if alias in attached and _sqlite_has_table(connection, alias, table.name):
                query = f"SELECT EXISTS (SELECT 1 FROM {alias}.{table.name})"  # noqa: S608
                if connection.execute(query).fetchone()[0]:
                    held.append(f"{table.file}:{table.name}")
        return held


def _sqlite_insert(table: Table) -> str:
    alias = _SQLITE_ALIASES[table.file]
    marks = ", ".join("?" * len(table.columns))
    return f"INSERT INTO {alias}.{table.name} ({', '.join(table.columns)}) VALUES ({marks})"  # noqa: S608


def _sqlite_values(row: Row) -> Row:
    """eventsourcing's SQLite recorder keeps UUIDs as 32 hex digits."""
    return tuple(value.hex if isinstance(value, UUID) else value for value in row)


class _PostgresTarget(_Target):
    def __init__(self, url: str, schema: str) -> None:
        self._url = url
        self._schema = schema

    def describe(self) -> str:
        return f"PostgreSQL schema {self._schema}"

    def holding(self) -> list[str]:
        with psycopg.connect(self._url, autocommit=True) as connection:
            return self._holding(connection)

    def load(self, archive: ArchiveReader) -> None:
        with psycopg.connect(self._url) as connection, connection.transaction():
            events = sql.Identifier(self._schema, _PG_EVENTS)
            # The lock eventsourcing's writers take: none can commit an event meanwhile.
            connection.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(events))
            self._refuse_if(self._holding(connection))
            for part in PARTS:
                self._copy(connection, POSTGRES_TABLES[part], archive.rows(part))
            if archive.manifest.head_position:
                connection.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, 'notification_id'), %s)",
                    (events.as_string(connection), archive.manifest.head_position),
                )

    def _copy(self, connection: psycopg.Connection[Any], table: Table, rows: Iterator[Row]) -> None:
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier(self._schema, table.name),
            sql.SQL(", ").join(map(sql.Identifier, table.columns)),
        )
        with connection.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)

    def _holding(self, connection: psycopg.Connection[Any]) -> list[str]:
        held = []
        for table in POSTGRES_TABLES.values():
            if _pg_has_table(connection, self._schema, table.name):
                query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(
                    sql.Identifier(self._schema, table.name)
                )
                row = connection.execute(query).fetchone()
                if row and row[0]:
                    held.append(f"{self._schema}.{table.name}")
        return held


def _create_tables(settings: Settings) -> None:
    """Create the target's tables the way the service does on its first start."""
    service = open_service(settings)
    service.close()
    service.keystore.close()
    open_crl_store(settings).close()


def _rebuild_read_models(settings: Settings) -> int:
    """Rebuild the read models from the restored log (the caller holds the lease); return
    the position they reached."""
    with Worker(settings) as worker:
        worker.reset()
        worker.catch_up()
        worker.analyze()
    with ReadModels.open(settings) as read_models:
        return read_models.position()


def _verify_audit_chain(settings: Settings) -> ChainReport:
    service = open_service(settings)
    try:
        return AuditLog.of(service).verify()
    finally:
        service.close()
        service.keystore.close()
