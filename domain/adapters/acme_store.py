"""ACME nonces and rate-limit counters in a table every worker process shares.

A nonce must be single-use across all gunicorn workers and survive a restart (RFC 8555
§6.5), so it lives in the deployment's storage: ``acme.db`` beside the event store on
SQLite, tables ``pca_acme_nonces`` and ``pca_acme_counters`` in the schema on PostgreSQL.
Consuming is one ``DELETE``: whichever process deletes the row first wins, the others find
nothing. Expired nonces are swept now and then by ``issue``.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

NONCE_LIFETIME_S = 3600
_SWEEP_EVERY = 256
_SQLITE_DDL = (
    "CREATE TABLE IF NOT EXISTS pca_acme_nonces (nonce TEXT PRIMARY KEY, issued REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pca_acme_counters (key TEXT PRIMARY KEY, slot INTEGER"
    " NOT NULL, hits INTEGER NOT NULL)",
)
_UPSERT = (
    "INSERT INTO {t} (key, slot, hits) VALUES ({p}, {p}, 1) ON CONFLICT (key) DO UPDATE SET"
    " hits = CASE WHEN {t}.slot = excluded.slot THEN {t}.hits + 1 ELSE 1 END,"
    " slot = excluded.slot RETURNING hits"
)


class _Counting:
    """What both backends share: the nonce text, the sweep cadence, the window maths."""

    def __init__(self) -> None:
        self._issued = 0

    def _sweep_due(self) -> bool:
        self._issued += 1
        return self._issued % _SWEEP_EVERY == 1

    @staticmethod
    def _window(window_seconds: int) -> tuple[int, float]:
        now = time.time()
        window = int(now // window_seconds)
        return window, (window + 1) * window_seconds - now


class SQLiteNonces(_Counting):
    """Nonces and counters in one SQLite file (WAL), shared by the processes on it."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA busy_timeout = 10000")
        self._conn.execute("PRAGMA journal_mode = WAL")
        for statement in _SQLITE_DDL:
            self._conn.execute(statement)

    def issue(self) -> str:
        nonce = secrets.token_urlsafe(16)
        with self._lock:
            self._conn.execute("INSERT INTO pca_acme_nonces VALUES (?, ?)", (nonce, time.time()))
            if self._sweep_due():
                cutoff = time.time() - NONCE_LIFETIME_S
                self._conn.execute("DELETE FROM pca_acme_nonces WHERE issued < ?", (cutoff,))
        return nonce

    def consume(self, nonce: str) -> bool:
        cutoff = time.time() - NONCE_LIFETIME_S
        with self._lock:
            cursor = self._conn.execute(
                "DELETE FROM pca_acme_nonces WHERE nonce = ? AND issued >= ?", (nonce, cutoff)
            )
        return cursor.rowcount == 1

    def hit(self, key: str, window_seconds: int, limit: int) -> float | None:
        window, left = self._window(window_seconds)
        statement = _UPSERT.format(p="?", t="pca_acme_counters")
        with self._lock:
            (hits,) = self._conn.execute(statement, (key, window)).fetchone()
        return left if hits > limit else None

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresNonces(_Counting):
    """Nonces and counters in tables of the deployment's PostgreSQL schema."""

    def __init__(self, conninfo: str, schema: str) -> None:
        super().__init__()
        self._nonces = sql.Identifier(schema, "pca_acme_nonces")
        self._counters = sql.Identifier(schema, "pca_acme_counters")
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            conninfo, min_size=1, max_size=4, timeout=2.0, kwargs={"autocommit": True}, open=True
        )
        try:
            self._create_tables(schema)
        except BaseException:
            self._pool.close()
            raise

    def _create_tables(self, schema: str) -> None:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (0x70636161636D65,))
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (nonce text PRIMARY KEY, issued double"
                    " precision NOT NULL)"
                ).format(self._nonces)
            )
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, slot bigint NOT NULL,"
                    " hits integer NOT NULL)"
                ).format(self._counters)
            )

    def issue(self) -> str:
        nonce = secrets.token_urlsafe(16)
        with self._pool.connection() as conn:
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(self._nonces), (nonce, time.time())
            )
            if self._sweep_due():
                conn.execute(
                    sql.SQL("DELETE FROM {} WHERE issued < %s").format(self._nonces),
                    (time.time() - NONCE_LIFETIME_S,),
                )
        return nonce

    def consume(self, nonce: str) -> bool:
        query = sql.SQL("DELETE FROM {} WHERE nonce = %s AND issued >= %s").format(self._nonces)
        with self._pool.connection() as conn:
            cursor = conn.execute(query, (nonce, time.time() - NONCE_LIFETIME_S))
        return cursor.rowcount == 1

    def hit(self, key: str, window_seconds: int, limit: int) -> float | None:
        window, left = self._window(window_seconds)
        statement = sql.SQL(_UPSERT.format(p="%s", t="{t}")).format(t=self._counters)
        with self._pool.connection() as conn:
            row = conn.execute(statement, (key, window)).fetchone()
        assert row is not None
        return left if row[0] > limit else None

    def close(self) -> None:
        self._pool.close()
