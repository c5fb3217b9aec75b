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
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from domain.model.values import CertificateStatus

CAS = "rm_cas"
CERTIFICATES = "rm_certificates"
REVOCATIONS = "rm_revocations"
SCHEMA = "rm_schema"
SEARCH = "rm_certificates_search"
CA_KEYS = "rm_ca_keys"
TABLES = (CAS, CERTIFICATES, REVOCATIONS, CA_KEYS)
SCHEMA_VERSION = 4
"""The read models' table layout; a runner finding another rebuilds them (2: text search
index, and search text with the display name and serial; 3: every key a CA has had;
4: SQLite's text index reads the search text from the certificates instead of a copy)."""
MIN_INDEXED_TEXT = 3
"""Trigram indexes find texts of at least this many characters; shorter ones scan."""

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
    "CREATE TABLE IF NOT EXISTS {schema} (version INTEGER NOT NULL)",
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

# Secondary indexes, by name: no write of the projection reads them (it finds rows by their
# keys), so a catch-up from position 0 drops them and builds each once at its end.
_INDEXES = (
    # Keyset pages per issuer, with and without a status.
    ("rm_certificates_by_ca", "{certificates} (ca_id, position)"),
    # OCSP: is this serial one of the issuer's (listed) certificates?
    ("rm_certificates_by_serial", "{certificates} (ca_id, serial_number)"),
    ("rm_certificates_by_ca_status", "{certificates} (ca_id, status, position)"),
    # Counting a CA's expired certificates (status is there so the count reads the index
    # only). Partial, so that only a query naming the status literally can use it: pages,
    # which pass the status as a parameter, keep to the position-ordered indexes.
    (
        "rm_certificates_issued_expiry",
        "{certificates} (ca_id, not_after, status) WHERE status = '{issued}'",
    ),
    # What a CRL publisher has not seen yet: an issuer's entries after a log position.
    ("rm_revocations_by_position", "{revocations} (issuer_id, position)"),
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


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for a PostgreSQL advisory lock called ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class TextSearch:
    """How one backend finds certificates by a text of MIN_INDEXED_TEXT characters or more
    without scanning: statements as templates, and the parameter a text becomes."""

    create: tuple[str, ...]
    build: tuple[str, ...]  # the index, made from the rows there are, in one transaction
    drop: tuple[str, ...]  # the index (a catch-up from position 0 builds it at its end)
    source: str  # the FROM clause of a page searched by text
    condition: str
    order: str  # the column pages are ordered and cut by
    insert: str | None  # a search row (position, text), where the index is a table
    delete: str | None  # the search row at a position
    optimize: str | None  # after a bulk load: merge the index into one segment
    parameter: Callable[[str], str]
    indexable: Callable[[str], bool]  # whether the index can find a (lower-cased) text


def glob_pattern(text: str) -> str:
    """A GLOB pattern for ``text`` anywhere, with GLOB's wildcards taken literally."""
    escaped = "".join(f"[{c}]" if c in "*?[" else c for c in text)
    return f"*{escaped}*"


def has_trigram_run(text: str) -> bool:
    """True if ``text`` holds MIN_INDEXED_TEXT characters in a row that are not GLOB
    wildcards: FTS5 finds a GLOB pattern by those runs' trigrams, and none without any."""
    return any(len(run) >= MIN_INDEXED_TEXT for run in re.split(r"[*?\[]", text))


def has_trigram(text: str) -> bool:
    return len(text) >= MIN_INDEXED_TEXT


def like_pattern(text: str) -> str:
    """A LIKE pattern for ``text`` anywhere, with LIKE's wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


LIKE = "search_text LIKE ? ESCAPE '\\'"

# SQLite: an FTS5 table of trigrams keyed by the certificate's position. The index finds
# the rows holding every trigram of the text; SQLite then checks the GLOB on each, so a
# match is exactly a substring (case-sensitive, the text being lower-cased already).
# Without positions (detail=none) and with fewer merges the index costs less to keep. It
# keeps no copy of the text (external content: it reads the certificate's search_text by
# position), so deleting an entry needs the text it was made from. CROSS JOIN keeps the
# index the outer loop, walked in position order, whatever the planner guesses; each match
# then finds its row by the unique position. Dropped or not, it is never partial: made in
# one transaction from every row ('rebuild'), then kept row by row while it exists.
_FTS5 = TextSearch(
    create=(),
    build=(
        "CREATE VIRTUAL TABLE {search} USING fts5(search_text, content = '{certificates}', "
        "content_rowid = 'position', tokenize = 'trigram case_sensitive 1', detail = none)",
        "INSERT INTO {search} ({search}, rank) VALUES ('automerge', 16)",
        "INSERT INTO {search} ({search}) VALUES ('rebuild')",
    ),
    drop=("DROP TABLE IF EXISTS {search}",),
    source="{search} CROSS JOIN {certificates} ON position = {search}.rowid",
    condition="{search}.search_text GLOB ?",
    order="{search}.rowid",
    insert="INSERT INTO {search} (rowid, search_text) VALUES (?, ?)",
    delete="INSERT INTO {search} ({search}, rowid, search_text) VALUES ('delete', ?, ?)",
    optimize="INSERT INTO {search} ({search}) VALUES ('optimize')",
    parameter=glob_pattern,
    indexable=has_trigram_run,
)

# PostgreSQL: a pg_trgm GIN index on the column, which the planner uses for LIKE. The
# extension is created once per database, turn by turn (a race fails on its catalogue).
_PG_TRGM = TextSearch(
    create=(
        f"SELECT pg_advisory_xact_lock({advisory_key('pca-readmodels-pg-trgm')})",
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    ),
    build=(
        "CREATE INDEX IF NOT EXISTS " + SEARCH + " ON {certificates} "
        "USING gin (search_text gin_trgm_ops)",
    ),
    drop=("DROP INDEX IF EXISTS {search}",),
    source="{certificates}",
    condition=LIKE,
    order="position",
    insert=None,
    delete=None,
    optimize=None,  # VACUUM, which analyze runs, flushes the GIN index's pending entries
    parameter=like_pattern,
    indexable=has_trigram,
)


@dataclass(frozen=True)
class Dialect:
    """How one backend names tables, marks parameters and searches text."""

    qualify: Callable[[str], str]
    placeholder: str
    search: TextSearch


SQLITE = Dialect(qualify=lambda table: table, placeholder="?", search=_FTS5)


def postgres_dialect(schema: str) -> Dialect:
    """Tables in ``schema`` (quoted), ``%s`` placeholders."""
    if any(mark in schema for mark in "%?{}"):
        # These would be read as parameter markers or template fields in statements.
        raise ValueError(f"unsupported character in PostgreSQL schema name {schema!r}")
    return Dialect(
        qualify=lambda table: f"{_quote(schema)}.{_quote(table)}",
        placeholder="%s",
        search=_PG_TRGM,
    )


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class Statements:
    """Every statement on the read-model tables, rendered for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        search = dialect.search
        self.create_indexes = tuple(
            self._render(f"CREATE INDEX IF NOT EXISTS {name} ON {on}") for name, on in _INDEXES
        )
        self.build_search = tuple(self._render(template) for template in search.build)
        self.drop_search = tuple(self._render(template) for template in search.drop)
        self.drop_indexes = (
            *self.drop_search,
            *(f"DROP INDEX IF EXISTS {dialect.qualify(name)}" for name, _ in _INDEXES),
        )
        self.create = (
            *(self._render(template) for template in (*_CREATE, *search.create)),
            *self.create_indexes,
        )
        self.drop = (
            *self.drop_search,
            *(f"DROP TABLE IF EXISTS {dialect.qualify(t)}" for t in (*TABLES, SCHEMA)),
        )
        self.select_schema_version = self._render("SELECT version FROM {schema}")
        self.insert_schema_version = self._render("INSERT INTO {schema} (version) VALUES (?)")
        self.search_parameter = search.parameter
        self.search_indexable = search.indexable
        self.insert_search = None if search.insert is None else self._render(search.insert)
        self.delete_search = None if search.delete is None else self._render(search.delete)
        self.optimize_search = None if search.optimize is None else self._render(search.optimize)
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
            "DELETE FROM {certificates} WHERE id = ? RETURNING ca_id, status, position, search_text"
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

    def certificate_page(
        self, conditions: Sequence[str], cursor: bool, *, indexed_text: bool = False
    ) -> str:
        """A page of certificates, newest first, under ``conditions`` (fixed SQL fragments
        with ``?`` parameters, joined by AND), then with ``cursor`` one more parameter,
        the position pages continue below; the last parameter is the row limit.

        With ``indexed_text`` the first parameter is a text search term (the dialect's
        ``search.parameter``), answered from the text index instead of a scan.
        """
        search = self._dialect.search
        order = search.order if indexed_text else "position"
        source = search.source if indexed_text else "{certificates}"
        clauses = [
            *([search.condition] if indexed_text else []),
            *conditions,
            *([f"{order} < ?"] if cursor else []),
        ]
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return self._render(
            "SELECT {certificate_columns} FROM {source}{where} ORDER BY {order} DESC LIMIT ?",
            where=where,
            source=source,
            order=order,
        )

    def _render(self, template: str, **fragments: str) -> str:
        qualify = self._dialect.qualify
        names = {
            "cas": qualify(CAS),
            "certificates": qualify(CERTIFICATES),
            "revocations": qualify(REVOCATIONS),
            "schema": qualify(SCHEMA),
            "search": qualify(SEARCH),
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
            **fragments,
            **{name: "{" + name + "}" for name in names},
        )
        return expanded.format(**names).replace("?", self._dialect.placeholder)


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
