"""The console's overview: what is about to expire, what was issued and revoked lately,
and the quota each intermediate has left, from the read models.

Counts of certificates come from pages of the certificate list, so they cost one indexed
query per thousand certificates; past ``MAX_SCANNED`` certificates a figure stops growing
and ``capped`` says so (the compliance reports count everything, from the log). Issuance
per day counts the certificates still listed (a deleted one no longer is); revocations
per day come from the revocation index, which keeps deleted certificates.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

from domain.model.values import CAKind
from projections.readmodels.models import (
    CAView,
    CertificateFilter,
    CertificateView,
    CertificateViewStatus,
    IntermediateQuota,
)
from projections.readmodels.queries import MAX_PAGE_SIZE, ReadModels

EXPIRY_HORIZONS = (7, 30, 90)
RECENT_DAYS = 14
MAX_SCANNED = 20_000


@dataclass(frozen=True)
class QuotaLeft:
    """An intermediate's remaining quota and what it has issued."""

    ca_id: UUID
    name: str
    remaining: int
    issued: int


@dataclass(frozen=True)
class Overview:
    """The figures of the overview as of ``now``: ``expiring`` maps a horizon in days to
    the certificates still valid that expire within it; ``issued`` and ``revoked`` hold a
    count per day for the last ``RECENT_DAYS`` days, oldest first."""

    now: dt.datetime
    expiring: dict[int, int]
    issued: tuple[tuple[dt.date, int], ...]
    revoked: tuple[tuple[dt.date, int], ...]
    quota: tuple[QuotaLeft, ...]
    capped: bool


def overview(read_models: ReadModels, now: dt.datetime) -> Overview:
    """The overview of every CA's certificates as of ``now``."""
    days = [now.date() - dt.timedelta(days=back) for back in range(RECENT_DAYS - 1, -1, -1)]
    since = dt.datetime.combine(days[0], dt.time(), tzinfo=dt.UTC)
    issued, capped = _issued_per_day(_scan(read_models, now, CertificateFilter()), since)
    cas = read_models.list_cas(now)
    revoked: Counter[dt.date] = Counter(
        entry.revoked_at.date()
        for ca in cas
        for entry in read_models.revoked_serials(ca.id)
        if entry.revoked_at >= since
    )
    expiring: dict[int, int] = {}
    for horizon in EXPIRY_HORIZONS:
        soon = CertificateFilter(
            status=CertificateViewStatus.ISSUED, expiring_before=now + dt.timedelta(days=horizon)
        )
        expiring[horizon], more = _count(_scan(read_models, now, soon))
        capped = capped or more
    return Overview(
        now,
        expiring,
        tuple((day, issued[day]) for day in days),
        tuple((day, revoked[day]) for day in days),
        _quota(cas),
        capped,
    )


def _scan(
    read_models: ReadModels, now: dt.datetime, certificate_filter: CertificateFilter
) -> Iterator[CertificateView]:
    """The certificates ``certificate_filter`` matches, newest first, at most MAX_SCANNED."""
    cursor: str | None = None
    seen = 0
    while seen < MAX_SCANNED:
        page = read_models.list_certificates(certificate_filter, now, MAX_PAGE_SIZE, cursor)
        yield from page.items
        seen += len(page.items)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _count(certificates: Iterator[CertificateView]) -> tuple[int, bool]:
    count = sum(1 for _ in certificates)
    return count, count >= MAX_SCANNED


def _issued_per_day(
    certificates: Iterator[CertificateView], since: dt.datetime
) -> tuple[Counter[dt.date], bool]:
    """How many ``certificates`` (newest first) were issued on each day since ``since``,
    and whether the scan was capped before reaching ``since``."""
    per_day: Counter[dt.date] = Counter()
    scanned = 0
    for certificate in certificates:
        if certificate.issued_at < since:
            return per_day, False
        scanned += 1
        per_day[certificate.issued_at.date()] += 1
    return per_day, scanned >= MAX_SCANNED


def _quota(cas: list[CAView]) -> tuple[QuotaLeft, ...]:
    return tuple(
        QuotaLeft(ca.id, ca.subject.common_name, ca.quota.remaining, ca.quota.issued)
        for ca in cas
        if ca.kind is CAKind.INTERMEDIATE and isinstance(ca.quota, IntermediateQuota)
    )
