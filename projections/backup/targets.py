"""Writing a backup into empty stores: every part in one transaction per backend."""

from __future__ import annotations

import contextlib
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg import sql

from domain.adapters.settings import Settings
from domain.model.errors import ConflictError
from projections.backup.archive import PARTS, ArchiveReader, Row
from projections.backup.tables import (
    PG_EVENTS,
    POSTGRES_TABLES,
    SQLITE_ALIASES,
    SQLITE_TABLES,
    Table,
    pg_has_table,
    schema_of,
    sqlite_has_table,
)


class BackupTargetNotEmptyError(ConflictError):
    """Raised when a restore's target already holds events, keys or CRLs."""


class Target(ABC):
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


def target_for(settings: Settings) -> Target:
    """The stores of ``settings`` as a restore target."""
    if settings.database_url is None:
        return _SQLiteTarget(settings.data_dir)
    return _PostgresTarget(settings.database_url, schema_of(settings))


class _SQLiteTarget(Target):
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
        for name, alias in SQLITE_ALIASES.items():
            if (self._data_dir / name).exists():
                connection.execute(f"ATTACH DATABASE ? AS {alias}", (str(self._data_dir / name),))
        return connection

    def _holding(self, connection: sqlite3.Connection) -> list[str]:
        attached = {row[1] for row in connection.execute("PRAGMA database_list")}
        held = []
        for table in SQLITE_TABLES.values():
            alias = SQLITE_ALIASES[table.file]
            if alias in attached and sqlite_has_table(connection, alias, table.name):
                query = f"SELECT EXISTS (SELECT 1 FROM {alias}.{table.name})"  # noqa: S608
                if connection.execute(query).fetchone()[0]:
                    held.append(f"{table.file}:{table.name}")
        return held


def _sqlite_insert(table: Table) -> str:
    alias = SQLITE_ALIASES[table.file]
    marks = ", ".join("?" * len(table.columns))
    return f"INSERT INTO {alias}.{table.name} ({', '.join(table.columns)}) VALUES ({marks})"  # noqa: S608


def _sqlite_values(row: Row) -> Row:
    """eventsourcing's SQLite recorder keeps UUIDs as 32 hex digits."""
    return tuple(value.hex if isinstance(value, UUID) else value for value in row)


class _PostgresTarget(Target):
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
            events = sql.Identifier(self._schema, PG_EVENTS)
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
            if pg_has_table(connection, self._schema, table.name):
                query = sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(
                    sql.Identifier(self._schema, table.name)
                )
                row = connection.execute(query).fetchone()
                if row and row[0]:
                    held.append(f"{self._schema}.{table.name}")
        return held
