"""The CRLs being served: the newest base and delta CRL of each CA, shared by every API
process. Derived data: a rebuild re-publishes it, the events keep the history.

SQLite: ``crls.db`` in the data directory. PostgreSQL: table ``pca_crls`` in the event
store's schema. A write only replaces an older CRL number, so two publishers racing can
never serve an older CRL after a newer one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from uuid import UUID

import psycopg
from psycopg import errors, sql

from domain.adapters.settings import Settings, prepare_sqlite_file

CRLS_FILE = "crls.db"
BASE = "base"
DELTA = "delta"
_COLUMNS = "issuer_id, kind, number, der, sha256, this_update, next_update"
# Table names are constants and values are parameters, so the concatenation is safe.
_UPSERT = (
    "INSERT INTO {table} AS t (" + _COLUMNS + ") VALUES ({marks}) "  # noqa: S608
    "ON CONFLICT (issuer_id, kind) DO UPDATE SET number = excluded.number, "
    "der = excluded.der, sha256 = excluded.sha256, this_update = excluded.this_update, "
    "next_update = excluded.next_update WHERE excluded.number > t.number"
)
_CREATE = (
    "CREATE TABLE IF NOT EXISTS {table} (issuer_id TEXT NOT NULL, kind TEXT NOT NULL, "
    "number BIGINT NOT NULL, der {blob} NOT NULL, sha256 TEXT NOT NULL, "
    "this_update TEXT NOT NULL, next_update TEXT NOT NULL, PRIMARY KEY (issuer_id, kind))"
)


@dataclass(frozen=True)
class StoredCRL:
    """One served CRL and what HTTP caching needs to know about it."""

    issuer_id: UUID
    kind: str
    number: int
    der: bytes
    sha256: str
    this_update: dt.datetime
    next_update: dt.datetime


class CRLStore(ABC):
    """The newest CRL of each kind per issuer."""

    @abstractmethod
    def put(self, crl: StoredCRL) -> None:
        """Serve ``crl`` from now on, unless a higher-numbered one is already served."""

    @abstractmethod
    def get(self, issuer_id: UUID, kind: str) -> StoredCRL | None:
        """The CRL served for ``issuer_id`` and ``kind`` (base or delta), if any."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""


def open_crl_store(settings: Settings) -> CRLStore:
    """The CRL store of ``settings``' deployment (tables created if missing)."""
    if settings.database_url is not None:
        return _PostgresCRLStore(settings.database_url, settings.database_schema or "public")
    settings.prepare_data_dir()
    return _SQLiteCRLStore(settings)


def _params(crl: StoredCRL) -> tuple[object, ...]:
    return (
        str(crl.issuer_id),
        crl.kind,
        crl.number,
        crl.der,
        crl.sha256,
        crl.this_update.isoformat(),
        crl.next_update.isoformat(),
    )


def _row(row: tuple[object, ...]) -> StoredCRL:
    issuer_id, kind, number, der, sha256, this_update, next_update = row
    return StoredCRL(
        UUID(str(issuer_id)),
        str(kind),
        int(str(number)),
        bytes(der),  # type: ignore[call-overload]
        str(sha256),
        dt.datetime.fromisoformat(str(this_update)),
        dt.datetime.fromisoformat(str(next_update)),
    )


class _SQLiteCRLStore(CRLStore):
    def __init__(self, settings: Settings) -> None:
        path = settings.data_dir / CRLS_FILE
        prepare_sqlite_file(path)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(
            path, timeout=30, check_same_thread=False, isolation_level=None
        )
        self._connection.execute(_CREATE.format(table="pca_crls", blob="BLOB"))

    def put(self, crl: StoredCRL) -> None:
        statement = _UPSERT.format(table="pca_crls", marks=", ".join("?" * 7))
        with self._lock:
            self._connection.execute(statement, _params(crl))

    def get(self, issuer_id: UUID, kind: str) -> StoredCRL | None:
        with self._lock:
            row = self._connection.execute(
                f"SELECT {_COLUMNS} FROM pca_crls WHERE issuer_id = ? AND kind = ?",  # noqa: S608
                (str(issuer_id), kind),
            ).fetchone()
        return None if row is None else _row(row)

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class _PostgresCRLStore(CRLStore):
    def __init__(self, url: str, schema: str) -> None:
        self._url = url
        self._table = sql.Identifier(schema, "pca_crls")
        self._lock = threading.Lock()
        self._connection = psycopg.connect(url, autocommit=True)
        create = sql.SQL(_CREATE.format(table="{table}", blob="BYTEA")).format(table=self._table)
        # Processes starting together may both create it; the loser finds it made.
        with contextlib.suppress(errors.UniqueViolation, errors.DuplicateTable):
            self._connection.execute(create)

    def put(self, crl: StoredCRL) -> None:
        statement = sql.SQL(_UPSERT.format(table="{table}", marks=", ".join(["%s"] * 7)))
        with self._lock:
            self._live().execute(statement.format(table=self._table), _params(crl))

    def get(self, issuer_id: UUID, kind: str) -> StoredCRL | None:
        statement = sql.SQL(
            "SELECT " + _COLUMNS + " FROM {table} WHERE issuer_id = %s AND kind = %s"  # noqa: S608
        ).format(table=self._table)
        with self._lock:
            row = self._live().execute(statement, (str(issuer_id), kind)).fetchone()
        return None if row is None else _row(row)

    def _live(self) -> psycopg.Connection[tuple[object, ...]]:
        """The connection, made again if the server dropped the last one (a restart):
        the call that met the drop failed, the next one succeeds. Caller holds _lock."""
        if self._connection.broken:
            self._connection = psycopg.connect(self._url, autocommit=True)
        return self._connection

    def close(self) -> None:
        with self._lock:
            self._connection.close()
