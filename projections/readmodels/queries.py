"""The query side: every list and status the service shows, read from the read models.

Nothing here loads an aggregate. Statuses that depend on the clock (expired) are derived
from the ``now`` each query is given, so expiry needs no event.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import time
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from domain.adapters.resources import Closeable
from domain.adapters.settings import Settings
from domain.model.errors import NotFoundError, ValidationError
from domain.model.text import CONTROL_CHARACTERS
from domain.model.values import (
    SAN,
    CAKind,
    CAStatus,
    CertificateStatus,
    CertificateType,
    KeyAlgorithm,
    KeyStorage,
    RevocationReason,
    SANType,
    Subject,
)
from projections.readmodels.models import (
    CAView,
    CAViewStatus,
    CertificateCounts,
    CertificateFilter,
    CertificateView,
    CertificateViewStatus,
    IntermediateQuota,
    KeyGenerationView,
    Page,
    RevocationEntry,
    RootQuota,
)
from projections.readmodels.sql import (
    LIKE,
    from_micros,
    like_pattern,
    optional_instant,
    to_micros,
)
from projections.readmodels.store import open_view
from projections.readmodels.view import ReadModelView

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50
MAX_TEXT_LENGTH = 255
_CURSOR_PREFIX = "rm1:"
MAX_CURSOR_DIGITS = 18  # a position below 10**18 fits the databases' 64-bit integers
# What encode_cursor makes, as a regular expression over its base64url text: "rm1:" is
# "cm0x" and ":" with the first digits "Oj"; a digit's byte 0x30-0x39 leaves each base64
# character few values, and which follow which (see encode_cursor's tests).
_DIGITS3 = "(?:[MN][DTjz]|O[DT])[AEIMQUYcgk][w-z0-5]"  # three more digits
_TAIL = "(?:(?:[MN][AQgw]|O[AQ])|(?:[MN][DTjz]|O[DT])[AEIMQUYcgk])"  # one or two more
CURSOR_PATTERN = (
    f"^cm0xOj[AEIMQUYcgk](?:[w-z0-5](?:(?:{_DIGITS3}){{0,4}}{_TAIL}?"
    f"|(?:{_DIGITS3}){{5}}(?:[MN][AQgw]|O[AQ])?))?$"
)
MAX_CURSOR_LENGTH = 32
_WAIT_FIRST_SLEEP = 0.002
_WAIT_MAX_SLEEP = 0.05


class ReadModels(Closeable):
    """Queries over the read models of one deployment (see :meth:`open`)."""

    def __init__(self, view: ReadModelView, *, nudge: Callable[[], None] | None = None) -> None:
        self._view = view
        self._nudge = nudge

    @classmethod
    def open(cls, settings: Settings, *, nudge: Callable[[], None] | None = None) -> ReadModels:
        """The read models of ``settings`` (tables are created if missing).

        ``nudge`` is called when a query starts waiting for a position; pass an in-process
        runner's :meth:`~projections.readmodels.worker.RunnerHandle.wake` so it looks at the
        log at once.
        """
        return cls(open_view(settings, pool_size=5), nudge=nudge)

    def close(self) -> None:
        self._view.close()

    # --- consistency ----------------------------------------------------------------------

    def position(self) -> int:
        """The log position up to which the read models are complete (0 before any event)."""
        return self._view.position()

    def wait_for(self, position: int | None, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds until the read models have processed log
        ``position`` (what a command returned); True once they have, False on timeout.
        None needs no wait."""
        if position is None or self.position() >= position:
            return True
        if self._nudge is not None:
            self._nudge()
        deadline = time.monotonic() + timeout
        sleep = _WAIT_FIRST_SLEEP
        while (remaining := deadline - time.monotonic()) > 0:
            time.sleep(min(sleep, remaining))
            if self.position() >= position:
                return True
            sleep = min(sleep * 2, _WAIT_MAX_SLEEP)
        return False

    # --- CAs ------------------------------------------------------------------------------

    def list_cas(self, now: dt.datetime) -> list[CAView]:
        """Every CA, oldest first, with its status and certificate counts as of ``now``."""
        rows = self._view.fetch(self._view.sql.select_cas, (to_micros(now),))
        keys = self._keys_by_ca()
        return [_ca_view(row, now, keys) for row in rows]

    def page_cas(
        self, now: dt.datetime, limit: int = DEFAULT_PAGE_SIZE, cursor: str | None = None
    ) -> Page[CAView]:
        """CAs oldest first, ``limit`` per page, after a previous page's ``next_cursor``;
        ValidationError on a bad limit or cursor (the same rules as list_certificates)."""
        check_limit(limit)
        after = 0 if cursor is None else decode_cursor(cursor)
        rows = self._view.fetch(self._view.sql.select_ca_page, (to_micros(now), after, limit + 1))
        keys = self._keys_by_ca()
        items = tuple(_ca_view(row, now, keys) for row in rows[:limit])
        more = len(rows) > limit
        return Page(items, encode_cursor(rows[limit - 1]["position"]) if more else None)

    def get_ca(self, ca_id: UUID, now: dt.datetime) -> CAView:
        """The CA ``ca_id`` as of ``now``; NotFoundError if the read models have none."""
        rows = self._view.fetch(self._view.sql.select_ca, (to_micros(now), str(ca_id)))
        if not rows:
            raise NotFoundError(f"No CA with id {ca_id}.")
        keys = self._view.fetch(self._view.sql.select_keys_of_ca, (str(ca_id),))
        return _ca_view(rows[0], now, _group_keys(keys))

    def ca_keys(self) -> dict[UUID, tuple[KeyGenerationView, ...]]:
        """Every key of every CA that has a certificate, oldest first per CA: what the CA
        list shows of them, without its certificate counts (which cost a count of the
        expired certificates of each CA)."""
        return {UUID(ca_id): keys for ca_id, keys in self._keys_by_ca().items()}

    def _keys_by_ca(self) -> dict[str, tuple[KeyGenerationView, ...]]:
        # Every CA's keys in one query: a deployment has few CAs, each a few keys.
        return _group_keys(self._view.fetch(self._view.sql.select_ca_keys, ()))

    # --- certificates ---------------------------------------------------------------------

    def list_certificates(
        self,
        certificate_filter: CertificateFilter,
        now: dt.datetime,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
    ) -> Page[CertificateView]:
        """Certificates matching ``certificate_filter``, newest first, ``limit`` per page.

        ``cursor`` is a previous page's ``next_cursor``. Pages are keyed by log position,
        so certificates issued after the first page never shift later pages, and a deep
        page costs what the first does. ValidationError on a bad limit, cursor or text.
        """
        check_limit(limit)
        sql = self._view.sql
        text = None if certificate_filter.text is None else _search_text(certificate_filter.text)
        indexed = text is not None and sql.search_indexable(text)
        conditions, params = _conditions(certificate_filter, now)
        if text is not None and not indexed:  # too short for trigrams: scan, as ever
            conditions.append(LIKE)
            params.append(like_pattern(text))
        if cursor is not None:
            params.append(decode_cursor(cursor))
        statement = sql.certificate_page(conditions, cursor is not None, indexed_text=indexed)
        search = [sql.search_parameter(text)] if indexed and text is not None else []
        rows = self._view.fetch(statement, (*search, *params, limit + 1))
        items = tuple(_certificate_view(row, now) for row in rows[:limit])
        more = len(rows) > limit
        return Page(items, encode_cursor(items[-1].position) if more else None)

    def get_certificate(self, certificate_id: UUID, now: dt.datetime) -> CertificateView:
        """The certificate as of ``now``; NotFoundError if unknown or deleted."""
        rows = self._view.fetch(self._view.sql.select_certificate, (str(certificate_id),))
        if not rows:
            raise NotFoundError(f"No certificate with id {certificate_id}.")
        return _certificate_view(rows[0], now)

    # --- revocation index -----------------------------------------------------------------

    def revoked_serials(self, issuer_id: UUID) -> list[RevocationEntry]:
        """Every certificate ``issuer_id`` has revoked (for its CRL), deleted ones included,
        sorted by serial number as text."""
        rows = self._view.fetch(self._view.sql.select_revocations, (str(issuer_id),))
        return [_revocation_entry(row) for row in rows]

    def revocations_after(self, issuer_id: UUID, position: int) -> list[RevocationEntry]:
        """``issuer_id``'s revocations logged after ``position``, in log order: what a CRL
        published at ``position`` does not hold yet."""
        rows = self._view.fetch(self._view.sql.select_revocations_after, (str(issuer_id), position))
        return [_revocation_entry(row) for row in rows]

    def is_issued(self, issuer_id: UUID, serial_number: str) -> bool:
        """True if ``issuer_id`` issued a listed certificate (or intermediate CA) with this
        serial; deleted certificates are not listed, but stay in the revocation index."""
        serial = _canonical_serial(serial_number)
        rows = self._view.fetch(
            self._view.sql.select_issued_serial, (str(issuer_id), serial, str(issuer_id), serial)
        )
        return bool(rows)

    def revocation_status(self, issuer_id: UUID, serial_number: str) -> RevocationEntry | None:
        """The revocation of ``serial_number`` by ``issuer_id``, or None if it is not revoked
        (for OCSP). The serial is hex in any case, with or without leading zeros or colons;
        ValidationError (field "serial_number") if it is not hex."""
        rows = self._view.fetch(
            self._view.sql.select_revocation, (str(issuer_id), _canonical_serial(serial_number))
        )
        return _revocation_entry(rows[0]) if rows else None


def check_limit(limit: int) -> None:
    """ValidationError (field "limit") unless 1 <= ``limit`` <= MAX_PAGE_SIZE."""
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationError(
            f"limit must be between 1 and {MAX_PAGE_SIZE}; got {limit}.", field="limit"
        )


def encode_cursor(position: int) -> str:
    """The opaque cursor for the page after the item at log ``position``."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The log position in ``cursor``; ValidationError (field "cursor") if it is not ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        digits = text.removeprefix(_CURSOR_PREFIX)
        if (
            text.startswith(_CURSOR_PREFIX)
            and digits.isdigit()
            and len(digits) <= MAX_CURSOR_DIGITS
        ):
            return int(digits)
    except (binascii.Error, UnicodeError, ValueError):
        pass
    raise ValidationError(
        "cursor is not one this service handed out; use a page's next_cursor as given, "
        "or leave it out to start from the first page.",
        field="cursor",
    )


def _canonical_serial(serial_number: str) -> str:
    """The serial as the domain writes it: lower-case hex without leading zeros."""
    try:
        return format(int(serial_number.replace(":", ""), 16), "x")
    except ValueError:
        raise ValidationError(
            f"serial_number must be hexadecimal; got {serial_number!r}.", field="serial_number"
        ) from None


def _conditions(
    certificate_filter: CertificateFilter, now: dt.datetime
) -> tuple[list[str], list[Any]]:
    """SQL conditions (fixed fragments) and their parameters for ``certificate_filter``."""
    conditions: list[str] = []
    params: list[Any] = []
    if certificate_filter.issuer_id is not None:
        conditions.append("ca_id = ?")
        params.append(str(certificate_filter.issuer_id))
    if certificate_filter.status is not None:
        conditions.extend(_STATUS_CONDITIONS[certificate_filter.status])
        params.extend(_status_params(certificate_filter.status, now))
    if certificate_filter.type is not None:
        conditions.append("type = ?")
        params.append(certificate_filter.type.value)
    if certificate_filter.expiring_before is not None:
        conditions.append("+not_after < ?")
        params.append(to_micros(certificate_filter.expiring_before))
    if certificate_filter.issuer_revoked is not None:
        negation = "" if certificate_filter.issuer_revoked else "NOT "
        conditions.append(f"{negation}EXISTS ({_ISSUER_REVOKED})")
    return conditions, params


_ISSUER_REVOKED = "SELECT 1 FROM {cas} r WHERE r.id = ca_id AND r.revoked_at IS NOT NULL"


# Pages walk an index in position order and filter expiry on the way ("+not_after" keeps
# the planner off the expiry index, which would find all matches and sort them: a cost
# that grows with the list rather than with the page).
_STATUS_CONDITIONS: dict[CertificateViewStatus, tuple[str, ...]] = {
    CertificateViewStatus.ISSUED: ("status = ?", "+not_after > ?"),
    CertificateViewStatus.EXPIRED: ("status = ?", "+not_after <= ?"),
    CertificateViewStatus.REVOKED: ("status = ?",),
}


def _status_params(status: CertificateViewStatus, now: dt.datetime) -> list[Any]:
    if status is CertificateViewStatus.REVOKED:
        return [CertificateStatus.REVOKED.value]
    return [CertificateStatus.ISSUED.value, to_micros(now)]


def _search_text(text: str) -> str:
    """``text`` as the search text holds it (lower case); ValidationError (field "q") if
    it is empty, too long or holds control characters."""
    if not 1 <= len(text) <= MAX_TEXT_LENGTH or re.search(f"[{CONTROL_CHARACTERS}]", text):
        raise ValidationError(
            f"The search text must be 1 to {MAX_TEXT_LENGTH} characters, "
            "without control characters.",
            field="q",
        )
    return text.lower()


def _group_keys(rows: Sequence[Any]) -> dict[str, tuple[KeyGenerationView, ...]]:
    """Key generations per CA id, oldest first, the newest marked current."""
    grouped: dict[str, list[Any]] = {}
    for row in rows:
        grouped.setdefault(row["ca_id"], []).append(row)
    return {
        ca_id: tuple(
            KeyGenerationView(
                generation=row["generation"],
                key_storage=KeyStorage(row["key_storage"]),
                serial_number=row["serial_number"],
                subject_key_identifier=row["subject_key_identifier"],
                not_before=from_micros(row["not_before"]),
                not_after=from_micros(row["not_after"]),
                current=row is ca_rows[-1],
                retired_at=optional_instant(row["retired_at"]),
            )
            for row in ca_rows
        )
        for ca_id, ca_rows in grouped.items()
    }


def _ca_view(row: Any, now: dt.datetime, keys: dict[str, tuple[KeyGenerationView, ...]]) -> CAView:
    kind = CAKind(row["kind"])
    expired = row["expired_certificates"]
    quota: RootQuota | IntermediateQuota
    if kind is CAKind.ROOT:
        total, available = row["quota_total"], row["quota_available"]
        quota = RootQuota(total=total, assigned=total - available, available=available)
    else:
        quota = IntermediateQuota(remaining=row["quota_remaining"], issued=row["quota_used"])
    return CAView(
        id=UUID(row["id"]),
        kind=kind,
        parent_id=None if row["parent_id"] is None else UUID(row["parent_id"]),
        subject=Subject(**json.loads(row["subject"])),
        key_algorithm=KeyAlgorithm(row["key_algorithm"]),
        status=_ca_status(CAStatus(row["status"]), row["not_after"], now),
        serial_number=row["serial_number"],
        not_before=optional_instant(row["not_before"]),
        not_after=optional_instant(row["not_after"]),
        validity_years=row["validity_years"],
        service_days=row["service_days"],
        service_until=optional_instant(row["service_until"]),
        quota=quota,
        certificates=CertificateCounts(
            issued=row["issued_certificates"] - expired,
            revoked=row["revoked_certificates"],
            expired=expired,
            deleted=row["deleted_certificates"],
        ),
        revoked_at=optional_instant(row["revoked_at"]),
        revocation_reason=_optional_reason(row["revocation_reason"]),
        created_at=from_micros(row["created_at"]),
        created_by=row["created_by"],
        key_generations=keys.get(row["id"], ()),
    )


def _ca_status(status: CAStatus, not_after: int | None, now: dt.datetime) -> CAViewStatus:
    """Revoked and pending stay as they are; otherwise a CA past its certificate's end is
    expired, whether enabled or disabled."""
    live = status in (CAStatus.ENABLED, CAStatus.DISABLED)
    if live and not_after is not None and not_after <= to_micros(now):
        return CAViewStatus.EXPIRED
    return CAViewStatus(status.value)


def _certificate_view(row: Any, now: dt.datetime) -> CertificateView:
    not_after = row["not_after"]
    status = CertificateViewStatus(row["status"])
    if status is CertificateViewStatus.ISSUED and not_after <= to_micros(now):
        status = CertificateViewStatus.EXPIRED
    return CertificateView(
        id=UUID(row["id"]),
        issuer_id=UUID(row["ca_id"]),
        serial_number=row["serial_number"],
        type=CertificateType(row["type"]),
        name=row["name"],
        common_name=row["common_name"],
        sans=_sans(row["sans"]),
        key_algorithm=KeyAlgorithm(row["key_algorithm"]),
        not_before=from_micros(row["not_before"]),
        not_after=from_micros(not_after),
        status=status,
        revoked_at=optional_instant(row["revoked_at"]),
        revocation_reason=_optional_reason(row["revocation_reason"]),
        requested_by=row["requested_by"],
        issued_at=from_micros(row["issued_at"]),
        position=row["position"],
        issuer_revoked_at=optional_instant(row["issuer_revoked_at"]),
    )


def _sans(encoded: str) -> tuple[SAN, ...]:
    pairs: Sequence[Sequence[str]] = json.loads(encoded)
    return tuple(SAN(SANType(kind), value) for kind, value in pairs)


def _revocation_entry(row: Any) -> RevocationEntry:
    return RevocationEntry(
        issuer_id=UUID(row["issuer_id"]),
        serial_number=row["serial_number"],
        certificate_id=UUID(row["certificate_id"]),
        revoked_at=from_micros(row["revoked_at"]),
        reason=RevocationReason(row["reason"]),
        not_after=from_micros(row["not_after"]),
        position=row["position"],
    )


def _optional_reason(value: str | None) -> RevocationReason | None:
    return None if value is None else RevocationReason(value)
