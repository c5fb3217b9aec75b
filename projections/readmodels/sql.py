"""The read-model tables and every statement on them, written once for SQLite and PostgreSQL.

Statements are written with ``?`` placeholders and ``{cas}``-style table names; a
:class:`Statements` object renders them for one backend (schema-qualified names and ``%s``
placeholders on PostgreSQL). Only constants and quoted identifiers are ever formatted into
SQL; every value travels as a parameter.

Instants are stored as integer microseconds since 1970-01-01 UTC, so comparisons and
ordering are the same on both backends.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from domain.model.values import CertificateStatus

CAS = "rm_cas"
CERTIFICATES = "rm_certificates"
REVOCATIONS = "rm_revocations"
CA_KEYS = "rm_ca_keys"
TABLES = (CAS, CERTIFICATES, REVOCATIONS, CA_KEYS)
NEWEST_TABLE = CA_KEYS
"""The table added last: read models without it were built by an older release, lack rows
it would hold for events already followed, and are rebuilt from the log when opened."""

_CREATE = (
    """CREATE TABLE IF NOT EXISTS {cas} (
        id TEXT PRIMARY KEY,
        position BIGINT NOT NULL,
        kind TEXT NOT NULL,
        parent_id TEXT,
        subject TEXT NOT NULL,
        key_algorithm TEXT NOT NULL,
        status TEXT NOT NULL,
        validity_years INTEGER NOT NULL,
        service_days INTEGER NOT NULL,
        service_until BIGINT,
        serial_number TEXT,
        not_before BIGINT,
        not_after BIGINT,
        revoked_at BIGINT,
        revocation_reason TEXT,
        quota_total BIGINT NOT NULL DEFAULT 0,
        quota_available BIGINT NOT NULL DEFAULT 0,
        quota_remaining BIGINT NOT NULL DEFAULT 0,
        quota_used BIGINT NOT NULL DEFAULT 0,
        issued_certificates BIGINT NOT NULL DEFAULT 0,
        revoked_certificates BIGINT NOT NULL DEFAULT 0,
        deleted_certificates BIGINT NOT NULL DEFAULT 0,
        created_at BIGINT NOT NULL,
        created_by TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS {certificates} (
        id TEXT PRIMARY KEY,
        position BIGINT NOT NULL UNIQUE,
        ca_id TEXT NOT NULL,
        serial_number TEXT NOT NULL,
        type TEXT NOT NULL,
        name TEXT NOT NULL,
        common_name TEXT NOT NULL,
        sans TEXT NOT NULL,
        search_text TEXT NOT NULL,
        key_algorithm TEXT NOT NULL,
        not_before BIGINT NOT NULL,
        not_after BIGINT NOT NULL,
        status TEXT NOT NULL,
        revoked_at BIGINT,
        revocation_reason TEXT,
        requested_by TEXT NOT NULL,
        issued_at BIGINT NOT NULL
    )""",
    # Keyset pages per issuer, with and without a status.
    "CREATE INDEX IF NOT EXISTS rm_certificates_by_ca ON {certificates} (ca_id, position)",
    # OCSP: is this serial one of the issuer's (listed) certificates?
    """CREATE INDEX IF NOT EXISTS rm_certificates_by_serial
        ON {certificates} (ca_id, serial_number)""",
    """CREATE INDEX IF NOT EXISTS rm_certificates_by_ca_status
        ON {certificates} (ca_id, status, position)""",
    # Counting a CA's expired certificates (status is there so the count reads the index
    # only). Partial, so that only a query naming the status literally can use it: pages,
    # which pass the status as a parameter, keep to the position-ordered indexes.
    """CREATE INDEX IF NOT EXISTS rm_certificates_issued_expiry
        ON {certificates} (ca_id, not_after, status) WHERE status = '{issued}'""",
    """CREATE TABLE IF NOT EXISTS {revocations} (
        issuer_id TEXT NOT NULL,
        serial_number TEXT NOT NULL,
        certificate_id TEXT NOT NULL,
        revoked_at BIGINT NOT NULL,
        reason TEXT NOT NULL,
        not_after BIGINT NOT NULL,
        position BIGINT NOT NULL,
        PRIMARY KEY (issuer_id, serial_number)
    )""",
    # What a CRL publisher has not seen yet: an issuer's entries after a log position.
    """CREATE INDEX IF NOT EXISTS rm_revocations_by_position
        ON {revocations} (issuer_id, position)""",
    # Every key a CA has had (generation 1 from its enablement, one more per rollover).
    """CREATE TABLE IF NOT EXISTS {ca_keys} (
        ca_id TEXT NOT NULL,
        generation INTEGER NOT NULL,
        key_storage TEXT NOT NULL,
        serial_number TEXT NOT NULL,
        subject_key_identifier TEXT,
        not_before BIGINT NOT NULL,
        not_after BIGINT NOT NULL,
        retired_at BIGINT,
        PRIMARY KEY (ca_id, generation)
    )""",
)

_CA_COLUMNS = (
    "c.id, c.position, c.kind, c.parent_id, c.subject, c.key_algorithm, c.status, "
    "c.validity_years, c.service_days, c.service_until, c.serial_number, c.not_before, "
    "c.not_after, c.revoked_at, c.revocation_reason, c.quota_total, c.quota_available, "
    "c.quota_remaining, c.quota_used, c.issued_certificates, c.revoked_certificates, "
    "c.deleted_certificates, c.created_at, c.created_by"
)
_EXPIRED_COUNT = (
    "(SELECT COUNT(*) FROM {certificates} t "
    "WHERE t.ca_id = c.id AND t.status = '{issued}' AND t.not_after <= ?) "
    "AS expired_certificates"
)
_CERTIFICATE_COLUMNS = (
    "id, position, ca_id, serial_number, type, name, common_name, sans, key_algorithm, "
    "not_before, not_after, status, revoked_at, revocation_reason, requested_by, issued_at, "
    "(SELECT r.revoked_at FROM {cas} r WHERE r.id = ca_id) AS issuer_revoked_at"
)
_CA_KEY_COLUMNS = (
    "ca_id, generation, key_storage, serial_number, subject_key_identifier, not_before, "
    "not_after, retired_at"
)
_REVOCATION_COLUMNS = (
    "issuer_id, serial_number, certificate_id, revoked_at, reason, not_after, position"
)


@dataclass(frozen=True)
class Dialect:
    """How one backend names tables and marks parameters."""

    qualify: Callable[[str], str]
    placeholder: str


SQLITE = Dialect(qualify=lambda table: table, placeholder="?")


def postgres_dialect(schema: str) -> Dialect:
    """Tables in ``schema`` (quoted), ``%s`` placeholders."""
    if any(mark in schema for mark in "%?{}"):
        # These would be read as parameter markers or template fields in statements.
        raise ValueError(f"unsupported character in PostgreSQL schema name {schema!r}")
    return Dialect(qualify=lambda table: f"{_quote(schema)}.{_quote(table)}", placeholder="%s")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class Statements:
    """Every statement on the read-model tables, rendered for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self.create = tuple(self._render(template) for template in _CREATE)
        self.drop = tuple(f"DROP TABLE IF EXISTS {dialect.qualify(t)}" for t in TABLES)
        self.insert_ca = self._render(
            "INSERT INTO {cas} (id, position, kind, parent_id, subject, key_algorithm, "
            "status, validity_years, service_days, quota_total, quota_available, "
            "created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.certify_ca = self._render(
            "UPDATE {cas} SET serial_number = ?, not_before = ?, not_after = ?, "
            "service_until = ? WHERE id = ?"
        )
        self.recertify_ca = self._render(
            "UPDATE {cas} SET serial_number = ?, not_before = ?, not_after = ? WHERE id = ?"
        )
        self.set_ca_status = self._render("UPDATE {cas} SET status = ? WHERE id = ?")
        self.renew_ca = self._render(
            "UPDATE {cas} SET service_days = ?, service_until = ? WHERE id = ?"
        )
        self.revoke_ca = self._render(
            "UPDATE {cas} SET status = ?, revoked_at = ?, revocation_reason = ? "
            "WHERE id = ? RETURNING parent_id, serial_number, not_after"
        )
        self.set_quota_remaining = self._render("UPDATE {cas} SET quota_remaining = ? WHERE id = ?")
        self.add_to_counters = self._render(
            "UPDATE {cas} SET quota_total = quota_total + ?, "
            "quota_available = quota_available + ?, quota_remaining = quota_remaining + ?, "
            "quota_used = quota_used + ?, issued_certificates = issued_certificates + ?, "
            "revoked_certificates = revoked_certificates + ?, "
            "deleted_certificates = deleted_certificates + ? WHERE id = ?"
        )
        self.insert_certificate = self._render(
            "INSERT INTO {certificates} (id, position, ca_id, serial_number, type, name, "
            "common_name, sans, search_text, key_algorithm, not_before, not_after, status, "
            "revoked_at, revocation_reason, requested_by, issued_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self.revoke_certificate = self._render(
            "UPDATE {certificates} SET status = ?, revoked_at = ?, revocation_reason = ? "
            "WHERE id = ? RETURNING ca_id, serial_number, not_after"
        )
        self.delete_certificate = self._render(
            "DELETE FROM {certificates} WHERE id = ? RETURNING ca_id, status"
        )
        self.insert_revocation = self._render(
            "INSERT INTO {revocations} ({revocation_columns}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        self.select_cas = self._render(
            "SELECT {ca_columns}, {expired_count} FROM {cas} c ORDER BY c.position"
        )
        self.select_ca_page = self._render(
            "SELECT {ca_columns}, {expired_count} FROM {cas} c WHERE c.position > ? "
            "ORDER BY c.position LIMIT ?"
        )
        self.select_ca = self._render(
            "SELECT {ca_columns}, {expired_count} FROM {cas} c WHERE c.id = ?"
        )
        self.select_certificate = self._render(
            "SELECT {certificate_columns} FROM {certificates} WHERE id = ?"
        )
        # The next generation of a CA: 1 at its enablement, one more per rollover.
        self.add_ca_key = self._render(
            "INSERT INTO {ca_keys} ({ca_key_columns}) "
            "SELECT ?, COALESCE(MAX(generation), 0) + 1, ?, ?, ?, ?, ?, NULL FROM {ca_keys} "
            "WHERE ca_id = ?"
        )
        self.retire_ca_key = self._render(
            "UPDATE {ca_keys} SET retired_at = ? WHERE ca_id = ? AND generation = ?"
        )
        self.select_ca_keys = self._render(
            "SELECT {ca_key_columns} FROM {ca_keys} ORDER BY ca_id, generation"
        )
        self.select_keys_of_ca = self._render(
            "SELECT {ca_key_columns} FROM {ca_keys} WHERE ca_id = ? ORDER BY generation"
        )
        self.select_revocations = self._render(
            "SELECT {revocation_columns} FROM {revocations} "
            "WHERE issuer_id = ? ORDER BY serial_number"
        )
        self.select_revocations_after = self._render(
            "SELECT {revocation_columns} FROM {revocations} "
            "WHERE issuer_id = ? AND position > ? ORDER BY position"
        )
        self.select_issued_serial = self._render(
            "SELECT 1 FROM {certificates} WHERE ca_id = ? AND serial_number = ? "
            "UNION ALL SELECT 1 FROM {cas} WHERE parent_id = ? AND serial_number = ?"
        )
        self.select_revocation = self._render(
            "SELECT {revocation_columns} FROM {revocations} "
            "WHERE issuer_id = ? AND serial_number = ?"
        )

    def certificate_page(self, conditions: Sequence[str]) -> str:
        """A page of certificates, newest first, under ``conditions`` (fixed SQL fragments
        with ``?`` parameters, joined by AND); the last parameter is the row limit."""
        where = " WHERE " + " AND ".join(conditions) if conditions else ""
        return self._render(
            "SELECT {certificate_columns} FROM {certificates}{where} "
            "ORDER BY position DESC LIMIT ?",
            where=where,
        )

    def _render(self, template: str, where: str = "") -> str:
        qualify = self._dialect.qualify
        names = {
            "cas": qualify(CAS),
            "certificates": qualify(CERTIFICATES),
            "revocations": qualify(REVOCATIONS),
            "ca_keys": qualify(CA_KEYS),
            "issued": CertificateStatus.ISSUED.value,
        }
        # Fragments first (they hold names themselves), then the names.
        expanded = template.format(
            ca_columns=_CA_COLUMNS,
            expired_count=_EXPIRED_COUNT,
            certificate_columns=_CERTIFICATE_COLUMNS,
            revocation_columns=_REVOCATION_COLUMNS,
            ca_key_columns=_CA_KEY_COLUMNS,
            where=where,
            **{name: "{" + name + "}" for name in names},
        )
        return expanded.format(**names).replace("?", self._dialect.placeholder)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for a PostgreSQL advisory lock called ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def to_micros(moment: dt.datetime) -> int:
    """``moment`` (timezone-aware) as integer microseconds since the epoch."""
    if moment.tzinfo is None:
        raise ValueError("read models compare instants in UTC; pass an aware datetime")
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> dt.datetime:
    """The UTC instant ``micros`` microseconds after the epoch."""
    return _EPOCH + dt.timedelta(microseconds=micros)


def optional_micros(moment: dt.datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


def optional_instant(micros: int | None) -> dt.datetime | None:
    return None if micros is None else from_micros(micros)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
