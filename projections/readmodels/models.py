"""Typed values the read models return. Nothing here touches a database."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar
from uuid import UUID

from domain.model.values import (
    SAN,
    CAKind,
    CertificateType,
    KeyAlgorithm,
    KeyStorage,
    RevocationReason,
    Subject,
)

T = TypeVar("T")


class CAViewStatus(Enum):
    """A CA's status as a list shows it: the stored lifecycle plus expiry from the clock."""

    PENDING = "pending"
    ENABLED = "enabled"
    DISABLED = "disabled"
    REVOKED = "revoked"
    EXPIRED = "expired"


class CertificateViewStatus(Enum):
    """A certificate's status as a list shows it; deleted certificates are not listed."""

    ISSUED = "issued"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True)
class RootQuota:
    """A root's pool: ``assigned`` went to its intermediates, ``available`` is left."""

    total: int
    assigned: int
    available: int


@dataclass(frozen=True)
class IntermediateQuota:
    """An intermediate's quota: units it may still spend and units it has spent."""

    remaining: int
    issued: int


@dataclass(frozen=True)
class CertificateCounts:
    """End-entity certificates of one issuer by status (an expired one is not issued)."""

    issued: int
    revoked: int
    expired: int
    deleted: int


@dataclass(frozen=True)
class KeyGenerationView:
    """One key a CA has had, numbered from 1, with its CA certificate's serial, subject key
    identifier (lower-case hex) and validity; ``current`` marks the key it signs with now,
    ``retired_at`` when a previous key was retired (its material destroyed)."""

    generation: int
    key_storage: KeyStorage
    serial_number: str
    subject_key_identifier: str | None
    not_before: dt.datetime
    not_after: dt.datetime
    current: bool
    retired_at: dt.datetime | None = None


@dataclass(frozen=True)
class CAView:
    """One CA as the CA list shows it."""

    id: UUID
    kind: CAKind
    parent_id: UUID | None
    subject: Subject
    key_algorithm: KeyAlgorithm
    status: CAViewStatus
    serial_number: str | None
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    validity_years: int
    service_days: int
    service_until: dt.datetime | None
    quota: RootQuota | IntermediateQuota
    certificates: CertificateCounts
    revoked_at: dt.datetime | None
    revocation_reason: RevocationReason | None
    created_at: dt.datetime
    created_by: str
    key_generations: tuple[KeyGenerationView, ...] = ()


@dataclass(frozen=True)
class CertificateView:
    """One end-entity certificate as the certificate list shows it."""

    id: UUID
    issuer_id: UUID
    serial_number: str
    type: CertificateType
    name: str
    common_name: str
    sans: tuple[SAN, ...]
    key_algorithm: KeyAlgorithm
    not_before: dt.datetime
    not_after: dt.datetime
    status: CertificateViewStatus
    revoked_at: dt.datetime | None
    revocation_reason: RevocationReason | None
    requested_by: str
    issued_at: dt.datetime
    position: int
    issuer_revoked_at: dt.datetime | None  # its issuing CA was revoked then: chain invalid


@dataclass(frozen=True)
class CertificateFilter:
    """What a certificate list is narrowed to; every field left as None matches all.

    ``text`` matches a case-insensitive substring of the common name or of any SAN value;
    ``expiring_before`` keeps certificates whose not_after is earlier than it.
    """

    issuer_id: UUID | None = None
    status: CertificateViewStatus | None = None
    type: CertificateType | None = None
    text: str | None = None
    expiring_before: dt.datetime | None = None
    issuer_revoked: bool | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, newest first; ``next_cursor`` is None on the last page."""

    items: tuple[T, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class RevocationEntry:
    """One revoked certificate in its issuer's revocation index.

    ``certificate_id`` is the revoked end-entity certificate's id or, in a root's index,
    the revoked intermediate CA's id. Entries outlive deletion: a deleted certificate is
    still revoked.
    """

    issuer_id: UUID
    serial_number: str
    certificate_id: UUID
    revoked_at: dt.datetime
    reason: RevocationReason
    not_after: dt.datetime
    position: int
