"""The certificate reports (inventory, issuance, expiring) and the revocations report:
one row per certificate issued, or per revocation, in log order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

from domain.model.certificate import Certificate
from projections.audit.logcut import LogReader, iso
from projections.audit.report_context import (
    CA,
    Context,
    Fate,
    Row,
    Selection,
    Table,
    rfc4514,
)

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
    "profile",
    "profile_version",
)


def inventory(reader: LogReader, context: Context, selection: Selection) -> Table:
    return Table(CERTIFICATE_COLUMNS, _certificate_rows(reader, context, lambda _e, _s: True))


def issuance(reader: LogReader, context: Context, selection: Selection) -> Table:
    def keep(event: Certificate.CertificateIssued, _status: str) -> bool:
        return selection.in_period(event.timestamp)

    return Table(CERTIFICATE_COLUMNS, _certificate_rows(reader, context, keep))


def expiring(reader: LogReader, context: Context, selection: Selection) -> Table:
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
        event.profile,
        event.profile_version,
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


def revocations(reader: LogReader, context: Context, selection: Selection) -> Table:
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
