"""The web console's sign-in sessions, shared by every API process.

A session is kept under the SHA-256 of its id (the cookie's value), never the id itself,
so whoever reads the table cannot sign in with what it finds. It records which API token
was exchanged for it (the token's record id, name and role, never the token), its CSRF
token, and when it began and was last used: the console ends it on the token's
revocation or expiry, after an idle time and after an absolute lifetime.

SQLite: ``sessions.db`` in the data directory. PostgreSQL: table ``pca_console_sessions``
in the event store's schema. Sessions are not events: signing in changes nothing of the
CA, and a session's end leaves nothing to audit but the log line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import sqlite3
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from uuid import UUID

import psycopg
from psycopg import errors, sql

from domain.adapters.resources import Closeable
from domain.adapters.settings import Settings, prepare_sqlite_file

SESSIONS_FILE = "sessions.db"
TABLE = "pca_console_sessions"
# Table and column names are constants and values are parameters: concatenation is safe.
_COLUMNS = "id_sha256, token_id, name, role, csrf, created_at, last_seen"
_CREATE = (
    "CREATE TABLE IF NOT EXISTS {table} (id_sha256 TEXT PRIMARY KEY, token_id TEXT NOT NULL, "
    "name TEXT NOT NULL, role TEXT NOT NULL, csrf TEXT NOT NULL, created_at TEXT NOT NULL, "
    "last_seen TEXT NOT NULL)"
)


def session_hash(session_id: str) -> str:
    """The SHA-256 (hex) under which the session ``session_id`` is stored."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ConsoleSession:
    """One signed-in console user: the token it stands for and its CSRF token."""

    token_id: UUID
    name: str
    role: str
    csrf: str
    created_at: dt.datetime
    last_seen: dt.datetime


class SessionStore(Closeable, ABC):
    """Sessions by the hash of their id."""

    @abstractmethod
    def put(self, session_id: str, session: ConsoleSession) -> None:
        """Store ``session`` under ``session_id``'s hash."""

    @abstractmethod
    def get(self, session_id: str) -> ConsoleSession | None:
        """The session ``session_id`` names, if stored."""

    @abstractmethod
    def touch(self, session_id: str, moment: dt.datetime) -> None:
        """Record that the session was used at ``moment``."""

    @abstractmethod
    def delete(self, session_id: str) -> None:
        """End the session (nothing happens if there is none)."""


def open_session_store(settings: Settings) -> SessionStore:
    """The session store of ``settings``' deployment (its table made if missing)."""
    if settings.database_url is not None:
        return _PostgresSessions(settings.database_url, settings.database_schema or "public")
    settings.prepare_data_dir()
    return _SQLiteSessions(settings)


def _params(session_id: str, session: ConsoleSession) -> tuple[str, ...]:
    return (
        session_hash(session_id),
        str(session.token_id),
        session.name,
        session.role,
        session.csrf,
        session.created_at.isoformat(),
        session.last_seen.isoformat(),
    )


def _session(row: tuple[object, ...]) -> ConsoleSession:
    _, token_id, name, role, csrf, created_at, last_seen = (str(value) for value in row)
    return ConsoleSession(
        UUID(token_id),
        name,
        role,
        csrf,
        dt.datetime.fromisoformat(created_at),
        dt.datetime.fromisoformat(last_seen),
    )


class _SQLiteSessions(SessionStore):
    def __init__(self, settings: Settings) -> None:
        path = settings.data_dir / SESSIONS_FILE
        prepare_sqlite_file(path)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(
            path, timeout=30, check_same_thread=False, isolation_level=None
        )
        self._connection.execute(_CREATE.format(table=TABLE))

    def _run(self, statement: str, params: tuple[str, ...]) -> tuple[object, ...] | None:
        with self._lock:
            row: tuple[object, ...] | None = self._connection.execute(statement, params).fetchone()
        return row

    def put(self, session_id: str, session: ConsoleSession) -> None:
        self._run(
            f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            _params(session_id, session),
        )

    def get(self, session_id: str) -> ConsoleSession | None:
        row = self._run(
            f"SELECT {_COLUMNS} FROM {TABLE} WHERE id_sha256 = ?",  # noqa: S608
            (session_hash(session_id),),
        )
        return None if row is None else _session(row)

    def touch(self, session_id: str, moment: dt.datetime) -> None:
        self._run(
            f"UPDATE {TABLE} SET last_seen = ? WHERE id_sha256 = ?",  # noqa: S608
            (moment.isoformat(), session_hash(session_id)),
        )

    def delete(self, session_id: str) -> None:
        self._run(f"DELETE FROM {TABLE} WHERE id_sha256 = ?", (session_hash(session_id),))  # noqa: S608

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class _PostgresSessions(SessionStore):
    def __init__(self, url: str, schema: str) -> None:
        self._url = url
        self._table = sql.Identifier(schema, TABLE)
        self._lock = threading.Lock()
        self._connection = psycopg.connect(url, autocommit=True)
        # Processes starting together may both create it; the loser finds it made.
        with contextlib.suppress(errors.UniqueViolation, errors.DuplicateTable):
            self._connection.execute(self._sql(_CREATE.format(table="{table}")))

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(table=self._table)

    def _run(self, statement: str, params: tuple[str, ...]) -> tuple[object, ...] | None:
        with self._lock:
            if self._connection.broken:  # the server restarted: connect again
                self._connection = psycopg.connect(self._url, autocommit=True)
            cursor = self._connection.execute(self._sql(statement), params)
            return cursor.fetchone() if cursor.description else None

    def put(self, session_id: str, session: ConsoleSession) -> None:
        self._run(
            "INSERT INTO {table} (" + _COLUMNS + ") VALUES (%s, %s, %s, %s, %s, %s, %s)",  # noqa: S608
            _params(session_id, session),
        )

    def get(self, session_id: str) -> ConsoleSession | None:
        row = self._run(
            "SELECT " + _COLUMNS + " FROM {table} WHERE id_sha256 = %s",  # noqa: S608
            (session_hash(session_id),),
        )
        return None if row is None else _session(row)

    def touch(self, session_id: str, moment: dt.datetime) -> None:
        self._run(
            "UPDATE {table} SET last_seen = %s WHERE id_sha256 = %s",
            (moment.isoformat(), session_hash(session_id)),
        )

    def delete(self, session_id: str) -> None:
        self._run("DELETE FROM {table} WHERE id_sha256 = %s", (session_hash(session_id),))

    def close(self) -> None:
        with self._lock:
            self._connection.close()
