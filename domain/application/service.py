"""The application service: one method per command (load, call the aggregate, save).

Non-deterministic work (clock reads, key generation, signing) happens here, before events are
triggered; its results travel in the events. Keys go to the key store, never into events.
This facade is what every face calls; it hands each command to one of its parts, all over
one Store (domain.application.store): CA lifecycle and quota (authorities), issuance
(issuance), downloads (exports), API tokens (tokens) and the signing material of
revocation publishing (publishing). Revoking and deleting a certificate are short enough
to stay here.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

from cryptography import x509
from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import Aggregate, DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import JSONTranscoder, Recording
from eventsourcing.popo import POPOFactory

from domain.application.authorities import Authorities
from domain.application.commands import (
    DEFAULT_INCLUDED_CERTIFICATES,
    CAProfile,
    CertificateRequest,
)
from domain.application.exports import Export, Exports
from domain.application.integrity import Integrity, command
from domain.application.issuance import Issuance
from domain.application.ports import (
    CASigner,
    Clock,
    HoldsConnections,
    Keys,
    WriteLocksFactory,
)
from domain.application.publishing import Publishing
from domain.application.signers import Signers
from domain.application.store import (
    IssuedCertificate,
    Outcome,
    Store,
    one_process,
    retry_on_conflict,
    utc_now,
)
from domain.application.tokens import Tokens
from domain.model.authority import CertificateAuthority
from domain.model.certificate import Certificate
from domain.model.constraints import UNCONSTRAINED, NameConstraints, check_names
from domain.model.errors import PCAError, StorageNotDurableError
from domain.model.policy import IssuancePolicy, check_identifier
from domain.model.publication import Publication
from domain.model.san_values import normalize_san_value
from domain.model.tokens import ApiToken, Role
from domain.model.transcodings import register_all
from domain.model.values import (
    SAN,
    UNSCOPED,
    KeyStorage,
    RequestContext,
    RevocationReason,
    TokenScope,
)
from domain.pki.formats import DownloadFormat, DownloadOptions
from domain.pki.signing import IssuerKey
from domain.pki.x509 import PublicationURLs

__all__ = ["Clock", "IssuedCertificate", "Outcome", "PrivateCA", "utc_now"]

logger = logging.getLogger(__name__)


class CollectedEvents(ProcessingEvent[UUID]):
    """eventsourcing's collection of a save's events, minus its per-object Protocol checks.

    ``ProcessingEvent.collect_events`` asks ``isinstance`` of two runtime-checkable
    Protocols per saved object, which on Python 3.11 walks every Protocol member: about
    50 µs for a CA, a certificate and a claim (bench/collect_events.py).
    Our aggregates are all ``Aggregate`` subclasses, a plain class check; anything else
    takes the library's path.
    """

    def collect_events(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        **kwargs: Any,
    ) -> None:
        for obj in objs:
            if isinstance(obj, Aggregate):
                self.events.extend(obj.collect_events())
                self.aggregates[obj.id] = obj
            elif obj is not None:
                super().collect_events(obj)
        self.saved_kwargs.update(kwargs)


class PrivateCA(Application[UUID]):
    """Commands of the private CA. Queries of many items belong to the read models."""

    name = "pca"  # pinned: PostgreSQL table names derive from it
    snapshotting_intervals = {CertificateAuthority: 500}  # noqa: RUF012 - eventsourcing API

    def __init__(
        self,
        env: dict[str, str],
        *,
        keystore: Keys,
        public_url: str,
        ocsp_url: str | None = None,
        token_signer: CASigner | None = None,
        clock: Clock = utc_now,
        allow_memory: bool = False,
        write_locks: WriteLocksFactory = one_process,
        keys_in_event_store: bool = False,
    ) -> None:
        """The service on the event store ``env`` configures, signing with keys from
        ``keystore`` and, for CAs whose keys live in a PKCS#11 token, ``token_signer``
        (both owned and closed by the caller); ``write_locks`` makes the locks
        that let one process at a time record issuance for a CA. With
        ``keys_in_event_store``, ``keystore`` keeps its keys in the event store's
        database and a save stores the keys its events name in its own transaction.
        Certificates name CRLs and CA certificates under ``public_url`` and OCSP under
        ``ocsp_url`` (a dedicated responder's base URL), else under ``public_url`` too."""
        super().__init__(env)
        self.integrity = Integrity()
        self._snapshotter = ThreadPoolExecutor(1, thread_name_prefix="pca-snapshots")
        self._write_locks = write_locks(getattr(self.recorder, "datastore", None))
        if isinstance(self.factory, POPOFactory) and not allow_memory:
            self.close()
            raise StorageNotDurableError(
                "The event store is in memory and would keep nothing; configure SQLite "
                "(PCA_DATA_DIR) or PostgreSQL (PCA_DATABASE_URL)."
            )
        self.keystore = keystore
        self.public_url = public_url
        self.clock = clock
        self.token_signer = token_signer
        self.signers = Signers(keystore, token_signer)
        self._store = Store(
            self,
            keystore,
            self.signers,
            clock,
            public_url,
            ocsp_url=ocsp_url,
            keys_in_event_store=keys_in_event_store,
        )
        self._issuance = Issuance(self._store, self._write_locks)
        self._authorities = Authorities(self._store, self._issuance)
        self._exports = Exports(self._store)
        self._tokens = Tokens(self._store)
        self._publishing = Publishing(self._store)

    def close(self) -> None:
        self._snapshotter.shutdown()  # waits for a snapshot under way
        self._write_locks.close()
        if isinstance(self.recorder, HoldsConnections):
            self.recorder.close()
        super().close()

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        """Record the changes, unless the log failed its audit chain (LogTamperedError):
        whatever path a change takes, nothing is appended to a forged history.

        The steps of eventsourcing's ``Application.save``, collecting with
        :class:`CollectedEvents` instead of its runtime-checkable Protocol checks."""
        self.integrity.check()
        collected = CollectedEvents()
        collected.collect_events(*objs, **kwargs)
        recordings = self._record(collected)
        self._take_snapshots(collected)
        self._notify(recordings)
        return recordings

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        """Snapshot, on a thread of its own, an aggregate whose version crossed its
        interval, instead of in the save that crossed it: a snapshot reloads the aggregate
        from the store (up to the interval's 500 events) and commits apart, which the
        request that happened to cross it need not wait for. A snapshot is only a cache
        of what the events say: one lost with the process is taken at the next interval."""
        for event in processing_event.events:
            aggregate = processing_event.aggregates.get(event.originator_id)
            if aggregate is None:
                continue
            interval = self.snapshotting_intervals.get(type(aggregate))
            if interval and event.originator_version % interval == 0:
                self._snapshotter.submit(
                    self._snapshot, event.originator_id, event.originator_version
                )

    def _snapshot(self, aggregate_id: UUID, version: int) -> None:
        try:
            self.take_snapshot(aggregate_id, version)
        except Exception:  # a snapshot is an optimisation; the events stay the truth
            logger.exception("snapshot of %s at version %d failed", aggregate_id, version)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_all(transcoder)

    # --- CA lifecycle ---------------------------------------------------------------------

    @command
    def create_root(
        self,
        ctx: RequestContext,
        profile: CAProfile,
        included_certificates: int = DEFAULT_INCLUDED_CERTIFICATES,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """A pending root CA; it gets its key and certificate when first enabled."""
        return self._authorities.create_root(ctx, profile, included_certificates, idempotency_key)

    @command
    def create_intermediate(
        self,
        ctx: RequestContext,
        parent_id: UUID,
        profile: CAProfile,
        idempotency_key: str | None = None,
        name_constraints: NameConstraints = UNCONSTRAINED,
    ) -> Outcome:
        """A pending intermediate under the enabled root ``parent_id``, signing only
        inside ``name_constraints`` (written critical into its certificate)."""
        return self._authorities.create_intermediate(
            ctx, parent_id, profile, idempotency_key, name_constraints
        )

    @command
    def roll_over_ca_key(self, ctx: RequestContext, ca_id: UUID) -> Outcome:
        """A new key and certificate for the CA under the same name; issuance signs with it
        at once, and the previous key keeps signing the CRLs and OCSP answers about the
        certificates it signed. A root also gets link certificates (CAKeyRolledOver)."""
        return self._authorities.roll_over(ctx, ca_id)

    @command
    def retire_ca_key(self, ctx: RequestContext, ca_id: UUID, generation: int) -> Outcome:
        """Retire a previous key once its CA certificate has expired (CAKeyRetired): its
        material is destroyed (key store record or token object), no CRL is published
        and no OCSP answer signed for it again. CAStateError while it may still be needed,
        naming until when, and for the current key."""
        return self._authorities.retire_key(ctx, ca_id, generation)

    @command
    def enable_ca(
        self, ctx: RequestContext, ca_id: UUID, key_storage: KeyStorage = KeyStorage.SOFTWARE
    ) -> Outcome:
        """Enable; the first time, generate the CA key (in the key store, or in the PKCS#11
        token for ``KeyStorage.PKCS11``) and have the certificate signed."""
        return self._authorities.enable(ctx, ca_id, key_storage)

    @command
    def disable_ca(self, ctx: RequestContext, ca_id: UUID) -> Outcome:
        """Stop a CA from issuing and from taking part in quota assignments."""
        return self._authorities.update(ca_id, lambda ca: ca.disable(ctx))

    @command
    def renew_ca(self, ctx: RequestContext, ca_id: UUID, service_days: int) -> Outcome:
        """Extend the CA's service period by ``service_days``."""
        return self._authorities.update(
            ca_id, lambda ca: ca.renew_service(ctx, service_days, self.clock())
        )

    @command
    def revoke_ca(self, ctx: RequestContext, ca_id: UUID, reason: RevocationReason) -> Outcome:
        """Revoke an intermediate: its certificate lands on the root's CRL; it stops issuing."""
        return self._authorities.update(ca_id, lambda ca: ca.revoke(ctx, reason, self.clock()))

    # --- quota ----------------------------------------------------------------------------

    @command
    def purchase_quota(
        self, ctx: RequestContext, root_id: UUID, count: int, idempotency_key: str | None = None
    ) -> Outcome:
        """Add ``count`` certificates to the root's pool (once per Idempotency-Key)."""
        return self._authorities.purchase_quota(ctx, root_id, count, idempotency_key)

    @command
    def assign_quota(
        self, ctx: RequestContext, root_id: UUID, intermediate_id: UUID, remaining: int
    ) -> Outcome:
        """Set the intermediate's remaining quota, moving the difference to or from the root."""
        return self._authorities.assign_quota(ctx, root_id, intermediate_id, remaining)

    # --- certificate profiles -------------------------------------------------------------

    @command
    def create_profile(
        self, ctx: RequestContext, ca_id: UUID, name: str, policy: IssuancePolicy
    ) -> Outcome:
        """A new certificate profile on the intermediate ``ca_id``."""
        ctx.scope.check(ca_id, name)
        return self._authorities.update(ca_id, lambda ca: ca.create_profile(ctx, name, policy))

    @command
    def update_profile(
        self, ctx: RequestContext, ca_id: UUID, name: str, policy: IssuancePolicy
    ) -> Outcome:
        """The next version of profile ``name``: later requests are held to ``policy``."""
        ctx.scope.check(ca_id, name)
        return self._authorities.update(ca_id, lambda ca: ca.update_profile(ctx, name, policy))

    @command
    def retire_profile(self, ctx: RequestContext, ca_id: UUID, name: str) -> Outcome:
        """Stop issuing under profile ``name``; its certificates stay valid."""
        ctx.scope.check(ca_id, name)
        return self._authorities.update(ca_id, lambda ca: ca.retire_profile(ctx, name))

    def check_identifier(self, ca_id: UUID, profile: str, san: SAN) -> None:
        """PolicyError (SANError for a malformed name) unless the intermediate would issue
        for ``san`` under ``profile`` and inside its name constraints: what an ACME server
        asks before an order is made."""
        ca = self.get_ca(ca_id)
        normal = SAN(san.type, normalize_san_value(san.type, san.value, "identifier"))
        check_identifier(ca.issuing_profile(profile), normal)
        check_names(ca.name_constraints, [normal], "")

    # --- certificates ---------------------------------------------------------------------

    @command
    def issue_certificate(
        self, ctx: RequestContext, ca_id: UUID, request: CertificateRequest
    ) -> IssuedCertificate:
        """Sign and record one certificate, consuming one unit of the CA's quota.

        A repeated idempotency key with the same parameters returns the first certificate.
        """
        return self._issuance.issue_one(ctx, ca_id, request)

    @command
    def issue_certificates(
        self, ctx: RequestContext, ca_id: UUID, requests: Sequence[CertificateRequest]
    ) -> list[IssuedCertificate | PCAError]:
        """Sign and record each request on its own, one outcome per request, in order.

        An item fails alone (invalid request, quota spent, idempotency key reused) and
        consumes no quota; a CA that cannot issue at all raises. Concurrent calls for the
        same CA share transactions (see domain.application.issuing).
        """
        return self._issuance.issue(ctx, ca_id, requests)

    @command
    def export_certificate(
        self,
        ctx: RequestContext,
        certificate_id: UUID,
        file_format: DownloadFormat,
        options: DownloadOptions,
    ) -> Export:
        """The certificate as a file in ``file_format``; one holding the private key is
        recorded as ``PrivateKeyExported`` before it is returned (see exports)."""
        return self._exports.download(ctx, certificate_id, file_format, options)

    @command
    def revoke_certificate(
        self, ctx: RequestContext, certificate_id: UUID, reason: RevocationReason
    ) -> Outcome:
        """Revoke now, for good."""

        def attempt() -> Outcome:
            certificate = self.get_certificate(certificate_id)
            ctx.scope.check(certificate.ca_id)
            certificate.revoke(ctx, reason, self.clock())
            return self._store.save(certificate_id, certificate)

        return retry_on_conflict(attempt)

    @command
    def delete_certificate(self, ctx: RequestContext, certificate_id: UUID) -> Outcome:
        """Delete a revoked or expired certificate and destroy any key held for it.

        The key is destroyed before the event is saved: if the save then fails the
        certificate stays listed without a key (deleting again finishes the job), which is
        safer for a CA than a deleted certificate whose key lingers.
        """
        destroyed = False

        def attempt() -> Outcome:
            nonlocal destroyed
            certificate = self.get_certificate(certificate_id)
            ctx.scope.check(certificate.ca_id)
            now = self.clock()
            certificate.check_deletable(now)
            if certificate.key_id is not None:
                destroyed = self.keystore.destroy(certificate.key_id) or destroyed
            certificate.delete(ctx, now, key_destroyed=destroyed)
            return self._store.save(certificate_id, certificate)

        return retry_on_conflict(attempt)

    # --- revocation publishing (see domain.application.publishing) ----------------------

    def publication_urls(self, ca_id: UUID, generation: int = 1) -> PublicationURLs:
        """Where relying parties find the CRLs, certificate and OCSP of ``ca_id``'s key
        ``generation``, as written into what it signs."""
        return self._store.urls(ca_id, generation)

    def signing_material(
        self, ca_id: UUID, generation: int = 1
    ) -> tuple[x509.Certificate, IssuerKey]:
        """The certificate and key of the CA's key ``generation`` (1: its first), for
        signing CRLs and responder certificates about what that key signed."""
        return self._publishing.signing_material(ca_id, generation)

    def publication(self, ctx: RequestContext, ca_id: UUID, generation: int = 1) -> Publication:
        """The publication record of the CA's key ``generation`` (a new, unsaved one
        before its first CRL)."""
        return self._publishing.publication(ctx, ca_id, generation)

    @command
    def certify_ocsp_responder(
        self, ctx: RequestContext, ca_id: UUID, lifetime: dt.timedelta, generation: int = 1
    ) -> Publication:
        """Issue a fresh delegated OCSP responder certificate for the CA's key
        ``generation`` and record it."""
        return self._publishing.certify_ocsp_responder(ctx, ca_id, lifetime, generation)

    # --- API tokens (see domain.application.tokens) -------------------------------------

    @command
    def create_token(
        self,
        ctx: RequestContext,
        name: str,
        role: Role,
        valid_days: int | None = None,
        scope: TokenScope = UNSCOPED,
    ) -> tuple[str, Outcome]:
        """A new bearer token (returned once, stored only as a hash) and its outcome; with
        ``valid_days`` it stops being accepted that many days from now; with a ``scope``
        it acts only on those CAs and profiles."""
        return self._tokens.create(ctx, name, role, valid_days, scope)

    def authenticate(self, token: str) -> ApiToken | None:
        """The valid token record for ``token``, or None (unknown, revoked or malformed)."""
        return self._tokens.authenticate(token)

    def current_token(self, record_id: UUID) -> ApiToken | None:
        """The token record ``record_id`` while it is accepted, or None (unknown, revoked
        or expired): what a session made from that token stands for."""
        return self._tokens.current(record_id)

    @command
    def revoke_token(self, ctx: RequestContext, record_id: UUID) -> Outcome:
        """Stop accepting the token ``record_id``."""
        return self._tokens.revoke(ctx, record_id)

    # --- reads of one aggregate -----------------------------------------------------------

    def get_ca(self, ca_id: UUID, *, field: str | None = None) -> CertificateAuthority:
        """The CA ``ca_id``; NotFoundError if there is none."""
        return self._store.get_ca(ca_id, field=field)

    def get_certificate(self, certificate_id: UUID) -> Certificate:
        """The certificate ``certificate_id``; NotFoundError if there is none."""
        return self._store.get_certificate(certificate_id)

    def listed_certificate(self, certificate_id: UUID) -> Certificate:
        """The certificate unless deleted; NotFoundError for a deleted or unknown one."""
        return self._store.listed_certificate(certificate_id)

    def versions(self, *aggregate_ids: UUID) -> tuple[int | None, ...]:
        """The version of each aggregate's last recorded event (None for one that has no
        events), without loading them: what a cache of answers about them is keyed by."""
        return tuple(self._store.version(aggregate_id) for aggregate_id in aggregate_ids)

    def find_certificate(self, ca_id: UUID, serial_number: str) -> Certificate | None:
        """The certificate ``ca_id`` issued with ``serial_number`` (lower-case hex), if any."""
        return self._store.find_certificate(ca_id, serial_number)

    def chain_der(self, ca_id: UUID, issued_der: bytes | None = None) -> tuple[bytes, ...]:
        """The certificate of the CA's key that signed ``issued_der`` (by default its
        current key) followed by its parents' up to the root."""
        return self._store.chain_der(ca_id, issued_der)
