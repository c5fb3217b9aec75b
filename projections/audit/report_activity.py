"""The quota ledger (every quota movement with the balances after it) and the activity
report (every event: who did what, when, from which request)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from domain.model.certificate import Certificate, IssuanceRequest
from domain.model.idempotency import CommandClaim
from domain.model.tokens import ApiToken
from domain.model.values import CAKind
from projections.audit.logcut import LogReader, iso
from projections.audit.report_context import (
    CA,
    FATE_EVENTS,
    Context,
    Row,
    Selection,
    Table,
    rfc4514,
)

# --- quota ledger -------------------------------------------------------------------------

LEDGER_COLUMNS = (
    "position",
    "time",
    "ca_id",
    "ca_kind",
    "ca_common_name",
    "entry",
    "change",
    "counterpart_id",
    "serial_number",
    "actor",
    "request_id",
    "total",
    "assigned",
    "available",
    "remaining",
    "issued",
)


@dataclass
class _Balance:
    """A CA's running quota: a root's pool, or an intermediate's remaining and issued."""

    kind: CAKind
    total: int = 0
    available: int = 0
    remaining: int = 0
    issued: int = 0

    def cells(self) -> tuple[int | None, ...]:
        if self.kind is CAKind.ROOT:
            return (self.total, self.total - self.available, self.available, None, None)
        return (None, None, None, self.remaining, self.issued)


_LEDGER_EVENTS = (
    CA.CACreated,
    CA.QuotaPurchased,
    CA.QuotaAssigned,
    CA.QuotaReceived,
    CA.QuotaConsumed,
    CA.QuotaSpent,
)


def quota_ledger(reader: LogReader, context: Context, selection: Selection) -> Table:
    return Table(LEDGER_COLUMNS, _ledger_rows(reader, context, selection))


def _ledger_rows(reader: LogReader, context: Context, selection: Selection) -> Iterator[Row]:
    """Every quota movement with the balances after it; balances run from the first
    event, whatever the period shown."""
    balances: dict[UUID, _Balance] = {}
    for event, position in reader.events(context.cut, _LEDGER_EVENTS):
        ca_id = event.originator_id
        if isinstance(event, CA.CACreated):
            balances[ca_id] = _Balance(event.kind)
        balance = balances[ca_id]
        for entry, change, counterpart, serial in _moves(balance, event):
            if not (context.in_scope(ca_id) and selection.in_period(event.timestamp)):
                continue
            yield (
                position,
                iso(event.timestamp),
                str(ca_id),
                balance.kind.value,
                context.issuer_name(ca_id),
                entry,
                change,
                counterpart,
                serial,
                event.actor,
                event.request_id,
                *balance.cells(),
            )


def _moves(balance: _Balance, event: Any) -> Iterator[tuple[str, int, str | None, str | None]]:
    """Apply ``event`` to ``balance`` one movement at a time, each as (entry, change,
    counterpart id, serial): a ``QuotaSpent`` is one consumption per certificate."""
    if isinstance(event, CA.QuotaSpent):
        for certificate_id, serial in zip(event.certificate_ids, event.serial_numbers, strict=True):
            yield _consume(balance, certificate_id, serial)
        return
    if isinstance(event, CA.QuotaConsumed):
        yield _consume(balance, event.certificate_id, event.serial_number)
        return
    yield _move(balance, event)


def _consume(
    balance: _Balance, certificate_id: UUID, serial: str
) -> tuple[str, int, str | None, str | None]:
    balance.remaining -= 1
    balance.issued += 1
    return "consumption", -1, str(certificate_id), serial


def _move(balance: _Balance, event: Any) -> tuple[str, int, str | None, str | None]:
    """Apply a movement other than a consumption to ``balance``."""
    if isinstance(event, CA.CACreated):
        balance.total = balance.available = event.included_certificates
        return "opening", event.included_certificates, None, None
    if isinstance(event, CA.QuotaPurchased):
        balance.total += event.count
        balance.available += event.count
        return "purchase", event.count, None, None
    if isinstance(event, CA.QuotaAssigned):
        change = event.previous_remaining - event.remaining
        balance.available += change
        return "assignment", change, str(event.intermediate_id), None
    assert isinstance(event, CA.QuotaReceived)
    change = event.remaining - balance.remaining
    balance.remaining = event.remaining
    return "receipt", change, str(event.root_id), None


# --- activity -----------------------------------------------------------------------------

ACTIVITY_COLUMNS = (
    "position",
    "time",
    "actor",
    "request_id",
    "event",
    "aggregate_type",
    "aggregate_id",
    "version",
    "ca_id",
    "serial_number",
    "detail",
)

_CA_EVENTS = (
    CA.CACreated,
    CA.CAEnabled,
    CA.CADisabled,
    CA.CAServiceRenewed,
    CA.CARevoked,
    CA.ProfileCreated,
    CA.ProfileUpdated,
    CA.ProfileRetired,
    *_LEDGER_EVENTS[1:],
)


def activity(reader: LogReader, context: Context, selection: Selection) -> Table:
    return Table(ACTIVITY_COLUMNS, _activity_rows(reader, context, selection))


def _activity_rows(reader: LogReader, context: Context, selection: Selection) -> Iterator[Row]:
    """Every event: who did what, when, from which request; no key material, no DER."""
    for event, position in reader.events(context.cut):
        ca_id, serial = _subject_of(event, context)
        if not selection.in_period(event.timestamp):
            continue
        if not context.in_scope(ca_id):
            continue
        yield (
            position,
            iso(event.timestamp),
            getattr(event, "actor", None),
            getattr(event, "request_id", None),
            type(event).__name__,
            type(event).__qualname__.rpartition(".")[0] or None,
            str(event.originator_id),
            event.originator_version,
            None if ca_id is None else str(ca_id),
            serial,
            describe(event),
        )


def _subject_of(event: Any, context: Context) -> tuple[UUID | None, str | None]:
    """The CA an event concerns and the serial it names, if any. The issuer of a revoked
    or deleted certificate is remembered from its issuance, for those certificates only."""
    if isinstance(event, _CA_EVENTS):
        return event.originator_id, getattr(event, "serial_number", None)
    if isinstance(event, Certificate.CertificateIssued):
        fate = context.fates.get(event.originator_id)
        if fate is not None:
            fate.issuer_id, fate.serial_number = event.ca_id, event.serial_number
        return event.ca_id, event.serial_number
    if isinstance(event, FATE_EVENTS):
        fate = context.fates[event.originator_id]
        return fate.issuer_id, fate.serial_number
    if isinstance(event, IssuanceRequest.IssuanceRequested):
        return event.ca_id, None
    if isinstance(event, Certificate.PrivateKeyExported):
        return event.ca_id, event.serial_number
    return None, None


def describe(event: Any) -> str:
    """A short, key-free account of what ``event`` changed, as ``name=value`` pairs."""
    describer = _DESCRIBERS.get(type(event))
    if describer is None:
        return ""
    return " ".join(f"{name}={value}" for name, value in describer(event) if value is not None)


Pairs = tuple[tuple[str, object], ...]
_DESCRIBERS: dict[type[Any], Callable[[Any], Pairs]] = {
    CA.CACreated: lambda e: (
        ("kind", e.kind.value),
        ("subject", rfc4514(e.subject)),
        ("key_algorithm", e.key_algorithm.value),
        ("validity_years", e.validity_years),
        ("service_days", e.service_days),
        ("included_certificates", e.included_certificates),
    ),
    CA.CAEnabled: lambda e: (("service_until", iso(e.service_until)),),
    CA.CAServiceRenewed: lambda e: (
        ("service_days", e.service_days),
        ("service_until", iso(e.service_until)),
    ),
    CA.CARevoked: lambda e: (("reason", e.reason.value), ("revoked_at", iso(e.revoked_at))),
    CA.ProfileCreated: lambda e: (("profile", e.name),),
    CA.ProfileUpdated: lambda e: (("profile", e.name), ("version", e.version)),
    CA.ProfileRetired: lambda e: (("profile", e.name),),
    CA.QuotaPurchased: lambda e: (("count", e.count),),
    CA.QuotaAssigned: lambda e: (
        ("intermediate_id", e.intermediate_id),
        ("previous_remaining", e.previous_remaining),
        ("remaining", e.remaining),
    ),
    CA.QuotaReceived: lambda e: (("root_id", e.root_id), ("remaining", e.remaining)),
    CA.QuotaConsumed: lambda e: (("certificate_id", e.certificate_id),),
    CA.QuotaSpent: lambda e: (("certificates", len(e.certificate_ids)),),
    Certificate.CertificateIssued: lambda e: (
        ("type", e.type.value),
        ("subject", rfc4514(e.subject)),
        ("key_algorithm", e.key_algorithm.value),
        ("not_after", iso(e.not_after)),
        ("profile", f"{e.profile}/{e.profile_version}"),
    ),
    Certificate.CertificateRevoked: lambda e: (
        ("reason", e.reason.value),
        ("revoked_at", iso(e.revoked_at)),
    ),
    Certificate.PrivateKeyExported: lambda e: (("format", e.format),),
    Certificate.CertificateDeleted: lambda e: (("key_destroyed", str(e.key_destroyed).lower()),),
    IssuanceRequest.IssuanceRequested: lambda e: (("certificate_id", e.certificate_id),),
    CommandClaim.CommandClaimed: lambda e: (("command", e.command), ("outcome_id", e.outcome_id)),
    ApiToken.TokenCreated: lambda e: (
        ("name", e.name),
        ("role", e.role.value),
        ("cas", ",".join(str(ca_id) for ca_id in e.ca_ids) or None),
        ("profiles", ",".join(e.profiles) or None),
    ),
}
