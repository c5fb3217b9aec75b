"""Configuration from the environment, and the one place that wires the service together.

Settings (all optional):

``PCA_DATA_DIR``       data directory (default ``./pca-data``): SQLite event store
                       ``events.db``, key store ``keys.db`` and ``master.keys``; mode 0700.
``PCA_DATABASE_URL``   ``postgresql://USER:PASSWORD@HOST:PORT/DBNAME``: keep events and keys in
                       PostgreSQL instead of SQLite.
``PCA_DATABASE_SCHEMA`` PostgreSQL schema (default ``public``).
``PCA_PUBLIC_URL``     base URL written into certificates for CRLs, CA certificates and OCSP
                       (default ``http://127.0.0.1:8080``).
``PCA_MASTER_KEY``     comma-separated base64 AES-256 master keys, first active; without it a
                       key file is created in the data directory on first start.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from domain.adapters.keystore import KeyStore, MasterKeyring, PostgresKeyStore, SQLiteKeyStore
from domain.adapters.writelock import write_locks
from domain.application.service import Clock, PrivateCA, utc_now
from domain.audit.chain import POSTGRES_RECORDER_TOPIC, SQLITE_RECORDER_TOPIC
from domain.model.errors import StorageNotDurableError

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
EVENTS_FILE = "events.db"
KEYS_FILE = "keys.db"
_AGGREGATE_CACHE = "5000"
_WAL_ATTEMPTS = 10
# How long one request waits for storage before it fails (the API answers 503 with
# Retry-After): SQLite's busy timeout for the write lock, and PostgreSQL's wait for a
# pooled connection. eventsourcing tries a PostgreSQL read or write up to ten times, 0.2 s
# apart, so with PostgreSQL down a request fails after about 10 x (1 + 0.2) = 12 s, well
# within a client's usual 30 s; in normal operation neither wait comes near these bounds.
SQLITE_LOCK_TIMEOUT_S = 10
POSTGRES_POOL_TIMEOUT_S = 1


@dataclass(frozen=True)
class Settings:
    """Where the service keeps its data and how it names itself to relying parties."""

    data_dir: Path
    public_url: str = DEFAULT_PUBLIC_URL
    database_url: str | None = None
    database_schema: str = ""
    master_key: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Settings from ``PCA_*`` variables (see the module docstring)."""
        return cls(
            data_dir=Path(environ.get("PCA_DATA_DIR", "pca-data")).absolute(),
            public_url=environ.get("PCA_PUBLIC_URL", DEFAULT_PUBLIC_URL),
            database_url=environ.get("PCA_DATABASE_URL") or None,
            database_schema=environ.get("PCA_DATABASE_SCHEMA", ""),
            master_key=environ.get("PCA_MASTER_KEY") or None,
        )

    @property
    def uses_postgres(self) -> bool:
        return self.database_url is not None

    def eventsourcing_env(self) -> dict[str, str]:
        """The eventsourcing environment for the configured event store.

        Its application recorder writes an audit chain link with every event
        (:mod:`domain.audit.chain`).
        """
        env = {"AGGREGATE_CACHE_MAXSIZE": _AGGREGATE_CACHE, "AGGREGATE_CACHE_FASTFORWARD": "y"}
        if self.database_url is None:
            env["PERSISTENCE_MODULE"] = "eventsourcing.sqlite"
            env["APPLICATION_RECORDER_TOPIC"] = SQLITE_RECORDER_TOPIC
            env["SQLITE_DBNAME"] = str(self.data_dir / EVENTS_FILE)
            env["SQLITE_LOCK_TIMEOUT"] = str(SQLITE_LOCK_TIMEOUT_S)
            return env
        env["PERSISTENCE_MODULE"] = "eventsourcing.postgres"
        env["APPLICATION_RECORDER_TOPIC"] = POSTGRES_RECORDER_TOPIC
        env.update(_postgres_env(self.database_url))
        if self.database_schema:
            env["POSTGRES_SCHEMA"] = self.database_schema
        return env

    def prepare_data_dir(self) -> None:
        """Create the data directory (0700) and SQLite files (0600) before anyone opens them."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.database_url is None:
            for name in (EVENTS_FILE, KEYS_FILE):
                prepare_sqlite_file(self.data_dir / name)

    def open_keystore(self) -> KeyStore:
        """The key store next to the event store, under the configured master keys."""
        keyring = MasterKeyring.load(self.data_dir, self.master_key)
        if self.database_url is None:
            return SQLiteKeyStore(self.data_dir / KEYS_FILE, keyring)
        return PostgresKeyStore(self.database_url, keyring, schema=self.database_schema or "public")


def open_service(settings: Settings, *, clock: Clock = utc_now) -> PrivateCA:
    """The application service on durable storage, with its key store."""
    settings.prepare_data_dir()
    env = settings.eventsourcing_env()
    return PrivateCA(
        env,
        keystore=settings.open_keystore(),
        public_url=settings.public_url,
        clock=clock,
        write_locks=functools.partial(write_locks, env),
    )


def prepare_sqlite_file(path: Path) -> None:
    """Create ``path`` with mode 0600 before SQLite opens it, and switch it to WAL.

    Only a file that does not exist yet is touched: opening and closing a descriptor on a
    database that this process already uses would drop SQLite's POSIX locks on it.
    Switching the journal mode needs a moment of exclusive access; processes starting
    together on a fresh data directory take turns here.
    """
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return
    for attempt in range(_WAL_ATTEMPTS):
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=10)) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if attempt == _WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _postgres_env(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"} or not parts.path.strip("/"):
        raise StorageNotDurableError(
            "PCA_DATABASE_URL must look like postgresql://USER:PASSWORD@HOST:PORT/DBNAME."
        )
    if parts.query:
        # The event store takes host, port, user and password one by one, so options such
        # as sslmode would reach some connections and silently not others.
        raise StorageNotDurableError(
            "PCA_DATABASE_URL must not carry options (?...): they would not reach every "
            "connection. Set them as libpq variables instead, e.g. PGSSLMODE=verify-full "
            "PGSSLROOTCERT=/path/to/ca.pem."
        )
    return {
        "POSTGRES_DBNAME": unquote(parts.path.strip("/")),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or ""),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_POOL_SIZE": "4",  # opened eagerly by psycopg_pool, per process
        "POSTGRES_MAX_OVERFLOW": "16",
        # eventsourcing's name for the pool wait; whole seconds only.
        "POSTGRES_CONNECT_TIMEOUT": str(POSTGRES_POOL_TIMEOUT_S),
    }
