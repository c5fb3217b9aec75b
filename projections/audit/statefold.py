"""The fold behind point-in-time state: CAs, certificates and revoked lists kept in memory
while the log is read, with the same rules as the read models, then judged at the cut's
time (expiry) and frozen into an :class:`AuditState`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

from domain.model.authority import CertificateAuthority
from domain.model.certificate import Certificate
from domain.model.certificate_facts import certificate_facts, subject_key_identifier
from domain.model.values import (
    CAKind,
    CAStatus,
    KeyAlgorithm,
    KeyStorage,
    RevocationReason,
    Subject,
)
from projections.audit.certtable import CertificateAuditStatus, CertificateState, CertificateTable
from projections.audit.logcut import Cut
from projections.readmodels.models import (
    CAView,
    CAViewStatus,
    CertificateCounts,
    IntermediateQuota,
    KeyGenerationView,
    RevocationEntry,
    RootQuota,
)

CA = CertificateAuthority


@dataclass(frozen=True)
class AuditState:
    """Everything at a cut: ``cas`` oldest first, ``certificates`` in issuance order
    (deleted ones included), and each CA's revoked list sorted by serial as text (a
    root's lists its revoked intermediates), with an entry for every CA."""

    position: int
    time: dt.datetime | None
    cas: tuple[CAView, ...]
    certificates: Sequence[CertificateState]  # a CertificateTable: compact columns
    revoked: Mapping[UUID, tuple[RevocationEntry, ...]]


@dataclass
class _CARecord:
    """A CA while folding; the read models' ``rm_cas`` row, in memory."""

    id: UUID
    kind: CAKind
    parent_id: UUID | None
    subject: Subject
    key_algorithm: KeyAlgorithm
    validity_years: int
    service_days: int
    created_at: dt.datetime
    created_by: str
    quota_total: int
    quota_available: int
    status: CAStatus = CAStatus.PENDING
    serial_number: str | None = None
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    service_until: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    revocation_reason: RevocationReason | None = None
    quota_remaining: int = 0
    quota_used: int = 0
    issued: int = 0  # stored status issued, expired ones included
    revoked: int = 0
    deleted: int = 0
    expired: int = 0  # counted when the fold finishes
    keys: list[KeyGenerationView] = dataclasses.field(default_factory=list)

    def add_key(self, storage: KeyStorage, certificate_der: bytes) -> None:
        """The next key generation (``rm_ca_keys``), which becomes the current one."""
        facts = certificate_facts(certificate_der)
        ski = subject_key_identifier(certificate_der)
        self.keys = [dataclasses.replace(key, current=False) for key in self.keys]
        self.keys.append(
            KeyGenerationView(
                generation=len(self.keys) + 1,
                key_storage=storage,
                serial_number=facts.serial_number,
                subject_key_identifier=None if ski is None else ski.hex(),
                not_before=facts.not_before,
                not_after=facts.not_after,
                current=True,
            )
        )


class StateFold:
    """The :class:`~projections.fold.EventFold` of point-in-time state, in memory;
    ``finish`` judges expiry and freezes the result."""

    def __init__(self) -> None:
        self._cas: dict[UUID, _CARecord] = {}
        self._certificates = CertificateTable()
        self._revoked: dict[UUID, list[RevocationEntry]] = {}

    def finish(self, cut: Cut) -> AuditState:
        if cut.time is not None:
            for issuer_id, count in self._certificates.expire(cut.time).items():
                self._cas[issuer_id].expired += count
        return AuditState(
            position=cut.position,
            time=cut.time,
            cas=tuple(_ca_view(record, cut.time) for record in self._cas.values()),
            certificates=self._certificates,
            revoked={
                ca_id: tuple(sorted(self._revoked.get(ca_id, ()), key=_by_serial))
                for ca_id in self._cas
            },
        )

    # --- CAs ------------------------------------------------------------------------------

    def add_ca(self, event: CA.CACreated, position: int) -> None:
        self._cas[event.originator_id] = _CARecord(
            id=event.originator_id,
            kind=event.kind,
            parent_id=event.parent_id,
            subject=event.subject,
            key_algorithm=event.key_algorithm,
            validity_years=event.validity_years,
            service_days=event.service_days,
            created_at=event.timestamp,
            created_by=event.actor,
            quota_total=event.included_certificates,
            quota_available=event.included_certificates,
        )

    def enable_ca(self, event: CA.CAEnabled) -> None:
        ca = self._cas[event.originator_id]
        ca.status = CAStatus.ENABLED
        if event.certificate_der is not None:
            certificate = certificate_facts(event.certificate_der)
            ca.serial_number = certificate.serial_number
            ca.not_before = certificate.not_before
            ca.not_after = certificate.not_after
            ca.service_until = event.service_until
            ca.add_key(event.key_storage, event.certificate_der)

    def roll_over_ca(self, event: CA.CAKeyRolledOver) -> None:
        ca = self._cas[event.originator_id]
        certificate = certificate_facts(event.certificate_der)
        ca.serial_number = certificate.serial_number
        ca.not_before = certificate.not_before
        ca.not_after = certificate.not_after
        ca.add_key(event.key_storage, event.certificate_der)

    def retire_ca_key(self, event: CA.CAKeyRetired) -> None:
        keys = self._cas[event.originator_id].keys
        index = event.generation - 1
        keys[index] = dataclasses.replace(keys[index], retired_at=event.timestamp)

    def disable_ca(self, event: CA.CADisabled) -> None:
        self._cas[event.originator_id].status = CAStatus.DISABLED

    def renew_ca(self, event: CA.CAServiceRenewed) -> None:
        ca = self._cas[event.originator_id]
        ca.service_days = event.service_days
        ca.service_until = event.service_until

    def revoke_ca(self, event: CA.CARevoked, position: int) -> None:
        """Revoked; the CA's certificate enters its parent's revoked list."""
        ca = self._cas[event.originator_id]
        ca.status = CAStatus.REVOKED
        ca.revoked_at = event.revoked_at
        ca.revocation_reason = event.reason
        if ca.parent_id is not None and ca.serial_number is not None:
            assert ca.not_after is not None
            self._revoked.setdefault(ca.parent_id, []).append(
                RevocationEntry(
                    issuer_id=ca.parent_id,
                    serial_number=ca.serial_number,
                    certificate_id=ca.id,
                    revoked_at=event.revoked_at,
                    reason=event.reason,
                    not_after=ca.not_after,
                    position=position,
                )
            )

    # --- quota ----------------------------------------------------------------------------

    def purchase_quota(self, event: CA.QuotaPurchased) -> None:
        ca = self._cas[event.originator_id]
        ca.quota_total += event.count
        ca.quota_available += event.count

    def assign_quota(self, event: CA.QuotaAssigned) -> None:
        self._cas[event.originator_id].quota_available -= event.remaining - event.previous_remaining

    def receive_quota(self, event: CA.QuotaReceived) -> None:
        self._cas[event.originator_id].quota_remaining = event.remaining

    def consume_quota(self, ca_id: UUID, units: int) -> None:
        ca = self._cas[ca_id]
        ca.quota_remaining -= units
        ca.quota_used += units

    # --- certificates ---------------------------------------------------------------------

    def add_certificate(self, event: Certificate.CertificateIssued, position: int) -> None:
        issuer = self._cas[event.ca_id]
        issuer.issued += 1
        self._certificates.add(event.originator_id, issuer.id, event.serial_number, event.not_after)

    def revoke_certificate(self, event: Certificate.CertificateRevoked, position: int) -> None:
        """Revoked; the certificate enters its issuer's revoked list."""
        table = self._certificates
        row = table.row(event.originator_id)
        issuer = self._cas[table.issuer_id(row)]
        issuer.issued -= 1
        issuer.revoked += 1
        table.revoke(row, event.revoked_at, event.reason)
        self._revoked.setdefault(issuer.id, []).append(
            RevocationEntry(
                issuer_id=issuer.id,
                serial_number=table.serial_number(row),
                certificate_id=event.originator_id,
                revoked_at=event.revoked_at,
                reason=event.reason,
                not_after=table.not_after(row),
                position=position,
            )
        )

    def delete_certificate(self, event: Certificate.CertificateDeleted) -> None:
        """Off the lists; its revoked-list entry, if any, stays."""
        table = self._certificates
        row = table.row(event.originator_id)
        issuer = self._cas[table.issuer_id(row)]
        issuer.deleted += 1
        if table.status(row) is CertificateAuditStatus.REVOKED:
            issuer.revoked -= 1
        else:
            issuer.issued -= 1
        table.delete(row)


def _by_serial(entry: RevocationEntry) -> str:
    return entry.serial_number


def _ca_view(record: _CARecord, time: dt.datetime | None) -> CAView:
    quota: RootQuota | IntermediateQuota
    if record.kind is CAKind.ROOT:
        quota = RootQuota(
            total=record.quota_total,
            assigned=record.quota_total - record.quota_available,
            available=record.quota_available,
        )
    else:
        quota = IntermediateQuota(remaining=record.quota_remaining, issued=record.quota_used)
    return CAView(
        id=record.id,
        kind=record.kind,
        parent_id=record.parent_id,
        subject=record.subject,
        key_algorithm=record.key_algorithm,
        status=_ca_status(record, time),
        serial_number=record.serial_number,
        not_before=record.not_before,
        not_after=record.not_after,
        validity_years=record.validity_years,
        service_days=record.service_days,
        service_until=record.service_until,
        quota=quota,
        certificates=CertificateCounts(
            issued=record.issued - record.expired,
            revoked=record.revoked,
            expired=record.expired,
            deleted=record.deleted,
        ),
        revoked_at=record.revoked_at,
        revocation_reason=record.revocation_reason,
        created_at=record.created_at,
        created_by=record.created_by,
        key_generations=tuple(record.keys),
    )


def _ca_status(record: _CARecord, time: dt.datetime | None) -> CAViewStatus:
    """As the CA list judges it: an enabled or disabled CA past its certificate's end is
    expired; pending and revoked stay as they are."""
    live = record.status in (CAStatus.ENABLED, CAStatus.DISABLED)
    if live and time is not None and record.not_after is not None and record.not_after <= time:
        return CAViewStatus.EXPIRED
    return CAViewStatus(record.status.value)
