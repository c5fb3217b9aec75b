"""Reading a live deployment for a backup, consistently while the service runs.

SQLite: one online-backup copy per file, in the order CRLs, events (with the key store's
table; see :mod:`projections.backup.operations`), read from a private staging directory.
PostgreSQL: every table read in one REPEATABLE READ transaction.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from domain.adapters.settings import EVENTS_FILE, KEYS_FILE, Settings
from domain.model.errors import ConflictError, NotFoundError
from projections.backup.archive import Part, Row
from projections.backup.tables import (
    PG_EVENTS,
    POSTGRES_TABLES,
    SQLITE_TABLES,
    Table,
    pg_has_table,
    schema_of,
    sqlite_has_table,
)
from projections.revocation.crlstore import CRLS_FILE

RowSource = Callable[[Part], Iterator[Row]]

# Files in the order a SQLite backup copies them (see the module docstring).
_SQLITE_COPY_ORDER = (CRLS_FILE, EVENTS_FILE)


@contextlib.contextmanager
def open_source(settings: Settings, staging: Path) -> Iterator[RowSource]:
    """The rows of every part of ``settings``' stores, as of one consistent moment;
    SQLite copies are made in ``staging``."""
    if settings.database_url is None:
        with _sqlite_source(settings.data_dir, staging) as source:
            yield source
    else:
        with _postgres_source(settings.database_url, schema_of(settings)) as source:
            yield source


@contextlib.contextmanager
def _sqlite_source(data_dir: Path, staging: Path) -> Iterator[RowSource]:
    """Online-backup copies of the live files, made in dependency order, to read from."""
    if not (data_dir / EVENTS_FILE).exists():
        raise NotFoundError(
            f"there is no {data_dir / EVENTS_FILE}: nothing to back up; point PCA_DATA_DIR"
            " at the service's data directory",
            field="PCA_DATA_DIR",
        )
    if (data_dir / KEYS_FILE).exists():
        raise ConflictError(
            f"{data_dir / KEYS_FILE} is an older release's key store, not yet moved into"
            f" {EVENTS_FILE}: start the service once (`pca serve`), which moves it, then"
            " back up again",
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
    if connection is None or not sqlite_has_table(connection, "main", table.name):
        return
    held = {"rowid", *(row[1] for row in connection.execute(f"PRAGMA table_info({table.name})"))}
    # Names are constants of this module, not input; a column an older release did not
    # create yet (the chain's commit stamp) reads as null.
    columns = ", ".join(c if c in held else "NULL" for c in table.columns)
    yield from connection.execute(f"SELECT {columns} FROM {table.name} ORDER BY 1, 2")  # noqa: S608


@contextlib.contextmanager
def _postgres_source(url: str, schema: str) -> Iterator[RowSource]:
    """Every table as of one snapshot: a read-only REPEATABLE READ transaction."""
    with psycopg.connect(url) as connection:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
        with connection.transaction():
            if not pg_has_table(connection, schema, PG_EVENTS):
                raise NotFoundError(
                    f"there is no {schema}.{PG_EVENTS} table: nothing to back up; check"
                    " PCA_DATABASE_URL and PCA_DATABASE_SCHEMA",
                    field="PCA_DATABASE_SCHEMA",
                )
            yield lambda part: _postgres_rows(connection, schema, part)


def _pg_columns(connection: psycopg.Connection[Any], schema: str, name: str) -> set[str]:
    """The columns ``name`` has: one an older release did not create reads as null."""
    query = (
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name = %s"
    )
    return {row[0] for row in connection.execute(query, (schema, name))}


def _postgres_rows(connection: psycopg.Connection[Any], schema: str, part: Part) -> Iterator[Row]:
    table = POSTGRES_TABLES[part]
    if not pg_has_table(connection, schema, table.name):
        return
    held = _pg_columns(connection, schema, table.name)
    columns = sql.SQL(", ").join(
        sql.SQL(table.select[c])
        if c in table.select
        else sql.Identifier(c)
        if c in held
        else sql.SQL("NULL")
        for c in table.columns
    )
    query = sql.SQL("SELECT {} FROM {} ORDER BY 1, 2").format(
        columns, sql.Identifier(schema, table.name)
    )
    with connection.cursor(name=f"pca_backup_{part.name}") as cursor:
        cursor.itersize = 2000
        yield from cursor.execute(query)
