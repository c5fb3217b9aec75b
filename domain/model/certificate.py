"""The Certificate aggregate (one issued end-entity certificate) and the IssuanceRequest
aggregate that makes an idempotency key unique.

Both ids are deterministic (uuid5), so the event store itself rejects a second certificate
with the same serial under one issuer and a second use of an idempotency key.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from eventsourcing.domain import Aggregate

from domain.model.errors import CertificateStateError
from domain.model.events import AuditedCreated, AuditedEvent
from domain.model.policy import DEFAULT_PROFILE
from domain.model.values import (
    SAN,
    CertificateStatus,
    CertificateType,
    KeyAlgorithm,
    RequestContext,
    RevocationReason,
    Subject,
)

IDEMPOTENCY_NAMESPACE = uuid5(NAMESPACE_URL, "urn:pca:idempotency-key")


def certificate_id(ca_id: UUID, serial_number: str) -> UUID:
    """The id of the certificate with ``serial_number`` (lower-case hex) under ``ca_id``."""
    return uuid5(ca_id, serial_number)


def issuance_request_id(ca_id: UUID, idempotency_key: str) -> UUID:
    """The id that makes ``idempotency_key`` unique per issuing CA."""
    return uuid5(IDEMPOTENCY_NAMESPACE, f"{ca_id}/{idempotency_key}")


@dataclass(frozen=True)
class IssuedFacts:
    """Everything decided before the certificate was signed, as the event records it."""

    ca_id: UUID
    type: CertificateType
    name: str
    subject: Subject
    sans: tuple[SAN, ...]
    key_algorithm: KeyAlgorithm
    key_id: str | None
    include_crl: bool
    certificate_der: bytes
    serial_number: str  # lower-case hex, as read from the signed certificate
    not_before: dt.datetime
    not_after: dt.datetime
    profile: str = DEFAULT_PROFILE
    profile_version: int = 1

    @classmethod
    def of(cls, certificate: x509.Certificate, **decided: Any) -> IssuedFacts:
        """The facts of ``certificate``, signed with what was ``decided``."""
        return cls(
            **decided,
            certificate_der=certificate.public_bytes(Encoding.DER),
            serial_number=format(certificate.serial_number, "x"),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
        )


class Certificate(Aggregate):
    """An end-entity certificate: issued, then perhaps revoked, then perhaps deleted."""

    class CertificateIssued(AuditedCreated):
        ca_id: UUID
        serial_number: str
        type: CertificateType
        name: str
        subject: Subject
        sans: list[SAN]
        key_algorithm: KeyAlgorithm
        key_id: str | None
        include_crl: bool
        not_before: dt.datetime
        not_after: dt.datetime
        certificate_der: bytes
        # Events stored before profiles existed lack these; they were issued under what
        # is now the default profile's first version.
        profile: str = DEFAULT_PROFILE
        profile_version: int = 1

    class CertificateRevoked(AuditedEvent):
        reason: RevocationReason
        revoked_at: dt.datetime

        def apply(self, certificate: Certificate) -> None:
            certificate.status = CertificateStatus.REVOKED
            certificate.revoked_at = self.revoked_at
            certificate.revocation_reason = self.reason

    class PrivateKeyExported(AuditedEvent):
        """Who took the service-held private key out, and in which format (state is unchanged)."""

        ca_id: UUID
        serial_number: str
        format: str

        def apply(self, certificate: Certificate) -> None:
            del certificate

    class CertificateDeleted(AuditedEvent):
        key_destroyed: bool

        def apply(self, certificate: Certificate) -> None:
            certificate.status = CertificateStatus.DELETED
            certificate.key_id = None

    def __init__(
        self,
        ca_id: UUID,
        serial_number: str,
        type: CertificateType,
        name: str,
        subject: Subject,
        sans: list[SAN],
        key_algorithm: KeyAlgorithm,
        key_id: str | None,
        include_crl: bool,
        not_before: dt.datetime,
        not_after: dt.datetime,
        certificate_der: bytes,
        profile: str = DEFAULT_PROFILE,
        profile_version: int = 1,
    ) -> None:
        self.ca_id = ca_id
        self.serial_number = serial_number
        self.type = type
        self.name = name
        self.subject = subject
        self.sans = tuple(sans)
        self.key_algorithm = key_algorithm
        self.key_id = key_id
        self.include_crl = include_crl
        self.not_before = not_before
        self.not_after = not_after
        self.certificate_der = certificate_der
        self.profile = profile
        self.profile_version = profile_version
        self.status = CertificateStatus.ISSUED
        self.revoked_at: dt.datetime | None = None
        self.revocation_reason: RevocationReason | None = None

    @classmethod
    def issue(cls, ctx: RequestContext, facts: IssuedFacts) -> Certificate:
        """Record a certificate that the issuer has already signed."""
        return cls._create(
            cls.CertificateIssued,
            id=certificate_id(facts.ca_id, facts.serial_number),
            actor=ctx.actor,
            request_id=ctx.request_id,
            ca_id=facts.ca_id,
            serial_number=facts.serial_number,
            type=facts.type,
            name=facts.name,
            subject=facts.subject,
            sans=list(facts.sans),
            key_algorithm=facts.key_algorithm,
            key_id=facts.key_id,
            include_crl=facts.include_crl,
            not_before=facts.not_before,
            not_after=facts.not_after,
            certificate_der=facts.certificate_der,
            profile=facts.profile,
            profile_version=facts.profile_version,
        )

    def is_expired(self, now: dt.datetime) -> bool:
        """True once ``now`` is past not_after; expiry needs no event."""
        return now >= self.not_after

    def revoke(self, ctx: RequestContext, reason: RevocationReason, now: dt.datetime) -> None:
        """Revoke now; revocation is immediate and final."""
        if self.status is CertificateStatus.DELETED:
            raise CertificateStateError("This certificate was deleted; it cannot be revoked.")
        if self.status is CertificateStatus.REVOKED:
            raise CertificateStateError("This certificate is already revoked; revocation is final.")
        self.trigger_event(
            self.CertificateRevoked,
            actor=ctx.actor,
            request_id=ctx.request_id,
            reason=reason,
            revoked_at=now,
        )

    def export_key(self, ctx: RequestContext, file_format: str) -> None:
        """Record that the held private key leaves the service as ``file_format``."""
        if self.key_id is None:
            raise CertificateStateError(
                "The service holds no private key for this certificate (it came from a CSR, "
                "or was deleted); choose pem, der or pkcs7.",
                field="format",
            )
        self.trigger_event(
            self.PrivateKeyExported,
            actor=ctx.actor,
            request_id=ctx.request_id,
            ca_id=self.ca_id,
            serial_number=self.serial_number,
            format=file_format,
        )

    def check_deletable(self, now: dt.datetime) -> None:
        """Raise unless the certificate is revoked or expired (and not deleted already)."""
        if self.status is CertificateStatus.DELETED:
            raise CertificateStateError("This certificate is already deleted.")
        if self.status is CertificateStatus.ISSUED and not self.is_expired(now):
            raise CertificateStateError(
                "Only revoked or expired certificates can be deleted; revoke it first."
            )

    def delete(self, ctx: RequestContext, now: dt.datetime, *, key_destroyed: bool) -> None:
        """Remove from the list for good; the held key (if any) was destroyed by the caller."""
        self.check_deletable(now)
        self.trigger_event(
            self.CertificateDeleted,
            actor=ctx.actor,
            request_id=ctx.request_id,
            key_destroyed=key_destroyed,
        )


class IssuanceRequest(Aggregate):
    """Binds an idempotency key to the request's fingerprint and the certificate it made."""

    class IssuanceRequested(AuditedCreated):
        ca_id: UUID
        idempotency_key: str
        fingerprint: str
        certificate_id: UUID

    def __init__(
        self, ca_id: UUID, idempotency_key: str, fingerprint: str, certificate_id: UUID
    ) -> None:
        self.ca_id = ca_id
        self.idempotency_key = idempotency_key
        self.fingerprint = fingerprint
        self.certificate_id = certificate_id

    @classmethod
    def record(
        cls,
        ctx: RequestContext,
        ca_id: UUID,
        idempotency_key: str,
        fingerprint: str,
        certificate_id: UUID,
    ) -> IssuanceRequest:
        """Claim ``idempotency_key`` for ``certificate_id``; a second claim fails on save."""
        return cls._create(
            cls.IssuanceRequested,
            id=issuance_request_id(ca_id, idempotency_key),
            actor=ctx.actor,
            request_id=ctx.request_id,
            ca_id=ca_id,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            certificate_id=certificate_id,
        )
