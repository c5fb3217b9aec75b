"""The key store's two backends: a table in the event store's SQLite file, or in its
PostgreSQL schema through a pool (the table: :mod:`domain.adapters.keytable`)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from domain.adapters.keystore import KeyStore, Rewrapper, SealedKey
from domain.adapters.keytable import (
    SQLITE_INSERT_KEYS,
    SQLITE_KEYS_DDL,
    key_rows,
    pg_insert_keys,
)
from domain.adapters.masterkeys import MasterKeyring
from domain.model.errors import KeyCustodyError

__all__ = ["PostgresKeyStore", "SQLiteKeyStore"]

logger = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 10_000
_CHECKPOINT_WAIT_MS = 250
_SQLITE_ADOPT = (
    "INSERT INTO pca_keys (key_id, master_key_id, blob, created_at) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (key_id) DO NOTHING"
)
_SQLITE_OLD_ROWS = "SELECT key_id, master_key_id, blob, created_at FROM pca_keys"
_SQLITE_HAS_KEYS = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'pca_keys'"


class SQLiteKeyStore(KeyStore):
    """A key store in a SQLite file (WAL, mode 0600), shareable by threads and processes:
    in a deployment, the event store's ``events.db``, whose recorder writes the keys a
    save carries in the save's own transaction.

    Deleted rows are zeroed (secure_delete) and the WAL is truncated after a destroy
    or rewrap, so neither a destroyed key nor an old wrapping lingers in the files.
    """

    def __init__(self, path: Path, keyring: MasterKeyring) -> None:
        """Open (creating if missing, mode 0600, parent 0700) the store at ``path``."""
        super().__init__(keyring)
        self._path = path
        self._db_lock = threading.Lock()
        self._conn = _open_sqlite(path)

    def close(self) -> None:
        """Close the connection."""
        with self._db_lock:
            self._conn.close()

    def _insert_many(self, sealed: Sequence[SealedKey]) -> None:
        with self._db_lock:
            try:
                with self._transaction():
                    self._conn.executemany(SQLITE_INSERT_KEYS, key_rows(sealed))
            except sqlite3.IntegrityError:
                raise self._duplicate(sealed) from None

    def _select(self, key_id: str) -> tuple[str, bytes] | None:
        with self._db_lock:
            row = self._conn.execute(
                "SELECT master_key_id, blob FROM pca_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def _delete(self, key_id: str) -> bool:
        with self._db_lock:
            cursor = self._conn.execute("DELETE FROM pca_keys WHERE key_id = ?", (key_id,))
            existed = cursor.rowcount > 0
            if existed:
                self._truncate_wal()
        return existed

    def _rewrap(self, active_id: str, rewrap: Rewrapper) -> int:
        with self._db_lock:
            with self._transaction():
                rows = self._conn.execute(
                    "SELECT key_id, master_key_id, blob FROM pca_keys WHERE master_key_id <> ?",
                    (active_id,),
                ).fetchall()
                for key_id, master_id, blob in rows:
                    new_id, new_blob = rewrap(key_id, master_id, blob)
                    self._conn.execute(
                        "UPDATE pca_keys SET master_key_id = ?, blob = ? WHERE key_id = ?",
                        (new_id, new_blob, key_id),
                    )
            if rows:
                self._truncate_wal()
        return len(rows)

    def adopt(self, old: Path) -> int:
        """Move the records of ``old``, an older release's separate key file, into this
        store, then delete ``old`` (and its WAL): returns how many records were new.

        Safe to repeat and to interrupt: the copy commits in one transaction, keeping
        any record already here, before ``old`` is deleted, so a crash in between only
        means the next open copies nothing new and deletes it then. Processes opening
        together take turns on a lock of ``old`` itself; a later one finds it deleted.
        """
        try:
            handle = os.open(old, os.O_RDWR)
        except FileNotFoundError:
            return 0
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            if os.fstat(handle).st_nlink == 0:
                return 0  # another process moved it while this one waited
            rows = _old_rows(old)
            with self._db_lock, self._transaction():
                before = self._conn.total_changes
                self._conn.executemany(_SQLITE_ADOPT, rows)
                adopted = self._conn.total_changes - before
            _delete_database(old)
        finally:
            os.close(handle)
        logger.warning("%s: moved %d key records into %s and deleted it", old, adopted, self._path)
        return adopted

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """A write transaction taken up front (BEGIN IMMEDIATE); caller holds _db_lock."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _truncate_wal(self) -> None:
        """Copy the WAL into the database and empty it; caller holds _db_lock.

        The file is the busy event store, whose readers (the projection runner, a
        backup) a truncating checkpoint must wait out: it waits a moment, not the
        store's full busy timeout, so a destroy never stalls its request for long.
        """
        self._conn.execute(f"PRAGMA busy_timeout = {_CHECKPOINT_WAIT_MS}")
        try:
            busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        finally:
            self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        if busy:
            logger.warning(
                "%s: WAL not truncated after a delete because another connection was busy;"
                " old pages leave the WAL at its next reset",
                self._path,
            )


def _open_sqlite(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    try:
        for pragma in (
            f"busy_timeout = {_BUSY_TIMEOUT_MS}",
            "secure_delete = ON",
            "synchronous = FULL",
        ):
            conn.execute(f"PRAGMA {pragma}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise KeyCustodyError(f"{path}: SQLite refused WAL mode (got {mode}); use a local disk")
        conn.execute(SQLITE_KEYS_DDL)
    except BaseException:
        conn.close()
        raise
    return conn


def _old_rows(path: Path) -> list[tuple[Any, ...]]:
    """Every record of an older release's key file, its WAL included, then checkpointed
    into the file so that deleting the file removes every copy."""
    with contextlib.closing(sqlite3.connect(path, timeout=10.0)) as old:
        if not old.execute(_SQLITE_HAS_KEYS).fetchone()[0]:
            return []
        rows = old.execute(_SQLITE_OLD_ROWS).fetchall()
        old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return rows


def _delete_database(path: Path) -> None:
    """Delete a SQLite file with its WAL and shared memory, durably (the directory too)."""
    for name in (f"{path.name}-wal", f"{path.name}-shm", path.name):
        (path.parent / name).unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


OUTAGE_WAIT_SECONDS = 2.0
_PG_DDL_LOCK = 0x70636B657973  # "pckeys": serialises concurrent table creation


class PostgresKeyStore(KeyStore):
    """A key store in PostgreSQL table ``<schema>.pca_keys``, through a small pool.

    A destroyed row is deleted; PostgreSQL may keep its (encrypted) bytes in dead
    tuples, WAL or backups until vacuumed, so to shred keys for good rotate the
    master key, rewrap_all() and then drop the old master key.
    """

    def __init__(
        self,
        conninfo: str,
        keyring: MasterKeyring,
        schema: str = "public",
        *,
        pool_size: int = 4,
    ) -> None:
        """Connect (waiting up to 10 s) and create the schema and table if missing."""
        super().__init__(keyring)
        self._table = sql.Identifier(schema, "pca_keys")
        self._insert = pg_insert_keys(schema)
        # During a database outage a request waits at most OUTAGE_WAIT_SECONDS for a
        # connection, then fails (503 with Retry-After) instead of hanging for half a minute.
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            timeout=OUTAGE_WAIT_SECONDS,
            kwargs={"autocommit": True, "connect_timeout": round(OUTAGE_WAIT_SECONDS)},
            open=True,
        )
        try:
            self._pool.wait(timeout=10.0)
            self._create_table(schema)
        except BaseException:
            self._pool.close()
            raise

    def close(self) -> None:
        """Close the connection pool."""
        self._pool.close()

    def _create_table(self, schema: str) -> None:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_DDL_LOCK,))
            exists = conn.execute(
                "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)
            ).fetchone()
            if not (exists and exists[0]):
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (key_id text PRIMARY KEY,"
                    " master_key_id text NOT NULL, blob bytea NOT NULL,"
                    " created_at timestamptz NOT NULL DEFAULT now())"
                ).format(self._table)
            )

    def _insert_many(self, sealed: Sequence[SealedKey]) -> None:
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(self._insert, key_rows(sealed))
        except psycopg.errors.UniqueViolation:
            raise self._duplicate(sealed) from None

    def _select(self, key_id: str) -> tuple[str, bytes] | None:
        query = sql.SQL("SELECT master_key_id, blob FROM {} WHERE key_id = %s")
        with self._pool.connection() as conn:
            row = conn.execute(query.format(self._table), (key_id,)).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def _delete(self, key_id: str) -> bool:
        query = sql.SQL("DELETE FROM {} WHERE key_id = %s")
        with self._pool.connection() as conn:
            return conn.execute(query.format(self._table), (key_id,)).rowcount > 0

    def _rewrap(self, active_id: str, rewrap: Rewrapper) -> int:
        select = sql.SQL(
            "SELECT key_id, master_key_id, blob FROM {} WHERE master_key_id <> %s FOR UPDATE"
        ).format(self._table)
        update = sql.SQL("UPDATE {} SET master_key_id = %s, blob = %s WHERE key_id = %s").format(
            self._table
        )
        with self._pool.connection() as conn, conn.transaction():
            rows = conn.execute(select, (active_id,)).fetchall()
            for key_id, master_id, blob in rows:
                new_id, new_blob = rewrap(str(key_id), str(master_id), bytes(blob))
                conn.execute(update, (new_id, new_blob, key_id))
        return len(rows)
