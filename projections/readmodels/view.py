"""The read models as eventsourcing materialised views: tracking recorders with our tables.

Every write happens in :meth:`ReadModelView.transaction`, which records the tracking
position first and commits the row changes of the whole batch with it, so a crash leaves
either all of a batch or none of it. SQLite and PostgreSQL share the statements in
:mod:`projections.readmodels.sql` and the writer in :mod:`projections.readmodels.writer`;
the classes below only open transactions and run statements the way their backend wants.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from eventsourcing.persistence import IntegrityError, OperationalError, Tracking, TrackingRecorder
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteCursor, SQLiteTrackingRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from domain.adapters.resources import Closeable
from domain.application.service import PrivateCA
from projections.errors import PositionMovedError
from projections.readmodels.sql import (
    SCHEMA_VERSION,
    SEARCH,
    SQLITE,
    TABLES,
    Statements,
    advisory_key,
    postgres_dialect,
)
from projections.readmodels.writer import DBCursor, ReadModelWriter

LOG_NAME = PrivateCA.name
"""The application whose log the read models follow, as named in tracking records."""


class ReadModelView(TrackingRecorder, Closeable):
    """Read models (CAs, certificates, revocation index) plus how far they have followed."""

    sql: Statements
    _bulk_loading = False

    @abstractmethod
    def transaction(
        self, tracking: Tracking, *, previous: int | None = None
    ) -> AbstractContextManager[ReadModelWriter]:
        """A writer whose changes commit together with ``tracking``, or not at all.

        With ``previous`` given, the transaction first checks that the read models are
        still at that position and raises PositionMovedError if not; without it, a
        tracking position at or before the recorded one raises IntegrityError.
        """

    @abstractmethod
    def fetch(self, statement: str, params: Sequence[Any]) -> Sequence[Any]:
        """Rows of one query from :attr:`sql` (mapping-like, indexed by column name)."""

    @abstractmethod
    def reset(self) -> None:
        """Drop every read-model table, forget the position and create empty tables of
        this release's SCHEMA_VERSION."""

    @abstractmethod
    def analyze(self) -> None:
        """Refresh the query planner's statistics on the read-model tables and compact the
        text index (after a bulk load such as a rebuild, which leaves fresh tables without
        statistics and the index in many pieces)."""

    @abstractmethod
    def close(self) -> None:
        """Close the view's connections."""

    @abstractmethod
    def _run_ddl(self, statements: Sequence[str]) -> None:
        """Run ``statements`` (schema changes) in one transaction."""

    @abstractmethod
    def build_search(self) -> None:
        """Make the text index from the rows there are, unless it exists."""

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        """Write a catch-up from position 0 inside: the secondary indexes and the text index
        are dropped first and built at the end, so each table is written in position order
        instead of a page per row in every index. Queries still answer meanwhile, by scans.
        If the load fails, the next open creates what is missing.
        """
        self._run_ddl(self.sql.drop_indexes)
        self._bulk_loading = True
        try:
            yield
        finally:
            self._bulk_loading = False
        self._run_ddl(self.sql.create_indexes)
        self.build_search()

    def _initialise(self, cursor: DBCursor) -> None:
        """Index fresh tables and record their layout's version: writes, which only a
        reset makes (opening the read models must not race with the runner's writes)."""
        for statement in self.sql.build_search:
            cursor.execute(statement, ())
        cursor.execute(self.sql.insert_schema_version, (SCHEMA_VERSION,))

    def position(self) -> int:
        """The log position of the last event the read models have processed (0: none)."""
        return self.max_tracking_id(LOG_NAME) or 0

    def adopt_schema(self) -> int:
        """Make the tables this release's (SCHEMA_VERSION): if they are another's, or were
        made before versions were recorded, :meth:`reset` them so that a runner projects
        the log again from the start. Returns the position dropped (0: nothing was).

        Only a lease holder may call this (a runner, a catch-up, a rebuild).
        """
        rows = self.fetch(self.sql.select_schema_version, ())
        if [row["version"] for row in rows] == [SCHEMA_VERSION]:
            return 0
        dropped = self.position()
        self.reset()
        return dropped


_CREATE_ATTEMPTS = 5
CHECKPOINT_PAGES = 1000  # SQLite's default: WAL pages between automatic checkpoints
BULK_CHECKPOINT_PAGES = 25_000
"""WAL pages between checkpoints during a bulk load (100 MB of 4 KB pages). Each batch of a
catch-up dirties a page per row of the id index, thousands of pages; checkpointing after
each batch copied them all into the file again, where ten batches share most of them."""


def _check_previous(current: int | None, previous: int | None) -> None:
    if previous is not None and (current or 0) != previous:
        raise PositionMovedError(
            f"The read models are at position {current or 0}, not {previous}: another "
            "runner wrote them; this batch was not applied."
        )


def _create_once(create_table: Callable[[], None]) -> None:
    """Create the tables, tolerating processes that create them at the same moment.

    eventsourcing looks for its tracking table before the creating transaction; when two
    processes both see none, the second fails on the marker row the first wrote. SQLite
    may also refuse a deferred transaction's upgrade to a write at once ("database is
    locked") while another creates the tables. Either way a later attempt finds them.
    """
    for attempt in range(_CREATE_ATTEMPTS):
        try:
            create_table()
        except (IntegrityError, OperationalError):
            if attempt == _CREATE_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
        else:
            return


def _has_search_table(cursor: SQLiteCursor) -> bool:
    cursor.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (SEARCH,))
    return bool(cursor.fetchall())


class SQLiteReadModelView(SQLiteTrackingRecorder, ReadModelView):
    """The read models in their own SQLite file (``readmodels.db``, WAL)."""

    sql = Statements(SQLITE)

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *self.sql.create]

    def create_table(self) -> None:
        _create_once(super().create_table)
        self.build_search()

    def build_search(self) -> None:
        _create_once(self._build_search)

    def _build_search(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            if not _has_search_table(cursor):
                for statement in self.sql.build_search:
                    cursor.execute(statement)

    @contextmanager
    def transaction(
        self, tracking: Tracking, *, previous: int | None = None
    ) -> Iterator[ReadModelWriter]:
        with self.datastore.transaction(commit=True) as cursor:
            # A stale read here makes SQLite refuse the write below (WAL snapshot), so the
            # check cannot race with a second writer.
            _check_previous(self._max_tracking_id(tracking.application_name, cursor), previous)
            self._insert_tracking(cursor, tracking)
            pages = BULK_CHECKPOINT_PAGES if self._bulk_loading else CHECKPOINT_PAGES
            cursor.execute(f"PRAGMA wal_autocheckpoint = {pages}")
            writer = ReadModelWriter(cursor, self.sql, search_table=_has_search_table(cursor))
            yield writer
            writer.flush()

    @contextmanager
    def bulk_load(self) -> Iterator[None]:
        with super().bulk_load():
            yield
        # Give back the space the write-ahead log grew to between the load's checkpoints.
        with self.datastore.get_connection(commit=True) as connection:
            connection.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def fetch(self, statement: str, params: Sequence[Any]) -> Sequence[Any]:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, params)
            rows: Sequence[Any] = cursor.fetchall()
            return rows

    def reset(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            for statement in self.sql.drop:
                cursor.execute(statement)
            cursor.execute("DELETE FROM tracking WHERE application_name = ?", (LOG_NAME,))
            for statement in self.sql.create:
                cursor.execute(statement)
            self._initialise(cursor)

    def _run_ddl(self, statements: Sequence[str]) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            for statement in statements:
                cursor.execute(statement)

    def analyze(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            for table in TABLES:
                cursor.execute(f"ANALYZE {table}")
            if self.sql.optimize_search is not None:
                # A catch-up leaves the text index in many segments, each read by a search:
                # one segment made a search matching most certificates 50x faster at 1M.
                cursor.execute(self.sql.optimize_search)

    def close(self) -> None:
        self.datastore.close()


class PostgresReadModelView(PostgresTrackingRecorder, ReadModelView):
    """The read models as ``rm_*`` tables next to the event store, in the same schema."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.sql = Statements(postgres_dialect(datastore.schema))
        self.sql_create_statements.extend(
            Composed([SQL(statement)]) for statement in self.sql.create
        )
        self._ddl_lock = advisory_key(f"pca-readmodels-ddl:{datastore.schema}")
        self._write_lock = advisory_key(f"pca-readmodels-write:{datastore.schema}")

    def create_table(self) -> None:
        _create_once(super().create_table)

    def _create_table(self, curs: Cursor[DictRow]) -> None:
        # Several processes may open the view at once; CREATE ... IF NOT EXISTS can still
        # collide in PostgreSQL's catalogue, so table creation takes turns.
        curs.execute("SELECT pg_advisory_xact_lock(%s)", (self._ddl_lock,))
        super()._create_table(curs)
        for statement in self.sql.build_search:
            curs.execute(statement)

    def build_search(self) -> None:
        self._run_ddl(self.sql.build_search)

    @contextmanager
    def transaction(
        self, tracking: Tracking, *, previous: int | None = None
    ) -> Iterator[ReadModelWriter]:
        with self.datastore.transaction(commit=True) as cursor:
            # Writers take turns, so the position read next is still current at commit.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self._write_lock,))
            _check_previous(self._max_tracking_id(tracking.application_name, cursor), previous)
            self._insert_tracking(cursor, tracking)
            writer = ReadModelWriter(cursor, self.sql)
            yield writer
            writer.flush()

    def fetch(self, statement: str, params: Sequence[Any]) -> Sequence[Any]:
        with self.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(statement, params, prepare=True)
            return cursor.fetchall()

    def reset(self) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self._ddl_lock,))
            for statement in self.sql.drop:
                cursor.execute(statement)
            cursor.execute(
                SQL("DELETE FROM {0}.{1} WHERE application_name = %s").format(
                    Identifier(self.datastore.schema), Identifier(self.tracking_table_name)
                ),
                (LOG_NAME,),
            )
            for statement in self.sql.create:
                cursor.execute(statement)
            self._initialise(cursor)

    def _run_ddl(self, statements: Sequence[str]) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (self._ddl_lock,))
            for statement in statements:
                cursor.execute(statement)

    def analyze(self) -> None:
        # VACUUM also marks the pages all-visible, without which counts cannot be answered
        # from an index alone; it cannot run in a transaction (pool connections autocommit).
        with self.datastore.get_connection() as connection:
            for table in TABLES:
                connection.execute(
                    SQL("VACUUM (ANALYZE) {0}.{1}").format(
                        Identifier(self.datastore.schema), Identifier(table)
                    )
                )

    def close(self) -> None:
        self.datastore.close()
