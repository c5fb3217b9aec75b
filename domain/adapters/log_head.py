"""The log's head on PostgreSQL, read on a connection kept for it.

The OCSP responder reads the head (the highest notification id) on every request, so that
a kept answer is never served past a committed change to what it says. Through
eventsourcing's pool that read is a check-out, an unprepared statement, rows as dicts and
a check-in: 65-77 µs here. On a connection of its own in autocommit, with the statement
prepared and run by libpq's call, it is 16-19 µs (docs/BENCHMARKS.md, "OCSP on
PostgreSQL: the head on its own connection").

One connection per recorder, opened on first use, read by one thread at a time. A thread
that finds it busy takes the pool's path, as does every read while it cannot be used: a
failed read (the server restarted, an outage) closes it, and it is opened again at most
once per :data:`RETRY_SECONDS`; the pool's path raises the store's errors meanwhile, as
every other read does. It is closed with the service (:meth:`LogHead.close`), and shows in
``pg_stat_activity`` as ``pca log head <schema>``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from eventsourcing.postgres import ConnectionPool
from psycopg.pq import ExecStatus
from psycopg.pq.abc import PGresult
from psycopg.rows import tuple_row
from psycopg.sql import Composed

RETRY_SECONDS = 1.0  # between attempts to open the connection again
PREPARED = b"pca_log_head"  # the statement's name on the connection
NAMEDATALEN = 63  # PostgreSQL truncates longer application names

Connect = Callable[[], "psycopg.Connection[tuple[Any, ...]]"]


def connector(pool: ConnectionPool[Any], schema: str) -> Connect:
    """How to open the head's connection: to the server, as the user, with the password
    ``pool`` connects with (asked anew each time, as the pool does), in autocommit,
    rows as tuples; ``pg_stat_activity`` shows it as :func:`application_name`."""

    def connect() -> psycopg.Connection[tuple[Any, ...]]:
        conninfo = pool.conninfo() if callable(pool.conninfo) else pool.conninfo
        kwargs = pool.kwargs() if callable(pool.kwargs) else dict(pool.kwargs or {})
        if pool.get_password_func is not None:
            kwargs["password"] = pool.get_password_func()
        kwargs.setdefault("connect_timeout", max(1, round(pool.timeout)))
        kwargs.update(row_factory=tuple_row, autocommit=True)
        kwargs["application_name"] = application_name(schema)
        return psycopg.connect(conninfo, **kwargs)

    return connect


def application_name(schema: str) -> str:
    """How the head's connection to ``schema``'s log names itself to the server."""
    return f"pca log head {schema}"[:NAMEDATALEN]


class LogHead:
    """Reads the head on its own connection when it can, else with ``fallback``."""

    def __init__(self, connect: Connect, statement: Composed, fallback: Callable[[], int | None]):
        self._connect = connect
        self._statement = statement
        self._fallback = fallback
        self._lock = threading.Lock()
        self._connection: psycopg.Connection[tuple[Any, ...]] | None = None
        self._retry_at = 0.0
        self._closed = False

    def read(self) -> int | None:
        """The highest notification id committed, or None for an empty log."""
        if self._lock.acquire(blocking=False):  # else another thread is reading
            try:
                result = self._execute()
            finally:
                self._lock.release()
            if result is not None:
                value = result.get_value(0, 0)
                return None if value is None else int(value)
        return self._fallback()

    def close(self) -> None:
        """Close the connection, after a read under way; later reads take the pool's path."""
        with self._lock:
            self._closed = True
            self._drop()

    def _execute(self) -> PGresult | None:
        """The prepared read's result on the head's connection; None if it cannot be
        used now, or the read failed (which closes it)."""
        connection = self._open()
        if connection is None:
            return None
        try:  # libpq's call: psycopg's cursor would double the cost of this read
            result: PGresult | None = connection.pgconn.exec_prepared(PREPARED, None)
        except psycopg.Error:
            result = None
        if result is None or result.status != ExecStatus.TUPLES_OK:
            self._drop()
            return None
        return result

    def _open(self) -> psycopg.Connection[tuple[Any, ...]] | None:
        if self._connection is not None or self._closed or time.monotonic() < self._retry_at:
            return self._connection
        try:
            self._connection = self._connect()
            statement = self._statement.as_bytes(self._connection)
            prepared = self._connection.pgconn.prepare(PREPARED, statement, None)
        except psycopg.Error:  # the server is away, or went away again
            self._drop()
            return None
        if prepared.status != ExecStatus.COMMAND_OK:
            self._drop()
        return self._connection

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        self._retry_at = time.monotonic() + RETRY_SECONDS
        if connection is not None:
            connection.close()
