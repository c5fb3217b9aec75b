"""Inputs every face parses the same way into the values the read side takes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from api.deployment import Deployment
from domain.model.errors import ValidationError
from domain.model.values import CertificateType, Subject
from projections.audit.history import HistoryFilter
from projections.audit.report_kinds import ReportKind
from projections.audit.reports import ReportStream, open_report, parse_format, parse_parameters
from projections.readmodels.models import CertificateFilter, CertificateViewStatus


def certificate_filter(
    issuer_id: UUID | None,
    status: str | None = None,
    certificate_type: str | None = None,
    text: str | None = None,
    expiring_before: dt.datetime | None = None,
    issuer_revoked: bool | None = None,
) -> CertificateFilter:
    """A certificate list filter from a face's parsed values (status and type by name);
    what is None or empty matches every certificate."""
    return CertificateFilter(
        issuer_id=issuer_id,
        status=CertificateViewStatus(status) if status else None,
        type=CertificateType(certificate_type) if certificate_type else None,
        text=text or None,
        expiring_before=expiring_before,
        issuer_revoked=issuer_revoked,
    )


def certificate_query(issuer_id: UUID, query: Mapping[str, Any]) -> CertificateFilter:
    """The certificate list filter of the API's query parameters (``status``, ``type``,
    ``q``, ``expires_before``, ``issuer_revoked``), as any face received them."""
    return certificate_filter(
        issuer_id,
        query.get("status"),
        query.get("type"),
        query.get("q"),
        parse_instant(query.get("expires_before"), "expires_before"),
        None if "issuer_revoked" not in query else query["issuer_revoked"] == "true",
    )


def parse_instant(raw: str | None, name: str) -> dt.datetime | None:
    """An ISO 8601 time (UTC when no offset is given), or None when absent."""
    if raw is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{name} must be an ISO 8601 time such as 2027-01-31T00:00:00Z.", field=name
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def subject_from(fields: dict[str, Any]) -> Subject:
    """A Subject from a face's subject fields (those left None take no value)."""
    return Subject(**{key: value for key, value in fields.items() if value is not None})


def history_filter(
    types: str,
    aggregate_id: str | None,
    actor: str | None,
    since: str | None,
    until: str | None,
) -> HistoryFilter:
    """An event history filter from text: ``types`` comma-separated event names, the
    times ISO 8601 (fields ``from`` and ``to``); what is None matches all."""
    return HistoryFilter(
        types=tuple(name.strip() for name in types.split(",") if name.strip()),
        aggregate_id=_uuid(aggregate_id),
        actor=actor,
        since=parse_instant(since, "from"),
        until=parse_instant(until, "to"),
    )


def _uuid(raw: str | None) -> UUID | None:
    if raw is None:
        return None
    try:
        return UUID(raw)
    except ValueError:
        raise ValidationError("aggregate_id must be a UUID.", field="aggregate_id") from None


def report_stream(
    deployment: Deployment, kind: ReportKind, query: Mapping[str, Any]
) -> ReportStream:
    """The report ``kind`` of ``deployment`` for the parameters a face read under the
    API's names (``format``, ``at``, ``from``, ``to``, ``ca_id``, ``days``)."""
    parameters = parse_parameters(
        at=query.get("at"),
        start=query.get("from"),
        end=query.get("to"),
        ca_id=query.get("ca_id"),
        days=query.get("days"),
    )
    return open_report(
        deployment.settings,
        kind,
        parse_format(query.get("format", "csv")),
        parameters,
        keystore=deployment.service.keystore,
    )
