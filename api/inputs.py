"""Inputs every face parses the same way into the values the read side takes."""

from __future__ import annotations

import datetime as dt
from uuid import UUID

from domain.model.values import CertificateType
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
