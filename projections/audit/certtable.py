"""The certificates of a point-in-time state, in compact columns instead of one object each.

A replay of a million certificates kept a :class:`CertificateState` per certificate (with
its UUID, serial string and datetime): about 430 bytes each, 482 MB at its peak. Here a
certificate takes a row of fixed-width columns (its id's 16 bytes, its serial as 21 bytes,
its end as microseconds, its status as one byte, its issuer as an index) plus its entry in
the id index; revocation details are kept only for the revoked ones. Rows are read back as
:class:`CertificateState` values, so the table is a plain sequence of them to its readers.
"""

from __future__ import annotations

import datetime as dt
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import overload
from uuid import UUID

from domain.model.values import RevocationReason

_SERIAL_OCTETS = 21  # RFC 5280 allows 20 octets; a positive one may need a 21st
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


class CertificateAuditStatus(Enum):
    """A certificate's status at a cut; unlike a list, the audit state keeps deleted ones."""

    ISSUED = "issued"
    REVOKED = "revoked"
    EXPIRED = "expired"
    DELETED = "deleted"


_STATUSES = tuple(CertificateAuditStatus)
_CODES = {status: code for code, status in enumerate(_STATUSES)}
_ISSUED = _CODES[CertificateAuditStatus.ISSUED]


@dataclass(frozen=True, slots=True)
class CertificateState:
    """One end-entity certificate at a cut: only what its status and revocation need."""

    id: UUID
    issuer_id: UUID
    serial_number: str
    status: CertificateAuditStatus
    not_after: dt.datetime
    revoked_at: dt.datetime | None = None
    revocation_reason: RevocationReason | None = None


class CertificateTable(Sequence[CertificateState]):
    """Certificates in the order they were added, each found by its id while folding."""

    def __init__(self) -> None:
        self._rows: dict[int, int] = {}  # the id as an integer -> its row
        self._ids = bytearray()
        self._issuers: list[UUID] = []
        self._issuer_index: dict[UUID, int] = {}
        self._issuer_of = array("I")
        self._serials = bytearray()
        self._odd_serials: dict[int, str] = {}  # not canonical hex, or too long for the column
        self._not_after = array("q")
        self._status = bytearray()
        self._revocations: dict[int, tuple[dt.datetime, RevocationReason]] = {}

    def add(
        self, certificate_id: UUID, issuer_id: UUID, serial: str, not_after: dt.datetime
    ) -> None:
        """A new certificate, issued."""
        row = len(self._status)
        self._rows[certificate_id.int] = row
        self._ids += certificate_id.bytes
        issuer = self._issuer_index.setdefault(issuer_id, len(self._issuers))
        if issuer == len(self._issuers):
            self._issuers.append(issuer_id)
        self._issuer_of.append(issuer)
        self._serials += _serial_octets(serial) or self._odd(row, serial)
        self._not_after.append((not_after - _EPOCH) // _MICROSECOND)
        self._status.append(_ISSUED)

    def row(self, certificate_id: UUID) -> int:
        """The row of the certificate ``certificate_id`` (KeyError if it was never added)."""
        return self._rows[certificate_id.int]

    def revoke(self, row: int, revoked_at: dt.datetime, reason: RevocationReason) -> None:
        self._status[row] = _CODES[CertificateAuditStatus.REVOKED]
        self._revocations[row] = (revoked_at, reason)

    def delete(self, row: int) -> None:
        self._status[row] = _CODES[CertificateAuditStatus.DELETED]

    def expire(self, time: dt.datetime) -> Counter[UUID]:
        """Mark issued certificates ended at or before ``time`` expired; how many per issuer."""
        limit = (time - _EPOCH) // _MICROSECOND
        expired: Counter[UUID] = Counter()
        status, not_after, issuer_of = self._status, self._not_after, self._issuer_of
        for row in range(len(status)):
            if status[row] == _ISSUED and not_after[row] <= limit:
                status[row] = _CODES[CertificateAuditStatus.EXPIRED]
                expired[self._issuers[issuer_of[row]]] += 1
        return expired

    def issuer_id(self, row: int) -> UUID:
        return self._issuers[self._issuer_of[row]]

    def status(self, row: int) -> CertificateAuditStatus:
        return _STATUSES[self._status[row]]

    def serial_number(self, row: int) -> str:
        odd = self._odd_serials.get(row)
        if odd is not None:
            return odd
        start = row * _SERIAL_OCTETS
        return format(int.from_bytes(self._serials[start : start + _SERIAL_OCTETS]), "x")

    def not_after(self, row: int) -> dt.datetime:
        return _EPOCH + dt.timedelta(microseconds=self._not_after[row])

    def __len__(self) -> int:
        return len(self._status)

    @overload
    def __getitem__(self, index: int) -> CertificateState: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[CertificateState]: ...

    def __getitem__(self, index: int | slice) -> CertificateState | Sequence[CertificateState]:
        if isinstance(index, slice):
            return tuple(self[row] for row in range(*index.indices(len(self))))
        row = range(len(self))[index]  # IndexError beyond the end, as a tuple's
        revoked_at, reason = self._revocations.get(row, (None, None))
        return CertificateState(
            id=UUID(bytes=bytes(self._ids[row * 16 : row * 16 + 16])),
            issuer_id=self.issuer_id(row),
            serial_number=self.serial_number(row),
            status=self.status(row),
            not_after=self.not_after(row),
            revoked_at=revoked_at,
            revocation_reason=reason,
        )

    def __iter__(self) -> Iterator[CertificateState]:
        return (self[row] for row in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable while folding

    def _odd(self, row: int, serial: str) -> bytes:
        self._odd_serials[row] = serial
        return bytes(_SERIAL_OCTETS)


def _serial_octets(serial: str) -> bytes | None:
    """``serial`` in the fixed-width column, or None if it would not read back the same
    (upper case, leading zeros, not hex, or longer than the column)."""
    try:
        value = int(serial, 16)
    except ValueError:
        return None
    if value < 0 or format(value, "x") != serial or value.bit_length() > 8 * _SERIAL_OCTETS:
        return None
    return value.to_bytes(_SERIAL_OCTETS)
