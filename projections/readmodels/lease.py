"""One runner at a time (DESIGN §5): a lease that a runner or a rebuild holds while it writes.

SQLite: an exclusive ``flock`` on ``readmodels.lock`` in the data directory. PostgreSQL: a
session advisory lock, keyed by the schema, on a connection of its own. Both vanish with
the process that holds them, so a killed runner never blocks its successor.

The lease saves wasted work and gives a clear error; correctness does not rest on it. A
batch also checks, inside its transaction, that the read models are still where it
started (:class:`~projections.errors.PositionMovedError`).
"""

from __future__ import annotations

import fcntl
import os
from abc import abstractmethod

import psycopg

from domain.adapters.resources import Closeable
from domain.adapters.settings import Settings
from projections.errors import RunnerActiveError
from projections.readmodels.sql import advisory_key
from projections.readmodels.store import RUNNER_LOCK_FILE

_BUSY = (
    "Another projection runner already serves these read models{where}; stop it first "
    "(only one runner may follow the log, and a rebuild needs the runner stopped)."
)


class Lease(Closeable):
    """Held from :func:`acquire_lease` until :meth:`release` (or the process ends)."""

    @abstractmethod
    def release(self) -> None:
        """Give the lease up; idempotent."""

    def close(self) -> None:
        self.release()


RUNNER = "readmodels-runner"


def acquire_lease(settings: Settings, purpose: str = RUNNER) -> Lease:
    """Take the lease for ``purpose`` (by default the read-model runner's) in ``settings``'
    deployment; RunnerActiveError if another process or thread holds it."""
    if settings.database_url is not None:
        return _AdvisoryLockLease.acquire(settings.database_url, settings.database_schema, purpose)
    return _FileLease.acquire(settings, purpose)


class _FileLease(Lease):
    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, settings: Settings, purpose: str) -> _FileLease:
        settings.prepare_data_dir()
        name = RUNNER_LOCK_FILE if purpose == RUNNER else f"{purpose}.lock"
        fd = os.open(settings.data_dir / name, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            raise RunnerActiveError(
                _BUSY.format(where=f" (process {holder})" if holder else "")
            ) from None
        # The holder's pid, for the error message a second runner shows.
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class _AdvisoryLockLease(Lease):
    def __init__(self, connection: psycopg.Connection[tuple[object, ...]]) -> None:
        self._connection = connection

    @classmethod
    def acquire(cls, url: str, schema: str, purpose: str) -> _AdvisoryLockLease:
        key = advisory_key(f"pca-{purpose}:{schema or 'public'}")
        connection = psycopg.connect(url, autocommit=True)
        row = connection.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if row is None or row[0] is not True:
            connection.close()
            raise RunnerActiveError(_BUSY.format(where=f" (schema {schema or 'public'})"))
        return cls(connection)

    def release(self) -> None:
        self._connection.close()  # the session ends, and its advisory lock with it
