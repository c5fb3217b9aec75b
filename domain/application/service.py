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
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from eventsourcing.application import Application
from eventsourcing.domain import DomainEventProtocol, MutableOrImmutableAggregate
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
from domain.application.ports import Clock, Keys, WriteLocksFactory
from domain.application.publishing import Publishing
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
from domain.model.errors import PCAError, StorageNotDurableError
from domain.model.publication import Publication
from domain.model.tokens import ApiToken, Role
from domain.model.transcodings import register_all
from domain.model.values import RequestContext, RevocationReason
from domain.pki.formats import DownloadFormat, DownloadOptions

__all__ = ["Clock", "IssuedCertificate", "Outcome", "PrivateCA", "utc_now"]


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
        clock: Clock = utc_now,
        allow_memory: bool = False,
        write_locks: WriteLocksFactory = one_process,
    ) -> None:
        """The service on the event store ``env`` configures, signing with keys from
        ``keystore`` (owned and closed by the caller); ``write_locks`` makes the locks
        that let one process at a time record issuance for a CA."""
        super().__init__(env)
        self.integrity = Integrity()
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
        self._store = Store(self, keystore, clock, public_url)
        self._issuance = Issuance(self._store, self._write_locks)
        self._authorities = Authorities(self._store, self._issuance)
        self._exports = Exports(self._store)
        self._tokens = Tokens(self._store)
        self._publishing = Publishing(self._store)

    def close(self) -> None:
        self._write_locks.close()
        super().close()

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        """Record the changes, unless the log failed its audit chain (LogTamperedError):
        whatever path a change takes, nothing is appended to a forged history."""
        self.integrity.check()
        return super().save(*objs, **kwargs)

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
    ) -> Outcome:
        """A pending intermediate under the enabled root ``parent_id``."""
        return self._authorities.create_intermediate(ctx, parent_id, profile, idempotency_key)

    @command
    def enable_ca(self, ctx: RequestContext, ca_id: UUID) -> Outcome:
        """Enable; the first time, generate the CA key and have the certificate signed."""
        return self._authorities.enable(ctx, ca_id)

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
            now = self.clock()
            certificate.check_deletable(now)
            if certificate.key_id is not None:
                destroyed = self.keystore.destroy(certificate.key_id) or destroyed
            certificate.delete(ctx, now, key_destroyed=destroyed)
            return self._store.save(certificate_id, certificate)

        return retry_on_conflict(attempt)

    # --- revocation publishing (see domain.application.publishing) ----------------------

    def signing_material(
        self, ca_id: UUID
    ) -> tuple[x509.Certificate, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
        """The CA's certificate and private key, for signing CRLs and responder certificates."""
        return self._publishing.signing_material(ca_id)

    def publication(self, ctx: RequestContext, ca_id: UUID) -> Publication:
        """The CA's publication record (a new, unsaved one before its first CRL)."""
        return self._publishing.publication(ctx, ca_id)

    @command
    def certify_ocsp_responder(
        self, ctx: RequestContext, ca_id: UUID, lifetime: dt.timedelta
    ) -> Publication:
        """Issue a fresh delegated OCSP responder certificate for ``ca_id`` and record it."""
        return self._publishing.certify_ocsp_responder(ctx, ca_id, lifetime)

    # --- API tokens (see domain.application.tokens) -------------------------------------

    @command
    def create_token(
        self, ctx: RequestContext, name: str, role: Role, valid_days: int | None = None
    ) -> tuple[str, Outcome]:
        """A new bearer token (returned once, stored only as a hash) and its outcome; with
        ``valid_days`` it stops being accepted that many days from now."""
        return self._tokens.create(ctx, name, role, valid_days)

    def authenticate(self, token: str) -> ApiToken | None:
        """The valid token record for ``token``, or None (unknown, revoked or malformed)."""
        return self._tokens.authenticate(token)

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

    def chain_der(self, ca_id: UUID) -> tuple[bytes, ...]:
        """The CA's certificate followed by its parents' up to the root."""
        return self._store.chain_der(ca_id)
