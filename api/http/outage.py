"""A storage outage answers 503 with ``Retry-After``, never 500.

PostgreSQL restarting, a pool with no connection to give within its timeout, or SQLite
still locked after its busy timeout are moments to wait out, not faults in the request:
the client is told to come back (RFC 9110 §15.6.4), in the same problem+json as every
other error. The drivers reach Flask either as themselves (the key store, the CRL store)
or wrapped by eventsourcing, whose wrappers keep the driver's error
as ``__cause__``; the driver's error decides. SQLite reports a misspelt table with the
same exception class as a lock, so its result code tells an outage (busy, locked, I/O,
full, read-only, cannot open) from a bug, which still gets the generic 500.
"""

from __future__ import annotations

import logging
import sqlite3

import psycopg
from eventsourcing import persistence
from flask import Flask, current_app
from flask.typing import ResponseReturnValue

from api.http.errors import problem

logger = logging.getLogger(__name__)

STORAGE_ERRORS: tuple[type[Exception], ...] = (
    psycopg.OperationalError,  # psycopg_pool.PoolTimeout is one
    psycopg.InterfaceError,
    sqlite3.OperationalError,
    persistence.OperationalError,
    persistence.InterfaceError,
)
_TRANSIENT_SQLITE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)
OUTAGE_DETAIL = (
    "The service's storage is unavailable for the moment (restarting, or busy for longer "
    "than the service waits); retry after Retry-After seconds. Repeating an issuance "
    "with the same Idempotency-Key never issues a second certificate."
)


def register_outage_handler(app: Flask) -> None:
    """Answer storage outages with 503; Flask prefers these handlers over the generic
    ``Exception`` one because it picks the handler of the nearest class in the MRO."""
    for error_class in STORAGE_ERRORS:
        app.register_error_handler(error_class, _storage_error)


def is_storage_outage(error: BaseException) -> bool:
    """Whether ``error`` means the storage cannot answer now, rather than a bug."""
    driver_error = _driver_error(error)
    if isinstance(driver_error, sqlite3.Error):
        code = getattr(driver_error, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _TRANSIENT_SQLITE_CODES
    if isinstance(driver_error, psycopg.Error):
        return isinstance(driver_error, psycopg.OperationalError | psycopg.InterfaceError)
    return isinstance(driver_error, persistence.ConnectionUnavailableError)


def _driver_error(error: BaseException) -> BaseException:
    """The database driver's own error under eventsourcing's wrappers, else ``error``."""
    while isinstance(error, persistence.PersistenceError) and error.__cause__ is not None:
        error = error.__cause__
    return error


def _storage_error(error: Exception) -> ResponseReturnValue:
    if not is_storage_outage(error):
        return _as_any_other_error(error)
    driver_error = _driver_error(error)
    # Driver messages name the host and port at most, never the password.
    logger.warning(
        "storage unavailable, answered 503: %s: %s",
        type(driver_error).__name__,
        str(driver_error).strip().replace("\n", " "),
    )
    return problem(503, "Storage unavailable", OUTAGE_DETAIL)


def _as_any_other_error(error: Exception) -> ResponseReturnValue:
    """``error`` answered by the app's handler for any other ``Exception`` (api.http.errors):
    a bug reported with a storage exception class is answered like every other bug."""
    handler = current_app.error_handler_spec[None][None][Exception]
    response: ResponseReturnValue = current_app.ensure_sync(handler)(error)
    return response
