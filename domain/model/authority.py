"""The CertificateAuthority aggregate: lifecycle, service period and quota of a root or an
intermediate CA, with the rules of DESIGN §2.

Public methods check the rules and then trigger an event; each event's ``apply`` only assigns.
Times, keys and certificates are made by the caller and travel in the events.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Sequence
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from domain.model.errors import (
    CANotEnabledError,
    CAStateError,
    QuotaError,
    ServicePeriodError,
    ValidationError,
    ValidityError,
)
from domain.model.events import AuditedCreated, AuditedEvent
from domain.model.values import (
    CAKind,
    CAStatus,
    KeyAlgorithm,
    RequestContext,
    RevocationReason,
    Subject,
)
from domain.pki.x509 import certificate_facts

ONE_YEAR_DAYS = 365
MAX_LEAF_DAYS = 36525  # 100 years
MAX_CA_YEARS = 50
MAX_SERVICE_DAYS = 36525
MAX_QUOTA_STEP = 10_000_000


def _check_range(field: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValidationError(
            f"{field} must be between {low} and {high}; got {value}.", field=field
        )


class CertificateAuthority(Aggregate):
    """A root (self-signed, holds the quota pool) or an intermediate (issues leaves)."""

    class CACreated(AuditedCreated):
        kind: CAKind
        parent_id: UUID | None
        subject: Subject
        key_algorithm: KeyAlgorithm
        validity_years: int
        service_days: int
        included_certificates: int

    class CAEnabled(AuditedEvent):
        key_id: str | None
        certificate_der: bytes | None
        service_until: dt.datetime | None

        def apply(self, ca: CertificateAuthority) -> None:
            ca.status = CAStatus.ENABLED
            if self.certificate_der is not None:
                ca.key_id = self.key_id
                ca.certificate_der = self.certificate_der
                ca.service_until = self.service_until

    class CADisabled(AuditedEvent):
        def apply(self, ca: CertificateAuthority) -> None:
            ca.status = CAStatus.DISABLED

    class CAServiceRenewed(AuditedEvent):
        service_days: int
        service_until: dt.datetime

        def apply(self, ca: CertificateAuthority) -> None:
            ca.service_days = self.service_days
            ca.service_until = self.service_until

    class CARevoked(AuditedEvent):
        reason: RevocationReason
        revoked_at: dt.datetime

        def apply(self, ca: CertificateAuthority) -> None:
            ca.status = CAStatus.REVOKED
            ca.revoked_at = self.revoked_at
            ca.revocation_reason = self.reason

    class QuotaPurchased(AuditedEvent):
        count: int

        def apply(self, ca: CertificateAuthority) -> None:
            ca.quota_total += self.count
            ca.quota_available += self.count

    class QuotaAssigned(AuditedEvent):
        """Recorded on the root: ``remaining`` is the intermediate's new remaining quota."""

        intermediate_id: UUID
        previous_remaining: int
        remaining: int

        def apply(self, ca: CertificateAuthority) -> None:
            ca.quota_available -= self.remaining - self.previous_remaining

    class QuotaReceived(AuditedEvent):
        """Recorded on the intermediate in the same save as the root's ``QuotaAssigned``."""

        root_id: UUID
        remaining: int

        def apply(self, ca: CertificateAuthority) -> None:
            ca.quota_remaining = self.remaining

    class QuotaConsumed(AuditedEvent):
        """One unit spent on the certificate saved together with this event.

        Written before group commit; logs from then on use :class:`QuotaSpent`, and both
        are read (replay, read models, reports) so older logs keep their meaning.
        """

        certificate_id: UUID
        serial_number: str

        def apply(self, ca: CertificateAuthority) -> None:
            ca.quota_remaining -= 1
            ca.issued_count += 1

    class QuotaSpent(AuditedEvent):
        """One unit per certificate saved together with this event, all for one request.

        One event per request and group rather than per certificate: a batch of 1000 adds
        one event to the CA, not 1000, so the CA stays cheap to save, load and replay.
        """

        certificate_ids: list[UUID]
        serial_numbers: list[str]

        def apply(self, ca: CertificateAuthority) -> None:
            ca.quota_remaining -= len(self.certificate_ids)
            ca.issued_count += len(self.certificate_ids)

    def __init__(
        self,
        kind: CAKind,
        parent_id: UUID | None,
        subject: Subject,
        key_algorithm: KeyAlgorithm,
        validity_years: int,
        service_days: int,
        included_certificates: int,
    ) -> None:
        self.kind = kind
        self.parent_id = parent_id
        self.subject = subject
        self.key_algorithm = key_algorithm
        self.validity_years = validity_years
        self.service_days = service_days
        self.status = CAStatus.PENDING
        self.key_id: str | None = None
        self.certificate_der: bytes | None = None
        self.service_until: dt.datetime | None = None
        self.revoked_at: dt.datetime | None = None
        self.revocation_reason: RevocationReason | None = None
        self.quota_total = included_certificates
        self.quota_available = included_certificates
        self.quota_remaining = 0
        self.issued_count = 0

    def __deepcopy__(self, memo: dict[int, object]) -> CertificateAuthority:
        # The repository deep-copies cached aggregates on every load. All attributes are
        # immutable values (frozen dataclasses, enums, bytes, datetimes), so a shallow copy
        # with its own pending-event list is a deep copy, at a fraction of the cost.
        clone = copy.copy(self)
        clone.__dict__["_pending_events"] = list(self.pending_events)
        return clone

    # --- creation -------------------------------------------------------------------------

    @classmethod
    def create_root(
        cls,
        ctx: RequestContext,
        subject: Subject,
        key_algorithm: KeyAlgorithm,
        lifetime: tuple[int, int],
        included_certificates: int = 0,
    ) -> CertificateAuthority:
        """A pending root; ``lifetime`` is (validity_years, service_days)."""
        _check_lifetime(*lifetime)
        _check_range("included_certificates", included_certificates, 0, MAX_QUOTA_STEP)
        return cls._create_ca(
            ctx, CAKind.ROOT, None, subject, key_algorithm, lifetime, included_certificates
        )

    @classmethod
    def create_intermediate(
        cls,
        ctx: RequestContext,
        parent: CertificateAuthority,
        subject: Subject,
        key_algorithm: KeyAlgorithm,
        lifetime: tuple[int, int],
        now: dt.datetime,
    ) -> CertificateAuthority:
        """A pending intermediate under ``parent``, which must be an enabled root."""
        _check_lifetime(*lifetime)
        if parent.kind is not CAKind.ROOT:
            raise CAStateError(
                "Intermediates are created under a root CA; pass a root's id as parent_id.",
                field="parent_id",
            )
        parent.require_enabled(now)
        parent.check_child_validity(now, lifetime[0])
        return cls._create_ca(
            ctx, CAKind.INTERMEDIATE, parent.id, subject, key_algorithm, lifetime, 0
        )

    @classmethod
    def _create_ca(
        cls,
        ctx: RequestContext,
        kind: CAKind,
        parent_id: UUID | None,
        subject: Subject,
        key_algorithm: KeyAlgorithm,
        lifetime: tuple[int, int],
        included_certificates: int,
    ) -> CertificateAuthority:
        return cls._create(
            cls.CACreated,
            id=uuid4(),
            actor=ctx.actor,
            request_id=ctx.request_id,
            kind=kind,
            parent_id=parent_id,
            subject=subject,
            key_algorithm=key_algorithm,
            validity_years=lifetime[0],
            service_days=lifetime[1],
            included_certificates=included_certificates,
        )

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def not_before(self) -> dt.datetime | None:
        """Start of the CA certificate's validity, once it exists."""
        if self.certificate_der is None:
            return None
        return certificate_facts(self.certificate_der).not_before

    @property
    def not_after(self) -> dt.datetime | None:
        """End of the CA certificate's validity, once it exists."""
        if self.certificate_der is None:
            return None
        return certificate_facts(self.certificate_der).not_after

    @property
    def needs_certificate(self) -> bool:
        """True until the first enablement made the key and certificate."""
        return self.certificate_der is None

    def signing_identity(self) -> tuple[bytes, str]:
        """The CA's certificate (DER) and key id; CAStateError before the first enablement."""
        if self.certificate_der is None or self.key_id is None:
            raise CANotEnabledError(f"CA {self.id} has no key yet; enable it first.")
        return self.certificate_der, self.key_id

    def validity_window(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The window for this CA's own certificate when enabled at ``now``."""
        return now, _add_years(now, self.validity_years)

    def enable(
        self,
        ctx: RequestContext,
        now: dt.datetime,
        key_id: str | None = None,
        certificate_der: bytes | None = None,
    ) -> None:
        """Enable; the first time, ``key_id`` and ``certificate_der`` must be given."""
        if self.status is CAStatus.REVOKED:
            raise CAStateError("This CA was revoked; a revoked CA cannot be enabled again.")
        if self.status is CAStatus.ENABLED:
            raise CAStateError("This CA is already enabled.")
        if self.needs_certificate != (certificate_der is not None):
            raise CAStateError("A CA gets its key and certificate at its first enablement only.")
        service_until = now + dt.timedelta(days=self.service_days) if certificate_der else None
        self.trigger_event(
            self.CAEnabled,
            actor=ctx.actor,
            request_id=ctx.request_id,
            key_id=key_id,
            certificate_der=certificate_der,
            service_until=service_until,
        )

    def disable(self, ctx: RequestContext) -> None:
        """Stop issuing (and assigning) until enabled again."""
        if self.status is not CAStatus.ENABLED:
            raise CAStateError(
                f"Only an enabled CA can be disabled; this one is {self.status.value}."
            )
        self.trigger_event(self.CADisabled, actor=ctx.actor, request_id=ctx.request_id)

    def renew_service(self, ctx: RequestContext, service_days: int, now: dt.datetime) -> None:
        """Extend the service period by ``service_days`` from its end (or from now if over)."""
        _check_range("service_days", service_days, 1, MAX_SERVICE_DAYS)
        if self.status is CAStatus.REVOKED:
            raise CAStateError("A revoked CA cannot be renewed.")
        if self.service_until is None:
            raise CANotEnabledError("Enable the CA first; its service period starts then.")
        start = max(now, self.service_until)
        self.trigger_event(
            self.CAServiceRenewed,
            actor=ctx.actor,
            request_id=ctx.request_id,
            service_days=service_days,
            service_until=start + dt.timedelta(days=service_days),
        )

    def revoke(self, ctx: RequestContext, reason: RevocationReason, now: dt.datetime) -> None:
        """Revoke an intermediate's certificate: final, and it stops issuing."""
        if self.kind is CAKind.ROOT:
            raise CAStateError("A root CA cannot be revoked here; disable it instead.")
        if self.status is CAStatus.REVOKED:
            raise CAStateError("This CA is already revoked; revocation is final.")
        if self.certificate_der is None:
            raise CAStateError("This CA has no certificate yet; there is nothing to revoke.")
        self.trigger_event(
            self.CARevoked,
            actor=ctx.actor,
            request_id=ctx.request_id,
            reason=reason,
            revoked_at=now,
        )

    def require_enabled(self, now: dt.datetime) -> None:
        """Raise unless the CA is enabled and its certificate is still valid at ``now``."""
        label = f"{self.kind.value} CA {self.id}"
        if self.status is not CAStatus.ENABLED:
            raise CANotEnabledError(f"The {label} is {self.status.value}; enable it first.")
        not_after = self.not_after
        if not_after is not None and now >= not_after:
            raise CAStateError(f"The {label}'s certificate expired on {not_after.isoformat()}.")

    def check_child_validity(self, now: dt.datetime, validity_years: int) -> None:
        """Raise if a child certificate of ``validity_years`` would outlive this CA's."""
        not_after = self.not_after
        if not_after is not None and _add_years(now, validity_years) > not_after:
            raise ValidityError(
                f"validity_years is too long: the parent's certificate ends on "
                f"{not_after.date().isoformat()}; choose fewer years.",
                field="validity_years",
            )

    # --- quota ----------------------------------------------------------------------------

    def purchase_quota(self, ctx: RequestContext, count: int) -> None:
        """Add ``count`` certificates to a root's pool."""
        _check_range("count", count, 1, MAX_QUOTA_STEP)
        if self.kind is not CAKind.ROOT:
            raise CAStateError("Quota is purchased for a root CA, then assigned to intermediates.")
        if self.status is CAStatus.REVOKED:
            raise CAStateError("A revoked CA cannot receive quota.")
        self.trigger_event(
            self.QuotaPurchased, actor=ctx.actor, request_id=ctx.request_id, count=count
        )

    def assign_quota(
        self,
        ctx: RequestContext,
        intermediate: CertificateAuthority,
        remaining: int,
        now: dt.datetime,
    ) -> None:
        """Set ``intermediate``'s remaining quota; the difference moves to or from the pool."""
        _check_range("remaining", remaining, 0, MAX_QUOTA_STEP)
        if intermediate.parent_id != self.id:
            raise CAStateError(
                f"CA {intermediate.id} is not an intermediate of root {self.id}; "
                "assign quota from its own root.",
                field="intermediate_id",
            )
        self.require_enabled(now)
        intermediate.require_enabled(now)
        previous = intermediate.quota_remaining
        needed = remaining - previous
        if needed > self.quota_available:
            raise QuotaError(
                f"The root has {self.quota_available} unassigned certificates but raising the "
                f"intermediate from {previous} to {remaining} needs {needed}; purchase more "
                "quota or assign less.",
                field="remaining",
            )
        self.trigger_event(
            self.QuotaAssigned,
            actor=ctx.actor,
            request_id=ctx.request_id,
            intermediate_id=intermediate.id,
            previous_remaining=previous,
            remaining=remaining,
        )
        intermediate.trigger_event(
            intermediate.QuotaReceived,
            actor=ctx.actor,
            request_id=ctx.request_id,
            root_id=self.id,
            remaining=remaining,
        )

    @property
    def quota_assigned(self) -> int:
        """Certificates a root has moved from its pool to its intermediates."""
        return self.quota_total - self.quota_available

    # --- issuance -------------------------------------------------------------------------

    def check_can_issue(self, now: dt.datetime) -> None:
        """Raise unless this CA may issue an end-entity certificate at ``now``."""
        self.check_can_sign(now)
        if self.quota_remaining <= 0:
            raise no_quota_left()

    def check_can_sign(self, now: dt.datetime) -> None:
        """Every rule of :meth:`check_can_issue` but quota, which a batch spends per item."""
        if self.kind is CAKind.ROOT:
            raise CAStateError(
                "Root CAs never issue end-entity certificates; request from an intermediate."
            )
        self.require_enabled(now)
        assert self.service_until is not None
        if now >= self.service_until:
            raise ServicePeriodError(
                f"The CA's service period ended on {self.service_until.isoformat()}; renew it."
            )

    def leaf_window(self, now: dt.datetime, validity_days: int) -> tuple[dt.datetime, dt.datetime]:
        """The (not_before, not_after) of a leaf valid ``validity_days`` from ``now``."""
        _check_range("validity_days", validity_days, 1, MAX_LEAF_DAYS)
        not_after = now + dt.timedelta(days=validity_days)
        limit, why = self._leaf_limit()
        if not_after > limit:
            allowed = max((limit - now).days, 0)
            raise ValidityError(
                f"validity_days must be at most {allowed}: a certificate may not outlive {why} "
                f"({limit.date().isoformat()}).",
                field="validity_days",
            )
        ca_not_before = self.not_before
        assert ca_not_before is not None
        return max(now - dt.timedelta(minutes=1), ca_not_before), not_after

    def _leaf_limit(self) -> tuple[dt.datetime, str]:
        ca_not_after = self.not_after
        assert ca_not_after is not None
        assert self.service_until is not None
        if self.service_days < ONE_YEAR_DAYS and self.service_until < ca_not_after:
            return self.service_until, "the CA's service period"
        return ca_not_after, "the issuing CA's certificate"

    def spend_quota(
        self, ctx: RequestContext, spent: Sequence[tuple[UUID, str]], now: dt.datetime
    ) -> None:
        """Spend one unit per (certificate id, serial number), re-checking every rule."""
        self.check_can_sign(now)
        if len(spent) > self.quota_remaining:
            raise no_quota_left()
        self.trigger_event(
            self.QuotaSpent,
            actor=ctx.actor,
            request_id=ctx.request_id,
            certificate_ids=[certificate_id for certificate_id, _ in spent],
            serial_numbers=[serial_number for _, serial_number in spent],
        )


def no_quota_left() -> QuotaError:
    return QuotaError("The intermediate CA has no remaining quota; assign more from its root.")


def _check_lifetime(validity_years: int, service_days: int) -> None:
    _check_range("validity_years", validity_years, 1, MAX_CA_YEARS)
    _check_range("service_days", service_days, 1, MAX_SERVICE_DAYS)


def _add_years(moment: dt.datetime, years: int) -> dt.datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + years, day=28)
