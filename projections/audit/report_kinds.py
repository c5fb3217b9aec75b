"""The rows of each compliance report, streamed from the event log up to a cut.

Every report reads the log twice at most, in batches, filtered by event type in the
database. A first pass (:class:`Context`) reads only CA events, revocations and deletions:
the CA directory and each revoked or deleted certificate's fate, so its memory grows with
CAs and revocations, never with the certificates issued. The second pass streams the
events the report is about and turns each into a row as it goes. Rows come out in log
order (revocations: in the order they were logged), which a fixed cut makes reproducible.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

from cryptography import x509

from domain.model.authority import CertificateAuthority
from domain.model.certificate import Certificate, IssuanceRequest
from domain.model.errors import ValidationError
from domain.model.idempotency import CommandClaim
from domain.model.tokens import ApiToken
from domain.model.values import CAKind, Subject
from projections.audit.logcut import Cut, LogReader, iso

CA = CertificateAuthority
Cell = str | int | tuple[str, ...] | None
Row = tuple[Cell, ...]


class ReportKind(StrEnum):
    """The compliance reports (``GET /api/v1/reports/{kind}``, ``pca report KIND``)."""

    INVENTORY = "inventory"
    ISSUANCE = "issuance"
    REVOCATIONS = "revocations"
    EXPIRING = "expiring"
    QUOTA_LEDGER = "quota-ledger"
    ACTIVITY = "activity"


@dataclass(frozen=True)
class Selection:
    """What a report's rows are narrowed to (validated by :mod:`projections.audit.reports`).

    ``start`` is inclusive and ``end`` exclusive; ``ca_id`` keeps the rows of that CA and,
    for a root, of its intermediates; ``days`` is the horizon of ``expiring``.
    """

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    ca_id: UUID | None = None
    days: int = 30

    def in_period(self, moment: dt.datetime) -> bool:
        """True if ``moment`` is in [start, end)."""
        return (self.start is None or moment >= self.start) and (
            self.end is None or moment < self.end
        )


@dataclass(frozen=True)
class Table:
    """A report: its column names and its rows, produced as they are read."""

    columns: tuple[str, ...]
    rows: Iterator[Row]


# --- the first pass -----------------------------------------------------------------------


@dataclass
class CAInfo:
    """What rows say about a CA: its kind, parent, subject and certificate."""

    kind: CAKind
    parent_id: UUID | None
    subject: Subject
    serial_number: str | None = None
    not_after: dt.datetime | None = None


@dataclass
class Fate:
    """What happened to a certificate after its issuance, up to the cut."""

    revoked: Certificate.CertificateRevoked | None = None
    deleted: Certificate.CertificateDeleted | None = None
    issuer_id: UUID | None = None  # learnt while streaming, where a report needs it
    serial_number: str | None = None


@dataclass
class Context:
    """CAs, revocations and deletions up to the cut, and which CAs the rows are about."""

    cut: Cut
    cas: dict[UUID, CAInfo] = field(default_factory=dict)
    fates: dict[UUID, Fate] = field(default_factory=dict)
    revocations: list[tuple[int, CA.CARevoked | Certificate.CertificateRevoked]] = field(
        default_factory=list
    )
    scope: frozenset[UUID] | None = None

    @classmethod
    def gather(cls, reader: LogReader, cut: Cut, ca_id: UUID | None) -> Context:
        """Read the CA events, revocations and deletions up to ``cut``; ValidationError
        (field "ca_id") if ``ca_id`` names no CA that existed then."""
        context = cls(cut)
        types = (CA.CACreated, CA.CAEnabled, CA.CARevoked)
        for event, position in reader.events(cut, (*types, *_FATE_EVENTS)):
            context._note(event, position)
        if ca_id is not None:
            if ca_id not in context.cas:
                raise ValidationError(
                    f"No CA with id {ca_id} existed at log position {cut.position}.",
                    field="ca_id",
                )
            children = (i for i, ca in context.cas.items() if ca.parent_id == ca_id)
            context.scope = frozenset((ca_id, *children))
        return context

    def in_scope(self, ca_id: UUID | None) -> bool:
        """True if rows of ``ca_id`` belong in the report."""
        return self.scope is None or ca_id in self.scope

    def issuer_name(self, ca_id: UUID | None) -> str | None:
        """The common name of CA ``ca_id``, if it is known."""
        ca = self.cas.get(ca_id) if ca_id is not None else None
        return None if ca is None else ca.subject.common_name

    def _note(self, event: Any, position: int) -> None:
        if isinstance(event, CA.CACreated):
            self.cas[event.originator_id] = CAInfo(event.kind, event.parent_id, event.subject)
        elif isinstance(event, CA.CAEnabled) and event.certificate_der is not None:
            certificate = x509.load_der_x509_certificate(event.certificate_der)
            ca = self.cas[event.originator_id]
            ca.serial_number = format(certificate.serial_number, "x")
            ca.not_after = certificate.not_valid_after_utc
        elif isinstance(event, CA.CARevoked):
            self.revocations.append((position, event))
        elif isinstance(event, Certificate.CertificateRevoked):
            self.revocations.append((position, event))
            self.fates.setdefault(event.originator_id, Fate()).revoked = event
        elif isinstance(event, Certificate.CertificateDeleted):
            self.fates.setdefault(event.originator_id, Fate()).deleted = event


_FATE_EVENTS = (Certificate.CertificateRevoked, Certificate.CertificateDeleted)


def build_table(
    kind: ReportKind, reader: LogReader, context: Context, selection: Selection
) -> Table:
    """The columns of ``kind`` and its rows, read lazily from ``reader``."""
    return _BUILDERS[kind](reader, context, selection)


# --- certificates: inventory, issuance, expiring ------------------------------------------

CERTIFICATE_COLUMNS = (
    "position",
    "certificate_id",
    "issuer_id",
    "issuer_common_name",
    "serial_number",
    "subject",
    "common_name",
    "name",
    "sans",
    "type",
    "key_algorithm",
    "not_before",
    "not_after",
    "status",
    "revoked_at",
    "revocation_reason",
    "revoked_by",
    "requested_by",
    "request_id",
    "issued_at",
    "deleted_at",
    "deleted_by",
)


def _inventory(reader: LogReader, context: Context, selection: Selection) -> Table:
    return Table(CERTIFICATE_COLUMNS, _certificate_rows(reader, context, lambda _e, _s: True))


def _issuance(reader: LogReader, context: Context, selection: Selection) -> Table:
    def keep(event: Certificate.CertificateIssued, _status: str) -> bool:
        return selection.in_period(event.timestamp)

    return Table(CERTIFICATE_COLUMNS, _certificate_rows(reader, context, keep))


def _expiring(reader: LogReader, context: Context, selection: Selection) -> Table:
    time = context.cut.time
    horizon = None if time is None else time + dt.timedelta(days=selection.days)

    def keep(event: Certificate.CertificateIssued, status: str) -> bool:
        return status == "issued" and horizon is not None and event.not_after <= horizon

    return Table(CERTIFICATE_COLUMNS, _certificate_rows(reader, context, keep))


def _certificate_rows(
    reader: LogReader,
    context: Context,
    keep: Callable[[Certificate.CertificateIssued, str], bool],
) -> Iterator[Row]:
    for event, position in reader.events_of(context.cut, Certificate.CertificateIssued):
        if not context.in_scope(event.ca_id):
            continue
        fate = context.fates.get(event.originator_id)
        status = _status(event, fate, context.cut.time)
        if keep(event, status):
            yield _certificate_row(event, position, fate, status, context)


def _status(
    event: Certificate.CertificateIssued, fate: Fate | None, time: dt.datetime | None
) -> str:
    if fate is not None and fate.deleted is not None:
        return "deleted"
    if fate is not None and fate.revoked is not None:
        return "revoked"
    if time is not None and event.not_after <= time:
        return "expired"
    return "issued"


def _certificate_row(
    event: Certificate.CertificateIssued,
    position: int,
    fate: Fate | None,
    status: str,
    context: Context,
) -> Row:
    revoked = None if fate is None else fate.revoked
    deleted = None if fate is None else fate.deleted
    return (
        position,
        str(event.originator_id),
        str(event.ca_id),
        context.issuer_name(event.ca_id),
        event.serial_number,
        rfc4514(event.subject),
        event.subject.common_name,
        event.name,
        tuple(f"{san.type.value}:{san.value}" for san in event.sans),
        event.type.value,
        event.key_algorithm.value,
        iso(event.not_before),
        iso(event.not_after),
        status,
        None if revoked is None else iso(revoked.revoked_at),
        None if revoked is None else revoked.reason.value,
        None if revoked is None else revoked.actor,
        event.actor,
        event.request_id,
        iso(event.timestamp),
        None if deleted is None else iso(deleted.timestamp),
        None if deleted is None else deleted.actor,
    )


# --- revocations --------------------------------------------------------------------------

REVOCATION_COLUMNS = (
    "position",
    "revoked_at",
    "reason",
    "revoked_by",
    "request_id",
    "kind",
    "id",
    "issuer_id",
    "issuer_common_name",
    "serial_number",
    "subject",
    "common_name",
    "not_after",
    "deleted_at",
)


def _revocations(reader: LogReader, context: Context, selection: Selection) -> Table:
    return Table(REVOCATION_COLUMNS, _revocation_rows(reader, context, selection))


def _revocation_rows(reader: LogReader, context: Context, selection: Selection) -> Iterator[Row]:
    """Certificate and intermediate CA revocations in the order they were logged; each
    revoked certificate's details come from its own first event."""
    for position, event in context.revocations:
        if not selection.in_period(event.revoked_at):
            continue
        if isinstance(event, CA.CARevoked):
            row = _ca_revocation_row(position, event, context)
        else:
            row = _certificate_revocation_row(reader, position, event, context)
        if row is not None:
            yield row


def _ca_revocation_row(position: int, event: CA.CARevoked, context: Context) -> Row | None:
    """A revoked intermediate, listed under its root."""
    ca = context.cas[event.originator_id]
    if not (context.in_scope(ca.parent_id) or context.in_scope(event.originator_id)):
        return None
    return (
        position,
        iso(event.revoked_at),
        event.reason.value,
        event.actor,
        event.request_id,
        "intermediate_ca",
        str(event.originator_id),
        None if ca.parent_id is None else str(ca.parent_id),
        context.issuer_name(ca.parent_id),
        ca.serial_number,
        rfc4514(ca.subject),
        ca.subject.common_name,
        iso(ca.not_after),
        None,
    )


def _certificate_revocation_row(
    reader: LogReader, position: int, event: Certificate.CertificateRevoked, context: Context
) -> Row | None:
    """A revoked end-entity certificate, its details read from its issuance."""
    issued = reader.first_event(event.originator_id)
    assert isinstance(issued, Certificate.CertificateIssued)
    if not context.in_scope(issued.ca_id):
        return None
    deleted = context.fates[event.originator_id].deleted
    return (
        position,
        iso(event.revoked_at),
        event.reason.value,
        event.actor,
        event.request_id,
        "certificate",
        str(event.originator_id),
        str(issued.ca_id),
        context.issuer_name(issued.ca_id),
        issued.serial_number,
        rfc4514(issued.subject),
        issued.subject.common_name,
        iso(issued.not_after),
        None if deleted is None else iso(deleted.timestamp),
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


def _quota_ledger(reader: LogReader, context: Context, selection: Selection) -> Table:
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
    *_LEDGER_EVENTS[1:],
)


def _activity(reader: LogReader, context: Context, selection: Selection) -> Table:
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
    if isinstance(event, _FATE_EVENTS):
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
    ),
    Certificate.CertificateRevoked: lambda e: (
        ("reason", e.reason.value),
        ("revoked_at", iso(e.revoked_at)),
    ),
    Certificate.PrivateKeyExported: lambda e: (("format", e.format),),
    Certificate.CertificateDeleted: lambda e: (("key_destroyed", str(e.key_destroyed).lower()),),
    IssuanceRequest.IssuanceRequested: lambda e: (("certificate_id", e.certificate_id),),
    CommandClaim.CommandClaimed: lambda e: (("command", e.command), ("outcome_id", e.outcome_id)),
    ApiToken.TokenCreated: lambda e: (("name", e.name), ("role", e.role.value)),
}


_BUILDERS: dict[ReportKind, Callable[[LogReader, Context, Selection], Table]] = {
    ReportKind.INVENTORY: _inventory,
    ReportKind.ISSUANCE: _issuance,
    ReportKind.REVOCATIONS: _revocations,
    ReportKind.EXPIRING: _expiring,
    ReportKind.QUOTA_LEDGER: _quota_ledger,
    ReportKind.ACTIVITY: _activity,
}


# --- names --------------------------------------------------------------------------------

_RFC4514_ORDER = (
    ("CN", "common_name"),
    ("OU", "organizational_unit"),
    ("O", "organization"),
    ("L", "locality"),
    ("ST", "state"),
    ("C", "country"),
)
_RFC4514_ESCAPES = str.maketrans({c: "\\" + c for c in '\\"+,;<>'} | {"\0": "\\00"})


def rfc4514(subject: Subject) -> str:
    """The subject as an RFC 4514 string (``CN=...,O=...,C=..``), as openssl and
    cryptography print it."""
    return ",".join(
        f"{label}={_escape(value)}"
        for label, attribute in _RFC4514_ORDER
        if (value := getattr(subject, attribute)) is not None
    )


def _escape(value: str) -> str:
    escaped = value.translate(_RFC4514_ESCAPES)
    if value.startswith(("#", " ")):
        escaped = "\\" + escaped
    if value.endswith(" ") and len(value) > 1:
        escaped = escaped[:-1] + "\\ "
    return escaped
