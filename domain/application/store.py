"""The event store as the application's parts use it: typed loads, saves with positions.

Every part of the application (CA commands, issuance, tokens, publishing, exports) loads
one aggregate at a time and saves a few; they share this one :class:`Store`, so each
aggregate has one load with one error message, and each save one way to report the log
position a reader can wait for. Optimistic-concurrency conflicts are retried here too.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Recording

from domain.application.ports import SAVE_KEYS_ARGUMENT, Clock, Keys, WriteLocks
from domain.application.signers import Signers
from domain.model.authority import CertificateAuthority
from domain.model.certificate import Certificate, certificate_id
from domain.model.certificate_facts import authority_key_identifier
from domain.model.errors import (
    CAStateError,
    ConflictError,
    IdempotencyKeyReusedError,
    NotFoundError,
)
from domain.model.idempotency import CommandClaim, Repeatable
from domain.model.values import CertificateStatus, RequestContext
from domain.pki.x509 import PublicationURLs

T = TypeVar("T")
MAX_SAVE_ATTEMPTS = 200


def utc_now() -> dt.datetime:
    """The current time in UTC, to the second (X.509 times have no fractions)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Outcome:
    """What a command changed and the log position a reader can wait for."""

    id: UUID
    position: int


@dataclass(frozen=True)
class IssuedCertificate:
    """A new (or idempotently repeated) certificate, its chain and the log position."""

    certificate: Certificate
    chain_der: tuple[bytes, ...]
    position: int


class Store:
    """Loads and saves of ``app``'s aggregates, with the key store, CA signers, clock and
    public URL every part needs beside them."""

    def __init__(
        self,
        app: Application[UUID],
        keys: Keys,
        signers: Signers,
        clock: Clock,
        public_url: str,
        *,
        ocsp_url: str | None = None,
        keys_in_event_store: bool = False,
    ) -> None:
        self.app = app
        self.keys = keys
        self.keys_in_event_store = keys_in_event_store
        self.signers = signers
        self.clock = clock
        self.public_url = public_url
        self.ocsp_url = ocsp_url
        self._chains: dict[tuple[UUID, bytes | None], tuple[bytes, ...]] = {}
        self._ca_locks = CALocks()

    def urls(self, ca_id: UUID, generation: int) -> PublicationURLs:
        """Where relying parties find the CRLs, certificate and OCSP of ``ca_id``'s key
        ``generation``: the URLs written into what it signs."""
        return PublicationURLs.for_issuer(self.public_url, str(ca_id), generation, self.ocsp_url)

    def get(self, aggregate_id: UUID, message: str, field: str | None = None) -> Any:
        """The aggregate ``aggregate_id``; NotFoundError with ``message`` if there is none."""
        try:
            return self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFoundError(message, field=field) from None

    def find(self, aggregate_id: UUID) -> object | None:
        """The aggregate ``aggregate_id``, or None if there is none."""
        try:
            found: object = self.app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found

    def holds(self, aggregate_id: UUID) -> bool:
        """Whether the aggregate ``aggregate_id`` exists."""
        return aggregate_id in self.app.repository

    def get_ca(self, ca_id: UUID, *, field: str | None = None) -> CertificateAuthority:
        """The CA ``ca_id``; NotFoundError if there is none."""
        ca = self.get(ca_id, f"No CA with id {ca_id}.", field)
        if not isinstance(ca, CertificateAuthority):
            raise NotFoundError(f"No CA with id {ca_id}.", field=field)
        return ca

    def get_certificate(self, certificate_id: UUID) -> Certificate:
        """The certificate ``certificate_id``; NotFoundError if there is none."""
        certificate = self.get(certificate_id, f"No certificate with id {certificate_id}.")
        if not isinstance(certificate, Certificate):
            raise NotFoundError(f"No certificate with id {certificate_id}.")
        return certificate

    def listed_certificate(self, certificate_id: UUID) -> Certificate:
        """The certificate unless deleted: deleted ones have left the list for good
        (NotFoundError, as for one that never was)."""
        certificate = self.get_certificate(certificate_id)
        if certificate.status is CertificateStatus.DELETED:
            raise NotFoundError(f"Certificate {certificate_id} was deleted.")
        return certificate

    def version(self, aggregate_id: UUID) -> int | None:
        """The version of ``aggregate_id``'s last recorded event (None: it has none), read
        without loading the aggregate: a change of version says it changed."""
        last = self.app.recorder.select_events(aggregate_id, desc=True, limit=1)
        return last[0].originator_version if last else None

    def find_certificate(self, ca_id: UUID, serial_number: str) -> Certificate | None:
        """The certificate ``ca_id`` issued with ``serial_number`` (lower-case hex), if any."""
        found = self.find(certificate_id(ca_id, serial_number))
        return found if isinstance(found, Certificate) else None

    def chain_der(self, ca_id: UUID, issued_der: bytes | None = None) -> tuple[bytes, ...]:
        """The certificate of the CA's key that signed ``issued_der`` (by default its
        current key), followed by its parents' up to the root, each the one whose key
        signed the certificate before it (a CA has several after a key rollover)."""
        # The key that signed a certificate never changes, so that chain is cached for good.
        signer = authority_key_identifier(issued_der) if issued_der is not None else None
        cached = self._chains.get((ca_id, signer))
        if cached is not None:
            return cached
        chain: list[bytes] = []
        current: UUID | None = ca_id
        while current is not None:
            ca = self.get_ca(current)
            if ca.certificate_der is None:
                raise CAStateError(f"CA {current} has no certificate yet; enable it first.")
            below = chain[-1] if chain else issued_der
            generation = ca.generation_signing(below) if below else ca.current_generation
            chain.append(generation.certificate_der)
            current = ca.parent_id
        if signer is not None:
            self._chains[(ca_id, signer)] = tuple(chain)
        return tuple(chain)

    def save(
        self, outcome_id: UUID, *changed: Any, keys: Mapping[str, object] | None = None
    ) -> Outcome:
        """Save ``changed`` atomically; the outcome names ``outcome_id`` and the position.

        ``keys`` are the sealed keys, by key id, that the saved events name. A key store
        in the event store's database (``keys_in_event_store``) gets them in the save's
        own transaction: one commit, keys and events stored or rolled back together. Any
        other key store gets them first, so no saved event names a missing key; a save
        that then fails on a conflict destroys them again (an unexpected error leaves
        them, unnamed and encrypted, rather than risk a saved event without its key).
        """
        if not keys:
            return outcome_of(outcome_id, self.app.save(*changed))
        if self.keys_in_event_store:
            sealed = {SAVE_KEYS_ARGUMENT: list(keys.values())}
            return outcome_of(outcome_id, self.app.save(*changed, **sealed))
        self.keys.store(list(keys.values()))
        try:
            return outcome_of(outcome_id, self.app.save(*changed))
        except IntegrityError:
            for key_id in keys:
                self.keys.destroy(key_id)
            raise

    def head(self) -> int:
        """The log's last position (0 when empty)."""
        return self.app.recorder.max_notification_id() or 0

    def repeated(self, once: Repeatable | None) -> Outcome | None:
        """The first outcome of a repeated Idempotency-Key, or None if it is new."""
        if once is None:
            return None
        claim = self.find(once.claim_id)
        if claim is None:
            return None
        assert isinstance(claim, CommandClaim)
        if claim.fingerprint != once.fingerprint:
            raise key_reused()
        return Outcome(claim.outcome_id, self.head())

    def save_once(
        self, ctx: RequestContext, once: Repeatable | None, outcome_id: UUID, *changed: Any
    ) -> Outcome:
        """Save ``changed`` with the claim of ``once``; a key claimed meanwhile by a
        concurrent request with it gives that request's outcome."""
        claim = CommandClaim.record(ctx, once, outcome_id) if once is not None else None
        try:
            return self.save(outcome_id, *changed, claim)
        except IntegrityError:
            repeated = self.repeated(once)
            if repeated is None:
                raise
            return repeated

    def ca_lock(self, ca_id: UUID) -> AbstractContextManager[None]:
        """Hold this process's lock for writers to the CA ``ca_id`` (see CALocks)."""
        return self._ca_locks.hold(ca_id)


class CALocks:
    """One lock per CA inside a process.

    Serialising writers to one CA inside a process turns in-process contention into
    waiting; only conflicts with other processes reach the retry loop.
    """

    def __init__(self) -> None:
        self._locks: dict[UUID, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, ca_id: UUID) -> Iterator[None]:
        """Hold the CA's lock for the ``with`` block."""
        with self._guard:
            lock = self._locks.setdefault(ca_id, threading.Lock())
        with lock:
            yield


def outcome_of(aggregate_id: UUID, recordings: Sequence[Recording[UUID]]) -> Outcome:
    """The outcome of a save: ``aggregate_id`` and the last recording's position."""
    return Outcome(aggregate_id, recordings[-1].notification.id)


def key_reused() -> IdempotencyKeyReusedError:
    """The error for an Idempotency-Key seen before with other parameters."""
    return IdempotencyKeyReusedError(
        "This Idempotency-Key was already used with different parameters; "
        "use a new key for a new request.",
        field="Idempotency-Key",
    )


def retry_on_conflict(attempt: Callable[[], T]) -> T:
    """Run ``attempt`` until it saves without an optimistic-concurrency conflict."""
    for number in range(MAX_SAVE_ATTEMPTS):
        try:
            return attempt()
        except IntegrityError:
            backoff(number)
    raise too_busy()


def too_busy() -> ConflictError:
    """The error when conflicts outlast every retry."""
    return ConflictError("The CA is too busy right now; retry the request.")


def backoff(attempt: int) -> None:
    """Sleep a random, growing while before retry number ``attempt``."""
    time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))  # noqa: S311


class _OneProcess:
    """Write locks for a store no other process writes: the in-process CA locks suffice."""

    def hold(self, ca_id: UUID) -> AbstractContextManager[None]:
        del ca_id
        return nullcontext()

    def close(self) -> None:
        """Nothing to release."""


def one_process(datastore: object) -> WriteLocks:
    """Write locks for tests and tools that are their store's only writer."""
    del datastore
    return _OneProcess()
