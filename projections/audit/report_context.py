"""What every compliance report shares: its selection, its table, and the first pass over
the log (the CA directory and the certificates' fates), and subject names as RFC 4514.

Every report reads the log twice at most, in batches, filtered by event type in the
database. A first pass (:class:`Context`) reads only CA events, revocations and deletions:
the CA directory and each revoked or deleted certificate's fate, so its memory grows with
CAs and revocations, never with the certificates issued. The second pass streams the
events the report is about and turns each into a row as it goes. Rows come out in log
order (revocations: in the order they were logged), which a fixed cut makes reproducible.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from domain.model.authority import CertificateAuthority
from domain.model.certificate import Certificate
from domain.model.certificate_facts import certificate_facts
from domain.model.errors import NotFoundError
from domain.model.values import CAKind, Subject
from projections.audit.logcut import Cut, LogReader

CA = CertificateAuthority
Cell = str | int | tuple[str, ...] | None
Row = tuple[Cell, ...]
FATE_EVENTS = (Certificate.CertificateRevoked, Certificate.CertificateDeleted)


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
        """Read the CA events, revocations and deletions up to ``cut``; NotFoundError
        (field "ca_id") if ``ca_id`` names no CA that existed then."""
        context = cls(cut)
        types = (CA.CACreated, CA.CAEnabled, CA.CARevoked)
        for event, position in reader.events(cut, (*types, *FATE_EVENTS)):
            context._note(event, position)
        if ca_id is not None:
            if ca_id not in context.cas:
                raise NotFoundError(
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
            certificate = certificate_facts(event.certificate_der)
            ca = self.cas[event.originator_id]
            ca.serial_number = certificate.serial_number
            ca.not_after = certificate.not_after
        elif isinstance(event, CA.CARevoked):
            self.revocations.append((position, event))
        elif isinstance(event, Certificate.CertificateRevoked):
            self.revocations.append((position, event))
            self.fates.setdefault(event.originator_id, Fate()).revoked = event
        elif isinstance(event, Certificate.CertificateDeleted):
            self.fates.setdefault(event.originator_id, Fate()).deleted = event


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
