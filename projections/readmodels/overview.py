"""The console's overview: what is about to expire, what was issued and revoked lately,
and the quota each intermediate has left, from the read models.

Counts come from pages of the certificate list, so they cost one indexed query per
thousand certificates; past ``MAX_SCANNED`` certificates a figure stops growing and
``capped`` says so (the compliance reports count everything, from the log).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from uuid import UUID

from domain.model.values import CAKind
from projections.readmodels.models import (
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
    issued, capped_issued = _per_day(
        _scan(read_models, now, CertificateFilter()), _issued_at, since, ordered=True
    )
    revoked_filter = CertificateFilter(status=CertificateViewStatus.REVOKED)
    revoked, capped_revoked = _per_day(
        _scan(read_models, now, revoked_filter), _revoked_at, since, ordered=False
    )
    expiring: dict[int, int] = {}
    capped = capped_issued or capped_revoked
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
        _quota(read_models, now),
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


def _per_day(
    certificates: Iterator[CertificateView],
    moment: Callable[[CertificateView], dt.datetime | None],
    since: dt.datetime,
    *,
    ordered: bool,
) -> tuple[Counter[dt.date], bool]:
    """How many ``certificates`` had their ``moment`` on each day since ``since``, and
    whether the scan was capped. ``ordered``: the list runs newest ``moment`` first, so
    the scan stops at the first one before ``since`` (issuance; not revocation)."""
    per_day: Counter[dt.date] = Counter()
    scanned = 0
    for certificate in certificates:
        scanned += 1
        when = moment(certificate)
        if when is not None and when >= since:
            per_day[when.date()] += 1
        elif ordered:
            return per_day, False
    return per_day, scanned >= MAX_SCANNED


def _quota(read_models: ReadModels, now: dt.datetime) -> tuple[QuotaLeft, ...]:
    return tuple(
        QuotaLeft(ca.id, ca.subject.common_name, ca.quota.remaining, ca.quota.issued)
        for ca in read_models.list_cas(now)
        if ca.kind is CAKind.INTERMEDIATE and isinstance(ca.quota, IntermediateQuota)
    )


def _issued_at(certificate: CertificateView) -> dt.datetime:
    return certificate.issued_at


def _revoked_at(certificate: CertificateView) -> dt.datetime | None:
    return certificate.revoked_at
