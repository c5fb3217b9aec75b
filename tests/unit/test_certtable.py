"""The compact certificate table of point-in-time state reads back exactly what went in."""

from __future__ import annotations

import datetime as dt
from uuid import uuid4

import pytest

from domain.model.values import RevocationReason
from projections.audit.certtable import CertificateAuditStatus, CertificateState, CertificateTable

END = dt.datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "serial",
    ["1", "7f" * 20, "80" + "00" * 20, "0abc", "ABC", "ff" * 40, "not hex", "0x1f", "-5"],
)
def test_every_serial_reads_back_as_written(serial: str) -> None:
    table = CertificateTable()
    table.add(uuid4(), uuid4(), serial, END)
    assert table[0].serial_number == serial


def test_rows_read_back_as_states_and_compare_with_a_tuple() -> None:
    issuer = uuid4()
    ids = [uuid4() for _ in range(3)]
    table = CertificateTable()
    for n, certificate_id in enumerate(ids):
        table.add(certificate_id, issuer, f"{n + 10:x}", END + dt.timedelta(days=n))
    revoked_at = END - dt.timedelta(days=9)
    table.revoke(table.row(ids[1]), revoked_at, RevocationReason.SUPERSEDED)
    table.delete(table.row(ids[2]))
    expected = (
        CertificateState(ids[0], issuer, "a", CertificateAuditStatus.ISSUED, END),
        CertificateState(
            ids[1],
            issuer,
            "b",
            CertificateAuditStatus.REVOKED,
            END + dt.timedelta(days=1),
            revoked_at,
            RevocationReason.SUPERSEDED,
        ),
        CertificateState(
            ids[2], issuer, "c", CertificateAuditStatus.DELETED, END + dt.timedelta(days=2)
        ),
    )
    assert table == expected
    assert (table[-1], table[1:]) == (expected[-1], expected[1:])
    assert table != expected[:2]
    with pytest.raises(IndexError):
        table[3]


def test_expiry_counts_only_issued_certificates_ended_by_then() -> None:
    first, second = uuid4(), uuid4()
    table = CertificateTable()
    table.add(uuid4(), first, "1", END)
    table.add(uuid4(), first, "2", END + dt.timedelta(microseconds=1))
    revoked = uuid4()
    table.add(revoked, second, "3", END)
    table.revoke(table.row(revoked), END, RevocationReason.KEY_COMPROMISE)
    assert table.expire(END) == {first: 1}
    assert [state.status for state in table] == [
        CertificateAuditStatus.EXPIRED,
        CertificateAuditStatus.ISSUED,
        CertificateAuditStatus.REVOKED,
    ]
