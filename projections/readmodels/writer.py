"""Row changes for the read models, made inside one transaction that a view opened.

The writer turns domain events into statements. To keep catch-up fast it defers what
dominates the log and writes it in bulk at :meth:`ReadModelWriter.flush`: new certificate
rows, revocation index entries, and per-CA counter changes (which are additive, so their
order does not matter). A certificate revoked or deleted while its row is still deferred
is changed in memory; the one absolute counter change (an intermediate's new remaining
quota) discards the deferred change it overrides. Every other statement runs at once and
touches no deferred data, so the result is the one of applying events one by one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from operator import attrgetter
from typing import Any, Protocol
from uuid import UUID

from domain.model.authority import CertificateAuthority
from domain.model.certificate import Certificate
from domain.model.certificate_facts import certificate_facts, subject_key_identifier
from domain.model.values import CAStatus, CertificateStatus, KeyStorage
from projections.readmodels.sql import Statements, optional_micros, to_micros


class DBCursor(Protocol):
    """The part of a DB-API cursor the read models use (sqlite3 and psycopg both fit)."""

    def execute(self, query: str, params: Sequence[Any], /) -> object: ...

    def executemany(self, query: str, params_seq: Sequence[Sequence[Any]], /) -> object: ...

    def fetchall(self) -> Sequence[Any]: ...


@dataclass(frozen=True, slots=True)
class Issued:
    """What the read models keep of a CertificateIssued: its stored values (enums by
    value, instants in microseconds, SANs as ``[type, value]`` pairs)."""

    id: str
    ca_id: str
    serial_number: str
    type: str
    name: str
    common_name: str
    sans: list[list[str]]
    key_algorithm: str
    not_before: int
    not_after: int
    actor: str
    issued_at: int


@dataclass
class _CertificateRow:
    """A deferred ``rm_certificates`` row, in the column order of ``insert_certificate``."""

    id: str
    position: int
    ca_id: str
    serial_number: str
    type: str
    name: str
    common_name: str
    sans: str
    search_text: str
    key_algorithm: str
    not_before: int
    not_after: int
    status: str
    revoked_at: int | None
    revocation_reason: str | None
    requested_by: str
    issued_at: int


@dataclass
class _Counters:
    """Additive changes to one CA row, in the column order of ``add_to_counters``."""

    quota_total: int = 0
    quota_available: int = 0
    quota_remaining: int = 0
    quota_used: int = 0
    issued: int = 0
    revoked: int = 0
    deleted: int = 0


# Plain attribute getters: dataclasses.astuple deep-copies every field, too slow per row.
_certificate_params = attrgetter(*(field.name for field in fields(_CertificateRow)))
_counter_params = attrgetter(*(field.name for field in fields(_Counters)))


class ReadModelWriter:
    """The :class:`~projections.fold.EventFold` of the read models: applies events to their
    tables through ``cursor``, in event order. A table of the text index (SQLite's) is
    kept only while ``search_table`` says it exists; a catch-up from 0 builds it at its end.
    """

    def __init__(self, cursor: DBCursor, sql: Statements, *, search_table: bool = True) -> None:
        self._cursor = cursor
        self._sql = sql
        self._insert_search = sql.insert_search if search_table else None
        self._delete_search = sql.delete_search if search_table else None
        self._certificates: dict[str, _CertificateRow] = {}
        self._revocations: list[tuple[str, str, str, int, str, int, int]] = []
        self._counters: dict[str, _Counters] = {}

    # --- CAs ------------------------------------------------------------------------------

    def add_ca(self, event: CertificateAuthority.CACreated, position: int) -> None:
        """A new, pending CA; a root starts with its included certificates as quota."""
        self._execute(
            self._sql.insert_ca,
            (
                str(event.originator_id),
                position,
                event.kind.value,
                None if event.parent_id is None else str(event.parent_id),
                json.dumps(asdict(event.subject), separators=(",", ":")),
                event.key_algorithm.value,
                CAStatus.PENDING.value,
                event.validity_years,
                event.service_days,
                event.included_certificates,
                event.included_certificates,
                to_micros(event.timestamp),
                event.actor,
            ),
        )

    def enable_ca(self, event: CertificateAuthority.CAEnabled) -> None:
        """Enabled; the first enablement also brings the CA's certificate and service end."""
        ca_id = str(event.originator_id)
        self._execute(self._sql.set_ca_status, (CAStatus.ENABLED.value, ca_id))
        if event.certificate_der is not None:
            certificate = certificate_facts(event.certificate_der)
            self._execute(
                self._sql.certify_ca,
                (
                    certificate.serial_number,
                    to_micros(certificate.not_before),
                    to_micros(certificate.not_after),
                    optional_micros(event.service_until),
                    ca_id,
                ),
            )
            self._add_key(ca_id, event.key_storage, event.certificate_der)

    def roll_over_ca(self, event: CertificateAuthority.CAKeyRolledOver) -> None:
        """A new key: the CA is listed with its new certificate's serial and validity."""
        certificate = certificate_facts(event.certificate_der)
        self._execute(
            self._sql.recertify_ca,
            (
                certificate.serial_number,
                to_micros(certificate.not_before),
                to_micros(certificate.not_after),
                str(event.originator_id),
            ),
        )
        self._add_key(str(event.originator_id), event.key_storage, event.certificate_der)

    def _add_key(self, ca_id: str, storage: KeyStorage, certificate_der: bytes) -> None:
        """The CA's next key generation, with its certificate's serial, SKI and validity."""
        certificate = certificate_facts(certificate_der)
        ski = subject_key_identifier(certificate_der)
        self._execute(
            self._sql.add_ca_key,
            (
                ca_id,
                storage.value,
                certificate.serial_number,
                None if ski is None else ski.hex(),
                to_micros(certificate.not_before),
                to_micros(certificate.not_after),
                ca_id,
            ),
        )

    def retire_ca_key(self, event: CertificateAuthority.CAKeyRetired) -> None:
        """The key generation is listed as retired, from the event's time."""
        self._execute(
            self._sql.retire_ca_key,
            (to_micros(event.timestamp), str(event.originator_id), event.generation),
        )

    def disable_ca(self, event: CertificateAuthority.CADisabled) -> None:
        self._execute(self._sql.set_ca_status, (CAStatus.DISABLED.value, str(event.originator_id)))

    def renew_ca(self, event: CertificateAuthority.CAServiceRenewed) -> None:
        self._execute(
            self._sql.renew_ca,
            (event.service_days, to_micros(event.service_until), str(event.originator_id)),
        )

    def revoke_ca(self, event: CertificateAuthority.CARevoked, position: int) -> None:
        """Revoked; the CA's certificate enters its parent's revocation index."""
        ca_id = str(event.originator_id)
        rows = self._returning(
            self._sql.revoke_ca,
            (CAStatus.REVOKED.value, to_micros(event.revoked_at), event.reason.value, ca_id),
        )
        for row in rows:
            if row["parent_id"] is not None and row["serial_number"] is not None:
                self._index_revocation(
                    row["parent_id"], row["serial_number"], ca_id, event, row["not_after"], position
                )

    # --- quota ----------------------------------------------------------------------------

    def purchase_quota(self, event: CertificateAuthority.QuotaPurchased) -> None:
        counters = self._counters_of(str(event.originator_id))
        counters.quota_total += event.count
        counters.quota_available += event.count

    def assign_quota(self, event: CertificateAuthority.QuotaAssigned) -> None:
        """The root's pool gives (or takes back) the change in the intermediate's quota."""
        counters = self._counters_of(str(event.originator_id))
        counters.quota_available -= event.remaining - event.previous_remaining

    def receive_quota(self, event: CertificateAuthority.QuotaReceived) -> None:
        """The intermediate's remaining quota is set, whatever it was."""
        ca_id = str(event.originator_id)
        self._counters_of(ca_id).quota_remaining = 0
        self._execute(self._sql.set_quota_remaining, (event.remaining, ca_id))

    def consume_quota(self, ca_id: UUID | str, units: int) -> None:
        """``units`` of the intermediate's quota spent on certificates."""
        counters = self._counters_of(str(ca_id))
        counters.quota_remaining -= units
        counters.quota_used += units

    # --- certificates ---------------------------------------------------------------------

    def add_certificate(self, event: Certificate.CertificateIssued, position: int) -> None:
        """A new certificate at the head of its issuer's list."""
        self.add_issued(
            Issued(
                id=str(event.originator_id),
                ca_id=str(event.ca_id),
                serial_number=event.serial_number,
                type=event.type.value,
                name=event.name,
                common_name=event.subject.common_name,
                sans=[[san.type.value, san.value] for san in event.sans],
                key_algorithm=event.key_algorithm.value,
                not_before=to_micros(event.not_before),
                not_after=to_micros(event.not_after),
                actor=event.actor,
                issued_at=to_micros(event.timestamp),
            ),
            position,
        )

    def add_issued(self, issued: Issued, position: int) -> None:
        """A new certificate, from the values its CertificateIssued stores."""
        self._certificates[issued.id] = _CertificateRow(
            id=issued.id,
            position=position,
            ca_id=issued.ca_id,
            serial_number=issued.serial_number,
            type=issued.type,
            name=issued.name,
            common_name=issued.common_name,
            sans=json.dumps(issued.sans),
            search_text=_search_text(
                issued.common_name,
                *(value for _, value in issued.sans),
                issued.name,
                issued.serial_number,
            ),
            key_algorithm=issued.key_algorithm,
            not_before=issued.not_before,
            not_after=issued.not_after,
            status=CertificateStatus.ISSUED.value,
            revoked_at=None,
            revocation_reason=None,
            requested_by=issued.actor,
            issued_at=issued.issued_at,
        )
        self._counters_of(issued.ca_id).issued += 1

    def revoke_certificate(self, event: Certificate.CertificateRevoked, position: int) -> None:
        """Revoked; the certificate enters its issuer's revocation index."""
        certificate_id = str(event.originator_id)
        revoked_at = to_micros(event.revoked_at)
        deferred = self._certificates.get(certificate_id)
        if deferred is not None:
            deferred.status = CertificateStatus.REVOKED.value
            deferred.revoked_at = revoked_at
            deferred.revocation_reason = event.reason.value
            revoked = [(deferred.ca_id, deferred.serial_number, deferred.not_after)]
        else:
            rows = self._returning(
                self._sql.revoke_certificate,
                (CertificateStatus.REVOKED.value, revoked_at, event.reason.value, certificate_id),
            )
            revoked = [(row["ca_id"], row["serial_number"], row["not_after"]) for row in rows]
        for ca_id, serial_number, not_after in revoked:
            counters = self._counters_of(ca_id)
            counters.issued -= 1
            counters.revoked += 1
            self._index_revocation(ca_id, serial_number, certificate_id, event, not_after, position)

    def delete_certificate(self, event: Certificate.CertificateDeleted) -> None:
        """Off the list for good; a revocation index entry stays."""
        certificate_id = str(event.originator_id)
        deferred = self._certificates.pop(certificate_id, None)
        if deferred is not None:
            deleted = [(deferred.ca_id, deferred.status)]
        else:
            rows = self._returning(self._sql.delete_certificate, (certificate_id,))
            deleted = [(row["ca_id"], row["status"]) for row in rows]
            if rows and self._delete_search is not None:
                self._execute(self._delete_search, (rows[0]["position"], rows[0]["search_text"]))
        for ca_id, status in deleted:
            counters = self._counters_of(ca_id)
            counters.deleted += 1
            if status == CertificateStatus.REVOKED.value:
                counters.revoked -= 1
            else:
                counters.issued -= 1

    # --- statements -----------------------------------------------------------------------

    def flush(self) -> None:
        """Write what was deferred; the view calls this before the transaction commits."""
        if self._certificates:
            rows = [_certificate_params(row) for row in self._certificates.values()]
            self._cursor.executemany(self._sql.insert_certificate, rows)
            if self._insert_search is not None:
                terms = [(row.position, row.search_text) for row in self._certificates.values()]
                self._cursor.executemany(self._insert_search, terms)
            self._certificates = {}
        if self._revocations:
            self._cursor.executemany(self._sql.insert_revocation, self._revocations)
            self._revocations = []
        if self._counters:
            self._cursor.executemany(
                self._sql.add_to_counters,
                [(*_counter_params(counters), ca_id) for ca_id, counters in self._counters.items()],
            )
            self._counters = {}

    def _index_revocation(
        self,
        issuer_id: str,
        serial_number: str,
        certificate_id: str,
        event: Certificate.CertificateRevoked | CertificateAuthority.CARevoked,
        not_after: int,
        position: int,
    ) -> None:
        self._revocations.append(
            (
                issuer_id,
                serial_number,
                certificate_id,
                to_micros(event.revoked_at),
                event.reason.value,
                not_after,
                position,
            )
        )

    def _counters_of(self, ca_id: str) -> _Counters:
        counters = self._counters.get(ca_id)
        if counters is None:
            counters = self._counters[ca_id] = _Counters()
        return counters

    def _execute(self, statement: str, params: Sequence[Any]) -> None:
        self._cursor.execute(statement, params)

    def _returning(self, statement: str, params: Sequence[Any]) -> Sequence[Any]:
        self._cursor.execute(statement, params)
        return self._cursor.fetchall()


def _search_text(*values: str) -> str:
    """The lower-cased values a text search looks in, one per line, each once (a server
    certificate's name, common name and DNS name are often the same)."""
    return "\n".join(dict.fromkeys(values)).lower()
