"""The chained application recorders: eventsourcing's SQLite and PostgreSQL application
recorders, each writing one audit-chain link per stored event in the event's transaction.
The chain's format, canonical bytes and threat model are in :mod:`domain.audit.chain`.

Ordering and concurrency
------------------------
The previous link is read only once the writer holds the log's write lock, so two writers
never chain from the same head. SQLite: eventsourcing opens a deferred transaction and the
first statement is an insert (the keys, else the events), which takes the RESERVED lock
and a fresh snapshot; the head is read after it. PostgreSQL: eventsourcing takes an
EXCLUSIVE lock on the events table before inserting; after the insert one statement reads
the head and stores the new links, computed by PostgreSQL's ``sha256`` from canonical bytes
the client sends, so under that lock and without another round trip. PostgreSQL
notification ids come from a sequence, so rolled-back saves leave gaps: positions need not
be contiguous, only the chain rows and the events must name the same positions. If the
chain cannot be written, the events are not committed either. Each link also gets the
commit stamp (:data:`domain.audit.chain` "Commit stamps"), read from the head under the
same lock.

Keys with their events
----------------------
A save may carry sealed private keys (``sealed_keys=``, :mod:`domain.adapters.keytable`):
both recorders insert them first in the events' transaction, into the key table the key
store keeps in the same database, so keys and events commit (one fsync) or roll back
together and no stored event names a missing key.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from eventsourcing.persistence import IntegrityError, Notification, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore
from eventsourcing.utils import get_topic
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier, Literal

from domain.adapters.keystore import SealedKey
from domain.adapters.keytable import (
    SQLITE_INSERT_KEYS,
    key_rows,
    pg_insert_keys,
)
from domain.adapters.log_head import LogHead, connector
from domain.application.ports import SAVE_KEYS_ARGUMENT
from domain.audit.chain import (
    CHAIN_TABLE,
    CHECKPOINTS_TABLE,
    GENESIS,
    LINK_BYTES,
    AuditChainError,
    ChainLink,
    ChainStore,
    StoredCheckpoint,
    event_canonical_bytes,
    extend_chain,
)

__all__ = [
    "POSTGRES_RECORDER_TOPIC",
    "SQLITE_RECORDER_TOPIC",
    "PostgresChainedRecorder",
    "SQLiteChainedRecorder",
]

logger = logging.getLogger(__name__)

_BACKFILL_BATCH = 1000

# ---------------------------------------------------------------------------
# SQLite
# ---------------------------------------------------------------------------

_SQLITE_DDL = (
    "CREATE TABLE IF NOT EXISTS pca_audit_chain ("
    " position INTEGER PRIMARY KEY,"
    " previous INTEGER NOT NULL,"
    " link BLOB NOT NULL CHECK (length(link) = 32),"
    " recorded_at INTEGER)",
    "CREATE TABLE IF NOT EXISTS pca_audit_checkpoints ("
    " position INTEGER PRIMARY KEY,"
    " head BLOB NOT NULL,"
    " time TEXT NOT NULL,"
    " key_id TEXT NOT NULL,"
    " public_key BLOB NOT NULL,"
    " signature BLOB NOT NULL)",
)
_SQLITE_STAMP_COLUMN = "ALTER TABLE pca_audit_chain ADD COLUMN recorded_at INTEGER"
_SQLITE_STAMP_INDEX = (
    "CREATE INDEX IF NOT EXISTS pca_audit_chain_recorded_at ON pca_audit_chain (recorded_at)"
)
_SQLITE_COLUMNS = "SELECT name FROM pragma_table_info('pca_audit_chain')"
_SQLITE_HEAD = (
    "SELECT position, previous, link, recorded_at FROM pca_audit_chain"
    " ORDER BY position DESC LIMIT 1"
)
_SQLITE_LINKS = (
    "SELECT position, previous, link, recorded_at FROM pca_audit_chain WHERE position > ?"
    " ORDER BY position LIMIT ?"
)
_SQLITE_UNSTAMPED = (
    "SELECT position FROM pca_audit_chain WHERE recorded_at IS NULL AND position > ?"
    " ORDER BY position LIMIT ?"
)
_SQLITE_STAMP = (
    "UPDATE pca_audit_chain SET recorded_at = ? WHERE position = ? AND recorded_at IS NULL"
)
_SQLITE_LAST_POSITION = (
    "SELECT max(coalesce((SELECT max(rowid) FROM {events}), 0),"
    " coalesce((SELECT max(position) FROM pca_audit_chain), 0))"
)
_SQLITE_CHAIN_IS_EMPTY = "SELECT NOT EXISTS (SELECT 1 FROM pca_audit_chain)"
_SQLITE_INSERT_LINK = (
    "INSERT INTO pca_audit_chain (position, previous, link, recorded_at) VALUES (?, ?, ?, ?)"
)
_SQLITE_INSERT_CHECKPOINT = (
    "INSERT INTO pca_audit_checkpoints (position, head, time, key_id, public_key, signature)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (position) DO NOTHING"
)
_SQLITE_CHECKPOINTS = (
    "SELECT position, head, time, key_id, public_key, signature FROM pca_audit_checkpoints"
    " ORDER BY position"
)
_SQLITE_LATEST_CHECKPOINT = (
    "SELECT position, head, time, key_id, public_key, signature FROM pca_audit_checkpoints"
    " ORDER BY position DESC LIMIT 1"
)


class SQLiteChainedRecorder(SQLiteApplicationRecorder, ChainStore):
    """eventsourcing's SQLite application recorder, plus one chain link per event."""

    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name)
        table = self.events_table_name  # eventsourcing's own name, not input
        self._select_unchained = (
            "SELECT rowid, originator_id, originator_version, topic, state"  # noqa: S608
            f" FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?"
        )
        self._select_last_position = _SQLITE_LAST_POSITION.format(events=table)

    def construct_create_table_statements(self) -> list[str]:
        # The chain's DDL goes first: when it creates a table, the transaction's first
        # statement is a write, which waits for the lock instead of failing on a stale read.
        return [*_SQLITE_DDL, *super().construct_create_table_statements()]

    def _create_table(self, c: SQLiteCursor) -> None:
        super()._create_table(c)
        c.execute(_SQLITE_COLUMNS)
        if "recorded_at" not in {row[0] for row in c.fetchall()}:
            c.execute(_SQLITE_STAMP_COLUMN)  # a chain from before the commit stamps
        c.execute(_SQLITE_STAMP_INDEX)
        c.execute(_SQLITE_CHAIN_IS_EMPTY)
        if c.fetchone()[0]:
            _bind_unchained_events(
                lambda after: self._unchained_batch(c, after),
                lambda events: self._append(c, events),
            )

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        sealed: Sequence[SealedKey] = kwargs.get(SAVE_KEYS_ARGUMENT, ())
        if sealed:
            c.executemany(SQLITE_INSERT_KEYS, key_rows(sealed))
        positions = super()._insert_events(c, stored_events, **kwargs)
        if positions:
            # The inserts above took the write lock, so the head read next is the latest.
            self._append(c, list(zip(positions, stored_events, strict=True)))
        return positions

    def select_events_after(self, position: int, limit: int) -> Sequence[Notification]:
        return self.select_notifications(position, limit, inclusive_of_start=False)

    def select_links_after(self, position: int, limit: int) -> Sequence[ChainLink]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(_SQLITE_LINKS, (position, limit))
            return [_sqlite_row(row) for row in c.fetchall()]

    def select_head(self) -> ChainLink | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(_SQLITE_HEAD)
            return _sqlite_link(c.fetchone())

    def select_unstamped(self, position: int, limit: int) -> Sequence[int]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(_SQLITE_UNSTAMPED, (position, limit))
            return [int(row[0]) for row in c.fetchall()]

    def stamp_links(self, stamps: Sequence[tuple[int, int]]) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.executemany(_SQLITE_STAMP, [(stamp, position) for position, stamp in stamps])

    def select_last_position(self) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute(self._select_last_position)
            return int(c.fetchone()[0])

    def insert_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        with self.datastore.transaction(commit=True) as c:
            c.execute(_SQLITE_INSERT_CHECKPOINT, tuple(checkpoint))
            c.execute("SELECT changes()")
            return bool(c.fetchone()[0])

    def select_checkpoints(self) -> Sequence[StoredCheckpoint]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(_SQLITE_CHECKPOINTS)
            return [_checkpoint(tuple(row)) for row in c.fetchall()]

    def select_latest_checkpoint(self) -> StoredCheckpoint | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(_SQLITE_LATEST_CHECKPOINT)
            row = c.fetchone()
            return None if row is None else _checkpoint(tuple(row))

    def _append(self, c: SQLiteCursor, events: Sequence[tuple[int, StoredEvent]]) -> None:
        """Insert the links of ``events`` after the stored head; the caller holds the lock."""
        c.execute(_SQLITE_HEAD)
        head = _sqlite_link(c.fetchone())
        stamp = commit_stamp(head)
        rows = [(*row[:3], stamp) for row in extend_chain(head, events)]
        c.executemany(_SQLITE_INSERT_LINK, rows)

    def _unchained_batch(self, c: SQLiteCursor, after: int) -> list[tuple[int, StoredEvent]]:
        c.execute(self._select_unchained, (after, _BACKFILL_BATCH))
        return [
            (
                row[0],
                StoredEvent(self.convert_originator_id(row[1]), row[2], row[3], bytes(row[4])),
            )
            for row in c.fetchall()
        ]


def commit_stamp(head: ChainLink | None) -> int:
    """The commit stamp for links after ``head``: now in microseconds since the epoch, or
    the head's stamp if the clock reads earlier (it was stepped back)."""
    now = time.time_ns() // 1000
    return now if head is None or head.recorded_at is None else max(now, head.recorded_at)


def _sqlite_link(row: Any) -> ChainLink | None:
    return None if row is None else _sqlite_row(row)


def _sqlite_row(row: Any) -> ChainLink:
    return ChainLink(row[0], row[1], bytes(row[2]), row[3])


def _checkpoint(row: tuple[Any, ...]) -> StoredCheckpoint:
    position, head, time, key_id, public_key, signature = row
    return StoredCheckpoint(
        int(position), bytes(head), str(time), str(key_id), bytes(public_key), bytes(signature)
    )


def _bind_unchained_events(
    fetch_after: Callable[[int], list[tuple[int, StoredEvent]]],
    append: Callable[[list[tuple[int, StoredEvent]]], None],
) -> None:
    """Chain every event from the start of the log; the caller saw the chain empty."""
    position = count = 0
    while batch := fetch_after(position):
        append(batch)
        position = batch[-1][0]
        count += len(batch)
    if count:
        logger.warning("audit chain created: bound %d events recorded before it existed", count)


# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

# Links are computed by PostgreSQL in the statement that stores them (no round trip while the
# events table is locked): ``canonicals`` come from the client, the head is the highest link
# below the new positions, and each link is sha256(previous link || canonical bytes).
_PG_APPEND = """
WITH RECURSIVE
    new AS (
        SELECT position, canonical, n
        FROM unnest(%(positions)s::bigint[], %(canonicals)s::bytea[])
            WITH ORDINALITY AS t (position, canonical, n)
    ),
    head AS (
        SELECT position, link, recorded_at FROM {schema}.{chain}
        WHERE position < (SELECT min(position) FROM new)
        ORDER BY position DESC LIMIT 1
    ),
    stamp AS (
        SELECT greatest(
            (extract(epoch FROM clock_timestamp()) * 1000000)::bigint,
            (SELECT recorded_at FROM head)
        ) AS recorded_at
    ),
    chained (n, position, previous, link) AS (
        SELECT 0::bigint, coalesce((SELECT position FROM head), 0), 0::bigint,
            coalesce((SELECT link FROM head), %(genesis)s::bytea)
        UNION ALL
        SELECT new.n, new.position, chained.position, sha256(chained.link || new.canonical)
        FROM chained JOIN new ON new.n = chained.n + 1
    )
INSERT INTO {schema}.{chain} (position, previous, link, recorded_at)
SELECT position, previous, link, (SELECT recorded_at FROM stamp) FROM chained WHERE n > 0
"""


class PostgresChainedRecorder(PostgresApplicationRecorder, ChainStore):
    """eventsourcing's PostgreSQL application recorder, plus one chain link per event.

    Needs PostgreSQL 11 or later (``sha256``).
    """

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        if datastore.enable_db_functions:
            raise AuditChainError(
                "the audit chain needs eventsourcing's client-side inserts; unset"
                " ENABLE_DB_FUNCTIONS for the event store"
            )
        super().__init__(datastore, events_table_name=events_table_name)
        self._head = LogHead(
            connector(datastore.pool, datastore.schema),
            self.max_notification_id_statement,
            super().max_notification_id,
        )
        schema = Identifier(datastore.schema)
        chain, checkpoints = Identifier(CHAIN_TABLE), Identifier(CHECKPOINTS_TABLE)
        events = Identifier(self.events_table_name)
        # One process at a time creates the chain (taking locks on the events table in the
        # same order everywhere); the table lock then keeps writers out while it binds events.
        self._serialise_ddl = SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(
            Literal(f"{datastore.schema}.{CHAIN_TABLE}")
        )
        self._ddl = (
            SQL("LOCK TABLE {}.{} IN EXCLUSIVE MODE").format(schema, events),
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (position bigint PRIMARY KEY,"
                " previous bigint NOT NULL,"
                " link bytea NOT NULL CHECK (octet_length(link) = {}))"
            ).format(schema, chain, LINK_BYTES),
            # A chain from before the commit stamps gains the column (rows stay NULL).
            SQL("ALTER TABLE {}.{} ADD COLUMN IF NOT EXISTS recorded_at bigint").format(
                schema, chain
            ),
            SQL("CREATE INDEX IF NOT EXISTS {} ON {}.{} (recorded_at)").format(
                Identifier(f"{CHAIN_TABLE}_recorded_at"), schema, chain
            ),
            SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (position bigint PRIMARY KEY,"
                " head bytea NOT NULL, time text NOT NULL, key_id text NOT NULL,"
                " public_key bytea NOT NULL, signature bytea NOT NULL)"
            ).format(schema, checkpoints),
        )
        self._append_links = SQL(_PG_APPEND).format(schema=schema, chain=chain)
        self._insert_keys = pg_insert_keys(datastore.schema)
        self._select_head = SQL(
            "SELECT position, previous, link, recorded_at FROM {}.{} ORDER BY position DESC LIMIT 1"
        ).format(schema, chain)
        self._select_links = SQL(
            "SELECT position, previous, link, recorded_at FROM {}.{} WHERE position > %s"
            " ORDER BY position LIMIT %s"
        ).format(schema, chain)
        self._select_unstamped = SQL(
            "SELECT position FROM {}.{} WHERE recorded_at IS NULL AND position > %s"
            " ORDER BY position LIMIT %s"
        ).format(schema, chain)
        self._stamp = SQL(
            "UPDATE {}.{} SET recorded_at = %s WHERE position = %s AND recorded_at IS NULL"
        ).format(schema, chain)
        self._select_last_position = SQL(
            "SELECT greatest((SELECT max(notification_id) FROM {}.{}),"
            " (SELECT max(position) FROM {}.{}), 0) AS last"
        ).format(schema, events, schema, chain)
        self._chain_is_empty = SQL("SELECT NOT EXISTS (SELECT 1 FROM {}.{}) AS empty").format(
            schema, chain
        )
        self._select_unchained = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state"
            " FROM {}.{} WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
        ).format(schema, events)
        self._select_recorded = SQL(
            "SELECT notification_id, topic, state FROM {}.{}"
            " WHERE originator_id = %s AND originator_version = %s"
        ).format(schema, events)
        self._insert_checkpoint = SQL(
            "INSERT INTO {}.{} (position, head, time, key_id, public_key, signature)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (position) DO NOTHING"
        ).format(schema, checkpoints)
        self._select_checkpoints = SQL(
            "SELECT position, head, time, key_id, public_key, signature FROM {}.{}"
            " ORDER BY position"
        ).format(schema, checkpoints)
        self._select_latest_checkpoint = SQL(
            "SELECT position, head, time, key_id, public_key, signature FROM {}.{}"
            " ORDER BY position DESC LIMIT 1"
        ).format(schema, checkpoints)

    def max_notification_id(self) -> int | None:
        """The log's head, on a connection kept for it (:mod:`domain.adapters.log_head`)."""
        return self._head.read()

    def close(self) -> None:
        """Close the head's connection (the service's ``close``)."""
        self._head.close()

    def _create_table(self, curs: Cursor[DictRow]) -> None:
        curs.execute(self._serialise_ddl)
        super()._create_table(curs)
        for statement in self._ddl:
            curs.execute(statement)
        curs.execute(self._chain_is_empty)
        row = curs.fetchone()
        if row is not None and row["empty"]:
            _bind_unchained_events(
                lambda after: self._unchained_batch(curs, after),
                lambda events: self._append(curs, events),
            )

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """eventsourcing's insert, which tries again when the connection fails; a conflict
        with exactly these events is this save's own commit, whose reply was lost."""
        try:
            inserted: Sequence[int] | None = super().insert_events(stored_events, **kwargs)
        except IntegrityError:
            positions = self._positions_if_recorded(stored_events)
            if positions is None:
                raise
            logger.warning(
                "a save whose commit reply was lost is in the store (positions %s); not a conflict",
                positions,
            )
            return positions
        return inserted

    def _positions_if_recorded(self, stored_events: Sequence[StoredEvent]) -> list[int] | None:
        """The positions of ``stored_events`` if the store holds each of them, byte for
        byte; None if any is missing or differs (another writer's event: a conflict)."""
        positions = []
        with self.datastore.transaction(commit=False) as curs:
            for event in stored_events:
                curs.execute(self._select_recorded, (event.originator_id, event.originator_version))
                row = curs.fetchone()
                if row is None or (row["topic"], bytes(row["state"])) != (event.topic, event.state):
                    return None
                positions.append(int(row["notification_id"]))
        return positions

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        # eventsourcing's hook that runs first in the save's transaction, pipelined.
        sealed: Sequence[SealedKey] = kwargs.get(SAVE_KEYS_ARGUMENT, ())
        if sealed:
            curs.executemany(self._insert_keys, key_rows(sealed))
        super()._insert_events(curs, stored_events, **kwargs)

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        positions = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        try:
            if positions is None:
                raise AuditChainError("the event store returned no positions for the events")
            # Still inside the transaction that holds the events table's EXCLUSIVE lock.
            self._append(curs, list(zip(positions, stored_events, strict=True)))
        except BaseException:
            # eventsourcing commits unless the transaction failed in the database: make it
            # fail, so that no event is ever committed without its link.
            _abort_transaction(curs)
            raise
        return positions

    def select_events_after(self, position: int, limit: int) -> Sequence[Notification]:
        events: Sequence[Notification] = self.select_notifications(
            position, limit, inclusive_of_start=False
        )
        return events

    def select_links_after(self, position: int, limit: int) -> Sequence[ChainLink]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._select_links, (position, limit))
            return [ChainLink(*_pg_values(row)) for row in curs]

    def select_head(self) -> ChainLink | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._select_head)
            row = curs.fetchone()
            return None if row is None else ChainLink(*_pg_values(row))

    def select_unstamped(self, position: int, limit: int) -> Sequence[int]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._select_unstamped, (position, limit))
            return [int(row["position"]) for row in curs]

    def stamp_links(self, stamps: Sequence[tuple[int, int]]) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.executemany(self._stamp, [(stamp, position) for position, stamp in stamps])

    def select_last_position(self) -> int:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._select_last_position)
            row = curs.fetchone()
            return 0 if row is None else int(row["last"])

    def insert_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self._insert_checkpoint, tuple(checkpoint))
            return curs.rowcount > 0

    def select_checkpoints(self) -> Sequence[StoredCheckpoint]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._select_checkpoints)
            return [_checkpoint(_pg_values(row)) for row in curs]

    def select_latest_checkpoint(self) -> StoredCheckpoint | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._select_latest_checkpoint)
            row = curs.fetchone()
            return None if row is None else _checkpoint(_pg_values(row))

    def _append(self, curs: Cursor[DictRow], events: Sequence[tuple[int, StoredEvent]]) -> None:
        """Insert the links of ``events`` after the stored head; the caller holds the lock."""
        params = {
            "positions": [position for position, _ in events],
            "canonicals": [event_canonical_bytes(p, e) for p, e in events],
            "genesis": GENESIS,
        }
        curs.execute(self._append_links, params, prepare=True)

    def _unchained_batch(self, curs: Cursor[DictRow], after: int) -> list[tuple[int, StoredEvent]]:
        curs.execute(self._select_unchained, (after, _BACKFILL_BATCH))
        return [
            (
                row["notification_id"],
                StoredEvent(
                    row["originator_id"],
                    row["originator_version"],
                    row["topic"],
                    bytes(row["state"]),
                ),
            )
            for row in curs.fetchall()
        ]


def _pg_values(row: DictRow) -> tuple[Any, ...]:
    """A row's values in column order, bytea as bytes."""
    return tuple(bytes(v) if isinstance(v, memoryview) else v for v in row.values())


def _abort_transaction(curs: Cursor[DictRow]) -> None:
    """Put the transaction in the failed state, so that its COMMIT rolls back."""
    with contextlib.suppress(psycopg.Error), curs.connection.pipeline() as pipeline:
        curs.execute("DO $$BEGIN RAISE EXCEPTION 'audit chain append failed'; END$$")
        pipeline.sync()


SQLITE_RECORDER_TOPIC = get_topic(SQLiteChainedRecorder)
POSTGRES_RECORDER_TOPIC = get_topic(PostgresChainedRecorder)
