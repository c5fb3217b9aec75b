"""The key store's table, ``pca_keys``, as both its writers see it.

Sealed private keys live in the event store's own database (the SQLite ``events.db``, or
the PostgreSQL schema of the events), so that a group of issuances stores its keys and its
events in one transaction, with one commit (one fsync). Two writers share the table: the
key store (:mod:`domain.adapters.keystore_backends`: lone keys, reads, destroys, rewraps)
and the chained recorders (:mod:`domain.adapters.recorders`: the keys that a save
carries). Both take the statements from here.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from domain.adapters.keystore import SealedKey

__all__ = [
    "KEYS_TABLE",
    "SQLITE_INSERT_KEYS",
    "SQLITE_KEYS_DDL",
    "key_rows",
    "pg_insert_keys",
]

KEYS_TABLE = "pca_keys"

SQLITE_KEYS_DDL = """
CREATE TABLE IF NOT EXISTS pca_keys (
    key_id TEXT PRIMARY KEY,
    master_key_id TEXT NOT NULL,
    blob BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)
"""
SQLITE_INSERT_KEYS = "INSERT INTO pca_keys (key_id, master_key_id, blob) VALUES (?, ?, ?)"


def pg_insert_keys(schema: str) -> sql.Composed:
    """The INSERT of sealed keys into ``schema``'s key table."""
    return sql.SQL("INSERT INTO {} (key_id, master_key_id, blob) VALUES (%s, %s, %s)").format(
        sql.Identifier(schema, KEYS_TABLE)
    )


def key_rows(sealed: Sequence[SealedKey]) -> list[tuple[str, str, bytes]]:
    """The parameters of the INSERT for ``sealed``."""
    return [(key.key_id, key.master_key_id, key.blob) for key in sealed]
