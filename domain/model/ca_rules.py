"""The rules a CA's state imposes on what it may sign, and for how long: its certificate's
validity window, its service period, and the limits of every number a CA command takes.

:class:`SigningRules` only reads state; it is mixed into the
:class:`~domain.model.authority.CertificateAuthority` aggregate, whose methods raise the events.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol
from uuid import UUID

from domain.model.certificate_facts import certificate_facts
from domain.model.errors import (
    CANotEnabledError,
    CAStateError,
    LifetimeError,
    QuotaError,
    ServicePeriodError,
    ValidationError,
)
from domain.model.values import CAKind, CAStatus, KeyRef, KeyStorage

ONE_YEAR_DAYS = 365
MAX_LEAF_DAYS = 36525  # 100 years
MAX_CA_YEARS = 50
MAX_SERVICE_DAYS = 36525
MAX_QUOTA_STEP = 10_000_000


class CAState(Protocol):
    """The state of a CA the rules read."""

    @property
    def id(self) -> UUID: ...

    kind: CAKind
    status: CAStatus
    key_id: str | None
    key_storage: KeyStorage
    certificate_der: bytes | None
    validity_years: int
    service_days: int
    service_until: dt.datetime | None
    quota_remaining: int

    @property
    def not_before(self) -> dt.datetime | None: ...

    @property
    def not_after(self) -> dt.datetime | None: ...

    def require_enabled(self, now: dt.datetime) -> None: ...

    def check_can_sign(self, now: dt.datetime) -> None: ...


class SigningRules:
    """Read-only rules of a CA: its certificate's window, whether it may sign now, and the
    window of what it signs."""

    @property
    def not_before(self: CAState) -> dt.datetime | None:
        """Start of the CA certificate's validity, once it exists."""
        if self.certificate_der is None:
            return None
        return certificate_facts(self.certificate_der).not_before

    @property
    def not_after(self: CAState) -> dt.datetime | None:
        """End of the CA certificate's validity, once it exists."""
        if self.certificate_der is None:
            return None
        return certificate_facts(self.certificate_der).not_after

    @property
    def needs_certificate(self: CAState) -> bool:
        """True until the first enablement made the key and certificate."""
        return self.certificate_der is None

    def signing_identity(self: CAState) -> tuple[bytes, KeyRef]:
        """The CA's certificate (DER) and key; CAStateError before the first enablement."""
        if self.certificate_der is None or self.key_id is None:
            raise CANotEnabledError(f"CA {self.id} has no key yet; enable it first.")
        return self.certificate_der, KeyRef(self.key_id, self.key_storage)

    def validity_window(self: CAState, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        """The window for this CA's own certificate when enabled at ``now``."""
        return now, add_years(now, self.validity_years)

    def require_enabled(self: CAState, now: dt.datetime) -> None:
        """Raise unless the CA is enabled and its certificate is still valid at ``now``."""
        label = f"{self.kind.value} CA {self.id}"
        if self.status is CAStatus.REVOKED:
            raise CAStateError(
                f"The {label} was revoked; revocation is final, so it signs nothing more and"
                " cannot be enabled again. Request from another intermediate."
            )
        if self.status is not CAStatus.ENABLED:
            raise CANotEnabledError(f"The {label} is {self.status.value}; enable it first.")
        not_after = self.not_after
        if not_after is not None and now >= not_after:
            raise CAStateError(f"The {label}'s certificate expired on {not_after.isoformat()}.")

    def check_child_validity(self: CAState, now: dt.datetime, validity_years: int) -> None:
        """Raise if a child certificate of ``validity_years`` would outlive this CA's."""
        not_after = self.not_after
        if not_after is not None and add_years(now, validity_years) > not_after:
            raise LifetimeError(
                f"validity_years is too long: the parent's certificate ends on "
                f"{not_after.date().isoformat()}; choose fewer years.",
                field="validity_years",
            )

    def check_can_issue(self: CAState, now: dt.datetime) -> None:
        """Raise unless this CA may issue an end-entity certificate at ``now``."""
        self.check_can_sign(now)
        if self.quota_remaining <= 0:
            raise no_quota_left()

    def check_can_sign(self: CAState, now: dt.datetime) -> None:
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

    def leaf_window(
        self: CAState,
        now: dt.datetime,
        validity_days: int | None,
        not_after: dt.datetime | None = None,
    ) -> tuple[dt.datetime, dt.datetime]:
        """The (not_before, not_after) of a leaf valid ``validity_days`` from ``now``, or
        until the explicit ``not_after`` (exactly one is given); either end is held to the
        same limits, and LifetimeError says when the limit falls and what to ask instead."""
        end, field = _requested_end(now, validity_days, not_after)
        limit, why = _leaf_limit(self)
        if end > limit:
            raise _outlives(now, field, end, limit, why)
        ca_not_before = self.not_before
        assert ca_not_before is not None
        return max(now - dt.timedelta(minutes=1), ca_not_before), end


def check_range(field: str, value: int, low: int, high: int) -> None:
    """ValidationError naming ``field`` unless ``low <= value <= high``."""
    if not low <= value <= high:
        raise ValidationError(
            f"{field} must be between {low} and {high}; got {value}.", field=field
        )


def no_quota_left() -> QuotaError:
    """The error of an intermediate with no quota left, for issuance to raise."""
    return QuotaError("The intermediate CA has no remaining quota; assign more from its root.")


def check_lifetime(validity_years: int, service_days: int) -> None:
    """ValidationError unless a new CA's validity and service period are within bounds."""
    check_range("validity_years", validity_years, 1, MAX_CA_YEARS)
    check_range("service_days", service_days, 1, MAX_SERVICE_DAYS)


def add_years(moment: dt.datetime, years: int) -> dt.datetime:
    """``moment`` ``years`` later, on 28 February where 29 February does not exist."""
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February
        return moment.replace(year=moment.year + years, day=28)


def _requested_end(
    now: dt.datetime, validity_days: int | None, not_after: dt.datetime | None
) -> tuple[dt.datetime, str]:
    """The leaf's requested end and the field that asked for it."""
    if (validity_days is None) == (not_after is None):
        raise ValidationError(
            "give either validity_days or not_after (an ISO 8601 end time), not both.",
            field="validity_days" if validity_days is None else "not_after",
        )
    if validity_days is not None:
        check_range("validity_days", validity_days, 1, MAX_LEAF_DAYS)
        return now + dt.timedelta(days=validity_days), "validity_days"
    assert not_after is not None
    if not_after.tzinfo is None:
        raise ValidationError(
            "not_after needs a time zone, e.g. 2027-01-31T00:00:00Z.", field="not_after"
        )
    end = not_after.astimezone(dt.UTC).replace(microsecond=0)  # X.509 keeps whole seconds
    if end <= now:
        raise LifetimeError(
            f"not_after must be later than now ({now.isoformat()}).", field="not_after"
        )
    if end > now + dt.timedelta(days=MAX_LEAF_DAYS):
        raise LifetimeError(
            f"not_after must be at most {MAX_LEAF_DAYS} days from now.", field="not_after"
        )
    return end, "not_after"


def _outlives(
    now: dt.datetime, field: str, end: dt.datetime, limit: dt.datetime, why: str
) -> LifetimeError:
    """Why a leaf ending at ``end`` is refused: when ``limit`` falls, how long is left,
    and what to ask for instead."""
    left = limit - now
    allowed = left.days
    remedies = [f"not_after no later than {limit.isoformat()}"]
    if allowed >= 1:
        remedies.insert(0, f"validity_days of at most {allowed}")
    advice = "ask for " + " or ".join(remedies)
    if why == SERVICE_PERIOD:
        advice += ", or renew the CA's service period first"
    return LifetimeError(
        f"{field} would end the certificate on {end.isoformat()}, after {why} ends on"
        f" {limit.isoformat()} ({_span(left)} from now); {advice}.",
        field=field,
    )


def _span(delta: dt.timedelta) -> str:
    hours = delta.seconds // 3600
    if delta.days:
        return f"{delta.days} days {hours} hours"
    return f"{hours} hours {delta.seconds % 3600 // 60} minutes"


SERVICE_PERIOD = "the CA's service period"


def _leaf_limit(ca: CAState) -> tuple[dt.datetime, str]:
    """The latest a leaf may end, and why: the service period if it is short, else the CA's
    certificate."""
    ca_not_after = ca.not_after
    assert ca_not_after is not None
    assert ca.service_until is not None
    if ca.service_days < ONE_YEAR_DAYS and ca.service_until < ca_not_after:
        return ca.service_until, SERVICE_PERIOD
    return ca_not_after, "the issuing CA's certificate"
