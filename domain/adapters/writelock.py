"""One issuance writer per CA at a time, across every process that shares the store.

Issuance saves the CA (its quota) with each group of certificates, under optimistic
concurrency: two processes issuing from the same CA would each stage a group, and the
later save would fail on the CA's version and be redone, the whole group's work wasted.
With large groups (batches) that was four saves in ten. Holding this lock while staging
and saving makes the processes take turns instead; conflicts with other commands (quota
assignments, disabling) still go through the retry loop.

SQLite deployments share a directory, so the lock is an ``flock`` on a file per CA there;
PostgreSQL deployments share the server, so it is an advisory lock, which also holds across
several API hosts. Both are released by the operating system or the server when their
holder dies, so a killed worker never leaves a CA locked.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Protocol
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore


class WriteLocks(Protocol):
    """Exclusive access to one CA's issuance for the duration of a ``with`` block."""

    def hold(self, ca_id: UUID) -> AbstractContextManager[None]: ...

    def close(self) -> None: ...


def write_locks(env: dict[str, str], datastore: object) -> WriteLocks:
    """The locks that fit the store: a directory beside the SQLite file, or the server."""
    if isinstance(datastore, PostgresDatastore):
        return AdvisoryLocks(datastore)
    if "SQLITE_DBNAME" in env:
        return FileLocks(Path(env["SQLITE_DBNAME"]).parent / "locks")
    return ProcessLocks()


class FileLocks:
    """``flock`` on ``<directory>/<ca id>.lock``; callers in one process take turns first.

    A lock belongs to an open file description, so threads of one process sharing it would
    not exclude each other; the service already lets one thread per CA write at a time.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._directory = directory
        self._descriptors: dict[UUID, int] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, ca_id: UUID) -> Iterator[None]:
        descriptor = self._descriptor(ca_id)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._guard:
            for descriptor in self._descriptors.values():
                os.close(descriptor)
            self._descriptors.clear()

    def _descriptor(self, ca_id: UUID) -> int:
        with self._guard:
            descriptor = self._descriptors.get(ca_id)
            if descriptor is None:
                path = self._directory / f"{ca_id}.lock"
                descriptor = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
                self._descriptors[ca_id] = descriptor
            return descriptor


class AdvisoryLocks:
    """A session-level PostgreSQL advisory lock keyed by the CA id, on a pooled connection."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self._datastore = datastore

    @contextmanager
    def hold(self, ca_id: UUID) -> Iterator[None]:
        key = int.from_bytes(ca_id.bytes[:8], "big", signed=True)
        with self._datastore.get_connection() as connection:
            connection.execute("SELECT pg_advisory_lock(%s)", (key,))
            try:
                yield
            finally:
                connection.execute("SELECT pg_advisory_unlock(%s)", (key,))

    def close(self) -> None:
        """Nothing to release: the connections belong to the event store's pool."""


class ProcessLocks:
    """For an in-memory store, which only this process can write: nothing more to hold."""

    def hold(self, ca_id: UUID) -> AbstractContextManager[None]:
        del ca_id
        return nullcontext()

    def close(self) -> None:
        """Nothing to release."""
