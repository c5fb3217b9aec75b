"""Where each part of a backup lives: the table, file and columns per backend."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from domain.adapters.settings import EVENTS_FILE, Settings
from domain.application.service import PrivateCA
from domain.audit.chain import CHAIN_TABLE, CHECKPOINTS_TABLE
from projections.backup.archive import AUDIT_CHAIN, AUDIT_CHECKPOINTS, CRLS, EVENTS, KEYS, SNAPSHOTS
from projections.revocation.crlstore import CRLS_FILE

SQLITE_ALIASES = {EVENTS_FILE: "events", CRLS_FILE: "crlstore"}
PG_EVENTS = f"{PrivateCA.name}_events"  # eventsourcing names the tables after the app
_PG_UTC_TEXT = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"


@dataclass(frozen=True)
class Table:
    """Where one part lives in one backend."""

    file: str  # SQLite: the file in the data directory; PostgreSQL: unused
    name: str
    columns: tuple[str, ...]  # in the part's order
    select: dict[str, str] = field(default_factory=dict)  # PostgreSQL: column -> expression


_EVENT_COLUMNS = ("originator_id", "originator_version", "topic", "state")
_CHAIN_COLUMNS = ("position", "previous", "link", "recorded_at")
_CHECKPOINT_COLUMNS = ("position", "head", "time", "key_id", "public_key", "signature")
# As domain.adapters.keytable creates them, in the event store's database.
_KEY_COLUMNS = ("key_id", "master_key_id", "blob", "created_at")
_CRL_COLUMNS = ("issuer_id", "kind", "number", "der", "sha256", "this_update", "next_update")

SQLITE_TABLES = {
    EVENTS: Table(EVENTS_FILE, "stored_events", ("rowid", *_EVENT_COLUMNS)),
    SNAPSHOTS: Table(EVENTS_FILE, "stored_snapshots", _EVENT_COLUMNS),
    AUDIT_CHAIN: Table(EVENTS_FILE, CHAIN_TABLE, _CHAIN_COLUMNS),
    AUDIT_CHECKPOINTS: Table(EVENTS_FILE, CHECKPOINTS_TABLE, _CHECKPOINT_COLUMNS),
    KEYS: Table(EVENTS_FILE, "pca_keys", _KEY_COLUMNS),
    CRLS: Table(CRLS_FILE, "pca_crls", _CRL_COLUMNS),
}
POSTGRES_TABLES = {
    EVENTS: Table("", PG_EVENTS, ("notification_id", *_EVENT_COLUMNS)),
    SNAPSHOTS: Table("", f"{PrivateCA.name}_snapshots", _EVENT_COLUMNS),
    AUDIT_CHAIN: Table("", CHAIN_TABLE, _CHAIN_COLUMNS),
    AUDIT_CHECKPOINTS: Table("", CHECKPOINTS_TABLE, _CHECKPOINT_COLUMNS),
    KEYS: Table("", "pca_keys", _KEY_COLUMNS, {"created_at": _PG_UTC_TEXT}),
    CRLS: Table("", "pca_crls", _CRL_COLUMNS),
}


def sqlite_has_table(connection: sqlite3.Connection, alias: str, name: str) -> bool:
    """Whether the database attached as ``alias`` has the table ``name``."""
    query = f"SELECT count(*) FROM {alias}.sqlite_master WHERE type = 'table' AND name = ?"  # noqa: S608
    return bool(connection.execute(query, (name,)).fetchone()[0])


def pg_has_table(connection: psycopg.Connection[Any], schema: str, name: str) -> bool:
    """Whether ``schema`` has the table ``name``."""
    qualified = sql.Identifier(schema, name).as_string(connection)
    row = connection.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified,)).fetchone()
    return bool(row and row[0])


def schema_of(settings: Settings) -> str:
    """The PostgreSQL schema the stores of ``settings`` live in."""
    return settings.database_schema or "public"
