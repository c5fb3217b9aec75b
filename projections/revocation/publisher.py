"""Publishing revocations: base and delta CRLs per CA, signed from the revocation index.

Each CA's CRL state lives in memory as encoded entries (:class:`EncodedRevocationList`), so
one more revocation costs a re-signature of the kept bytes, not a rebuild. A publication:

* a new **base** CRL (all revoked, unexpired-or-within-grace entries) when there is none yet
  in this process, when the base is half-way to its nextUpdate (so it is re-signed in time
  even when nothing changed), or when the delta has grown past :class:`RecutPolicy`'s limits;
  every base is followed by an empty delta against it;
* otherwise a **delta** CRL holding every revocation since the base (deltaCRLIndicator).

Base and delta share one CRLNumber sequence per CA, kept by the CA's ``Publication``
aggregate: each CRL is a ``CRLPublished`` event (number, thisUpdate, nextUpdate, entries,
SHA-256) saved before the DER is served, and two publishers that pick the same number
conflict on that save, so numbers strictly increase across processes and restarts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from eventsourcing.persistence import IntegrityError, Notification

from domain.adapters.settings import PublishingSettings, Settings
from domain.application.service import PrivateCA
from domain.model.authority import CertificateAuthority
from domain.model.certificate import Certificate
from domain.model.publication import issuer_scope
from domain.model.topics import stored_topics
from domain.model.values import RequestContext
from domain.pki.crl import EncodedRevocationList, RecutPolicy, RevokedEntry, build_crl
from projections.background import LeasedJob
from projections.errors import RunnerActiveError
from projections.readmodels.models import RevocationEntry
from projections.readmodels.queries import ReadModels
from projections.revocation.crlstore import BASE, DELTA, CRLStore, StoredCRL

logger = logging.getLogger(__name__)
PUBLISHER = "crl-publisher"
MAX_ATTEMPTS = 5


@dataclass
class _IssuerState:
    """One CA's CRLs as this process last signed them."""

    base: EncodedRevocationList = field(default_factory=EncodedRevocationList)
    not_after: dict[int, dt.datetime] = field(default_factory=dict)  # of entries in base
    delta: EncodedRevocationList = field(default_factory=EncodedRevocationList)
    delta_entries: list[RevocationEntry] = field(default_factory=list)
    pending: list[RevocationEntry] = field(default_factory=list)
    base_number: int | None = None
    base_cut_at: dt.datetime | None = None
    position: int = 0


@dataclass(frozen=True)
class Published:
    """One CRL just published."""

    ca_id: UUID
    kind: str
    number: int
    entries: int
    generation: int = 1


@dataclass(frozen=True)
class _Issuer:
    """One key of a CA, whose CRLs are published on their own."""

    ca_id: UUID
    generation: int

    @property
    def scope(self) -> UUID:
        """Where this key's CRLs are kept and served from (the CA's id for its first)."""
        return issuer_scope(self.ca_id, self.generation)

    def __str__(self) -> str:
        return f"CA {self.ca_id} key {self.generation}"


class CRLPublisher:
    """Signs and stores the CRLs of every CA whose revocation index changed."""

    def __init__(
        self,
        service: PrivateCA,
        read_models: ReadModels,
        store: CRLStore,
        config: PublishingSettings | None = None,
    ) -> None:
        self._service = service
        self._read_models = read_models
        self._store = store
        self._config = config or PublishingSettings()
        self._policy = RecutPolicy(
            max_delta_entries=self._config.max_delta_entries, max_base_age=self._config.validity / 2
        )
        self._states: dict[UUID, _IssuerState] = {}
        self._issuers_cache: list[tuple[_Issuer, dt.datetime]] = []
        self._issuers_position = -1
        self._context = RequestContext("crl-publisher (system)", f"publisher-{uuid.uuid4()}")

    def publish_due(self) -> list[Published]:
        """Publish for every CA key with news, or whose base CRL needs re-signing: each key
        a CA has had signs the CRLs about what it signed, while its certificate lasts."""
        published: list[Published] = []
        now = self._service.clock()
        for issuer, not_after in self._issuers():
            if now < not_after:
                published += self._publish_guarded(issuer, force_base=False)
        return published

    def _issuers(self) -> list[tuple[_Issuer, dt.datetime]]:
        """Every key of the CAs that have a certificate, with its certificate's end; listed
        again only when the read models moved (this runs twice a second). From the keys
        alone: the CA list would also count each CA's expired certificates, 50-300 ms
        at a million, after every revocation."""
        position = self._read_models.position()
        if position != self._issuers_position:
            self._issuers_cache = [
                (_Issuer(ca_id, key.generation), key.not_after)
                for ca_id, keys in self._read_models.ca_keys().items()
                for key in keys
            ]
            self._issuers_position = position
        return self._issuers_cache

    def publish(
        self, ca_id: UUID, *, force_base: bool = False, generation: int | None = None
    ) -> list[Published]:
        """Publish what is due for ``ca_id``'s key ``generation`` (by default every key it
        has had): a base (and an empty delta), a delta, or nothing."""
        numbers = (
            [generation]
            if generation is not None
            else [found.number for found in self._service.get_ca(ca_id).generations]
        )
        published: list[Published] = []
        for number in numbers:
            published += self._publish_guarded(_Issuer(ca_id, number), force_base=force_base)
        return published

    def _publish_guarded(self, issuer: _Issuer, *, force_base: bool) -> list[Published]:
        """If publishing fails (storage gone mid-way), the key's state is forgotten: what it
        had taken in may be signed but not served, so the next round starts from a base."""
        try:
            return self._publish(issuer, force_base)
        except BaseException:
            self._states.pop(issuer.scope, None)
            raise

    def _publish(self, issuer: _Issuer, force_base: bool) -> list[Published]:
        state = self._states.setdefault(issuer.scope, _IssuerState())
        now = self._service.clock()
        if state.base_number is None:
            revoked = self._read_models.revoked_serials(issuer.ca_id)
            return self._publish_base(issuer, state, now, revoked)
        state.pending += self._read_models.revocations_after(issuer.ca_id, state.position)
        if force_base or self._base_due(state, now):
            entries, state.delta_entries = [*state.delta_entries, *state.pending], []
            return self._publish_base(issuer, state, now, entries)
        if state.pending:
            return [self._publish_delta(issuer, state)]
        return []

    def _base_due(self, state: _IssuerState, now: dt.datetime) -> bool:
        assert state.base_cut_at is not None
        delta_size = len(state.delta_entries) + len(state.pending)
        return self._policy.base_due(len(state.base), delta_size, now - state.base_cut_at)

    def _publish_base(
        self, issuer: _Issuer, state: _IssuerState, now: dt.datetime, entries: list[RevocationEntry]
    ) -> list[Published]:
        cutoff = now - self._config.expired_grace
        for entry in entries:
            serial = int(entry.serial_number, 16)
            if entry.not_after >= cutoff and serial not in state.base:
                state.base.add(_revoked(entry))
                state.not_after[serial] = entry.not_after
        self._drop_expired(state, cutoff)
        state.position = max([state.position, *(entry.position for entry in entries)])
        state.pending, state.delta = [], EncodedRevocationList()
        base = self._sign(issuer, BASE, state.base, None, state.position)
        state.base_number, state.base_cut_at = base.number, now
        delta = self._sign(issuer, DELTA, state.delta, base.number, state.position)
        return [base, delta]

    def _publish_delta(self, issuer: _Issuer, state: _IssuerState) -> Published:
        for entry in state.pending:
            state.delta.add(_revoked(entry))
        state.delta_entries += state.pending
        state.position = max(entry.position for entry in state.pending)
        state.pending = []
        return self._sign(issuer, DELTA, state.delta, state.base_number, state.position)

    def _drop_expired(self, state: _IssuerState, cutoff: dt.datetime) -> None:
        """Entries whose certificate expired more than the grace ago leave the base CRL
        (RFC 5280 §3.3 allows it); the revocation index keeps them."""
        for serial, not_after in list(state.not_after.items()):
            if not_after < cutoff:
                state.base.remove(serial)
                del state.not_after[serial]

    def _sign(
        self,
        issuer: _Issuer,
        kind: str,
        entries: EncodedRevocationList,
        delta_of: int | None,
        position: int,
    ) -> Published:
        for _ in range(MAX_ATTEMPTS):
            try:
                return self._sign_once(issuer, kind, entries, delta_of, position)
            except IntegrityError:
                logger.info("another publisher took a CRL number for %s; retrying", issuer)
        raise RunnerActiveError(f"CRL publishing for {issuer} keeps conflicting.")

    def _sign_once(
        self,
        issuer: _Issuer,
        kind: str,
        entries: EncodedRevocationList,
        delta_of: int | None,
        position: int,
    ) -> Published:
        ca_id, generation = issuer.ca_id, issuer.generation
        publication = self._service.publication(self._context, ca_id, generation)
        number = publication.next_number
        certificate, key = self._service.signing_material(ca_id, generation)
        now = self._service.clock()
        window = (now, now + self._config.validity)
        urls = self._service.publication_urls(ca_id, generation)
        der = build_crl(
            certificate,
            key,
            entries,
            number,
            *window,
            delta_of=delta_of,
            freshest_url=urls.delta_crl if delta_of is None else None,
        )
        digest = hashlib.sha256(der).hexdigest()
        publication.record_crl(self._context, window, len(entries), digest, delta_of, position)
        self._service.save(publication)
        self._store.put(StoredCRL(issuer.scope, kind, number, der, digest, *window))
        return Published(ca_id, kind, number, len(entries), generation)


def _revoked(entry: RevocationEntry) -> RevokedEntry:
    return RevokedEntry(int(entry.serial_number, 16), entry.revoked_at, entry.reason)


def waker(job: LeasedJob) -> Callable[[Sequence[Notification]], None]:
    """What the read-model runner calls with each batch it commits: wakes the publisher's
    ``job`` when the batch revoked a certificate or a CA, so the CRLs list it at once
    rather than at the next look (other news, a new CA's first CRLs, waits for that)."""

    def wake(batch: Sequence[Notification]) -> None:
        if any(notification.topic in _REVOCATIONS for notification in batch):
            job.wake()

    return wake


def publisher_job(settings: Settings, publisher: CRLPublisher) -> LeasedJob:
    """The publisher's thread as every process runs it: under the publisher lease it
    publishes what is due every ``PCA_CRL_DEBOUNCE_MS``, and does nothing else (audit
    checkpoints have their own thread: projections.audit.checkpointer)."""
    interval = settings.publishing.debounce.total_seconds()
    return LeasedJob(settings, PUBLISHER, publisher.publish_due, interval)


_REVOCATIONS = frozenset(
    stored_topics(Certificate.CertificateRevoked) + stored_topics(CertificateAuthority.CARevoked)
)
