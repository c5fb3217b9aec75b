"""The request and response bodies of the HTTP API, declared once (see api/http/schema.py)."""

from __future__ import annotations

from api.http.errors import MAX_DETAIL, MAX_FIELD, MAX_INSTANCE
from api.http.params import MAX_IDEMPOTENCY_KEY
from api.http.schema import AnyObject, Array, Bool, Int, Nullable, Obj, PerItem, Str, Uuid
from domain.application.commands import (
    CA_DEFAULTS,
    DEFAULT_CA_KEY_ALGORITHM,
    DEFAULT_LEAF_KEY_ALGORITHM,
    INCLUDE_CRL_BY_DEFAULT,
)
from domain.model.ca_rules import MAX_CA_YEARS, MAX_LEAF_DAYS, MAX_QUOTA_STEP, MAX_SERVICE_DAYS
from domain.model.validation import MAX_SANS
from domain.model.values import (
    CAKind,
    CAStatus,
    CertificateType,
    KeyAlgorithm,
    RevocationReason,
    SANType,
)
from domain.pki.formats import DownloadFormat
from projections.readmodels.models import CertificateViewStatus
from projections.readmodels.queries import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

KEY_ALGORITHMS = tuple(algorithm.value for algorithm in KeyAlgorithm)
REASONS = tuple(reason.value for reason in RevocationReason)
CA_KINDS = tuple(kind.value for kind in CAKind)
CERTIFICATE_STATUSES = tuple(status.value for status in CertificateViewStatus)
_DEFAULT_YEARS = ", ".join(
    f"{defaults.validity_years} for {kind.value}" for kind, defaults in CA_DEFAULTS.items()
)
_DEFAULT_DAYS = ", ".join(
    f"{defaults.service_days} for {kind.value}" for kind, defaults in CA_DEFAULTS.items()
)
UUID_TEXT = Uuid()
TIMESTAMP = Nullable(Str(format="date-time", max_length=40))
TEXT = Nullable(Str(max_length=128))
# Query values read as numbers: ASCII digits only ("³" is a digit to Python, not to int()).
DIGITS = r"^[0-9]+$"
# A log cut: a position, or a time that the parser then checks in full.
LOG_CUT = r"^[0-9]+$|^[0-9]{4}-[0-9]{2}-[0-9]{2}"

SUBJECT = Obj(
    "Subject",
    {
        "common_name": Str("Common Name (CN)", min_length=1, max_length=64),
        "organization": TEXT,
        "organizational_unit": TEXT,
        "locality": TEXT,
        "state": TEXT,
        "country": Nullable(Str("ISO 3166 two-letter code", max_length=2)),
    },
    frozenset({"common_name"}),
)
OPTIONAL_SUBJECT = Obj(
    "SubjectExtras",
    {key: spec for key, spec in SUBJECT.properties.items() if key != "common_name"},
    description="Optional subject fields (company, department, ...) besides the common name.",
)

CREATE_CA = Obj(
    "CreateCA",
    {
        "kind": Str(enum=CA_KINDS),
        "parent_id": UUID_TEXT,
        "subject": SUBJECT,
        "key_algorithm": Str(f"default {DEFAULT_CA_KEY_ALGORITHM.value}", enum=KEY_ALGORITHMS),
        "validity_years": Int(
            1, MAX_CA_YEARS, f"lifetime of the CA certificate (default {_DEFAULT_YEARS})"
        ),
        "service_days": Int(
            1, MAX_SERVICE_DAYS, f"service period, from enablement (default {_DEFAULT_DAYS})"
        ),
        "included_certificates": Int(0, MAX_QUOTA_STEP, "quota included with a root"),
    },
    frozenset({"kind", "subject"}),
)
RENEW_CA = Obj("RenewCA", {"service_days": Int(1, MAX_SERVICE_DAYS)}, frozenset({"service_days"}))
REVOKE = Obj("Revoke", {"reason": Str(enum=REASONS)})
PURCHASE = Obj("QuotaPurchase", {"count": Int(1, MAX_QUOTA_STEP)}, frozenset({"count"}))
ASSIGN = Obj(
    "QuotaAssignment",
    {"intermediate_id": UUID_TEXT, "remaining": Int(0, MAX_QUOTA_STEP)},
    frozenset({"intermediate_id", "remaining"}),
)
SAN = Obj(
    "SAN",
    {
        "type": Str(enum=tuple(t.value for t in SANType)),
        "value": Str(min_length=1, max_length=2048),
    },
    frozenset({"type", "value"}),
)
ISSUE = Obj(
    "IssueCertificate",
    {
        "type": Str(enum=tuple(t.value for t in CertificateType)),
        "name": Str("display name; defaults to the common name", max_length=128),
        "common_name": Str(min_length=1, max_length=64),
        "validity_days": Int(1, MAX_LEAF_DAYS, "days from now; or give not_after"),
        "not_after": Str(
            "an explicit end (ISO 8601), held to the same limits as validity_days",
            format="date-time",
            max_length=40,
        ),
        "sans": Array(SAN, MAX_SANS),
        "subject": OPTIONAL_SUBJECT,
        "key_algorithm": Str(
            f"the server makes the key (default {DEFAULT_LEAF_KEY_ALGORITHM.value} without csr)",
            enum=KEY_ALGORITHMS,
        ),
        "csr": Str("PEM certificate signing request", max_length=65536),
        "include_crl": Bool(
            f"write the CRL distribution point (default {str(INCLUDE_CRL_BY_DEFAULT).lower()})"
        ),
    },
    frozenset({"type", "common_name"}),
)
DOWNLOAD = Obj(
    "Download",
    {
        "format": Str(enum=tuple(fmt.value for fmt in DownloadFormat)),
        "password": Str(max_length=256),
        "include_chain": Bool(),
    },
    frozenset({"format"}),
)
# Every list pages alike: ``limit`` and an opaque ``cursor`` in, ``next_cursor`` out.
PAGING = {
    "limit": Str(
        f"1 to {MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE})", max_length=4, pattern=DIGITS
    ),
    "cursor": Str("a previous page's next_cursor, as given", max_length=256),
}
NEXT_CURSOR = Nullable(Str("the cursor of the next page; null on the last", max_length=256))
CA_QUERY = Obj("CAQuery", PAGING)
CHECKPOINT_QUERY = Obj("CheckpointQuery", PAGING)
CERTIFICATE_QUERY = Obj(
    "CertificateQuery",
    {
        "status": Str(enum=CERTIFICATE_STATUSES),
        "type": Str(enum=tuple(t.value for t in CertificateType)),
        "q": Str("text in the common name or a SAN", max_length=256),
        "expires_before": Str(format="date-time", max_length=40),
        "issuer_revoked": Str("whether the issuing CA was revoked", enum=("true", "false")),
        **PAGING,
    },
)

QUOTA = Obj(
    "Quota",
    {
        "total": Int(0, 10**12),
        "assigned": Int(0, 10**12),
        "available": Int(0, 10**12),
        "remaining": Int(0, 10**12),
        "issued": Int(0, 10**12),
    },
    description="total/assigned/available for a root; remaining/issued for an intermediate",
)
CERTIFICATE_COUNTS = Obj(
    "CertificateCounts",
    {name: Int(0, 10**12) for name in ("issued", "revoked", "expired", "deleted")},
    frozenset({"issued", "revoked", "expired", "deleted"}),
    description="end-entity certificates of the CA by status (lists only)",
)
CA = Obj(
    "CA",
    {
        "id": UUID_TEXT,
        "kind": Str(enum=CA_KINDS),
        "parent_id": Nullable(UUID_TEXT),
        "status": Str(enum=(*(status.value for status in CAStatus), "expired")),
        "subject": SUBJECT,
        "key_algorithm": Str(enum=KEY_ALGORITHMS),
        "not_before": TIMESTAMP,
        "not_after": TIMESTAMP,
        "service_until": TIMESTAMP,
        "certificate_pem": Nullable(Str(max_length=65536)),
        "quota": QUOTA,
        "certificates": CERTIFICATE_COUNTS,
    },
    frozenset({"id", "kind", "parent_id", "status", "subject", "key_algorithm", "quota"}),
)
CERTIFICATE = Obj(
    "Certificate",
    {
        "id": UUID_TEXT,
        "ca_id": UUID_TEXT,
        "serial_number": Str("lower-case hex", max_length=64),
        "type": Str(enum=tuple(t.value for t in CertificateType)),
        "name": Str(max_length=128),
        "common_name": Str(max_length=64),
        "subject": SUBJECT,
        "sans": Array(SAN, MAX_SANS),
        "key_algorithm": Str(enum=KEY_ALGORITHMS),
        "status": Str(enum=CERTIFICATE_STATUSES),
        "not_before": TIMESTAMP,
        "not_after": TIMESTAMP,
        "revoked_at": TIMESTAMP,
        "revocation_reason": Nullable(Str(enum=REASONS)),
        "certificate_pem": Str(max_length=65536),
        "chain_pem": Str(max_length=65536),
    },
    frozenset(
        {
            "id",
            "ca_id",
            "serial_number",
            "type",
            "name",
            "common_name",
            "sans",
            "status",
            "not_before",
            "not_after",
            "certificate_pem",
        }
    ),
)
_NOT_IN_LISTS = {"subject", "certificate_pem", "chain_pem"}
CERTIFICATE_SUMMARY = Obj(
    "CertificateSummary",
    {
        **{key: spec for key, spec in CERTIFICATE.properties.items() if key not in _NOT_IN_LISTS},
        "requested_by": Str(),
        "issued_at": TIMESTAMP,
        "issuer_revoked": Bool("its issuing CA was revoked: its chain no longer validates"),
    },
    (CERTIFICATE.required - _NOT_IN_LISTS) | {"requested_by", "issued_at", "issuer_revoked"},
)
CA_LIST = Obj(
    "CAList",
    {"items": Array(CA, MAX_PAGE_SIZE), "next_cursor": NEXT_CURSOR},
    frozenset({"items", "next_cursor"}),
)
CERTIFICATE_PAGE = Obj(
    "CertificatePage",
    {"items": Array(CERTIFICATE_SUMMARY, MAX_PAGE_SIZE), "next_cursor": NEXT_CURSOR},
    frozenset({"items", "next_cursor"}),
)
HEALTH = Obj(
    "Health",
    {"status": Str(enum=("ok", "unavailable")), "storage": Str(), "position": Int(0, 2**62)},
    frozenset({"status"}),
)
PROBLEM = Obj(
    "Problem",
    {
        "type": Str(max_length=2048),
        "title": Str(),
        "status": Int(100, 599),
        "detail": Str(max_length=MAX_DETAIL),
        "instance": Str(max_length=MAX_INSTANCE),
        "field": Str(max_length=MAX_FIELD),
        "request_id": Str(),
    },
    frozenset({"type", "title", "status", "detail"}),
    description="RFC 9457 problem details",
)

EVENT_QUERY = Obj(
    "EventQuery",
    {
        "after": Str("log position to continue after (default 0)", max_length=18, pattern=DIGITS),
        **PAGING,
        "type": Str("event type names, comma-separated (e.g. CertificateIssued)", max_length=512),
        "aggregate_id": Str(format="uuid", max_length=36),
        "actor": Str(max_length=128),
        "from": Str(format="date-time", max_length=40),
        "to": Str(format="date-time", max_length=40),
    },
)
EVENT = Obj(
    "Event",
    {
        "position": Int(1, 2**62),
        "recorded_at": Str(format="date-time", max_length=40),
        "type": Str(),
        "aggregate_id": UUID_TEXT,
        "aggregate_version": Int(1, 2**62),
        "actor": Str(),
        "request_id": Str(),
        "payload": AnyObject("the event's fields; bytes in base64 (certificates, never keys)"),
        "chain_hash": Nullable(Str("this event's audit-chain link (hex)", max_length=64)),
    },
    frozenset(
        {
            "position",
            "recorded_at",
            "type",
            "aggregate_id",
            "aggregate_version",
            "actor",
            "request_id",
            "payload",
            "chain_hash",
        }
    ),
)
EVENT_PAGE = Obj(
    "EventPage",
    {
        "items": Array(EVENT, MAX_PAGE_SIZE),
        "next_cursor": NEXT_CURSOR,
        "next_after": Nullable(Int(0, 2**62, "the last position of this page, for after")),
    },
    frozenset({"items", "next_cursor", "next_after"}),
)
AUDIT_REPORT = AnyObject(
    "ok, checked, position, head, first_bad_position, problem, detail, "
    "checkpoints {checked, ok, failed}"
)
CHECKPOINTS = Obj(
    "Checkpoints",
    {
        "public_key_pem": Str(max_length=4096),
        "items": Array(
            AnyObject(
                "position, head, time, key_id, algorithm, message, signature, public_key_pem"
            ),
            MAX_PAGE_SIZE,
        ),
        "next_cursor": NEXT_CURSOR,
    },
    frozenset({"public_key_pem", "items", "next_cursor"}),
)
STATE_QUERY = Obj(
    "StateQuery",
    {
        "at": Str(
            "a log position, or an ISO 8601 time (approximate across writers)",
            max_length=40,
            pattern=LOG_CUT,
        )
    },
)
REPORT_QUERY = Obj(
    "ReportQuery",
    {
        "format": Str(enum=("csv", "json")),
        "at": Str(
            "cut: a log position or an ISO 8601 time (default: the end of the log)",
            max_length=40,
            pattern=LOG_CUT,
        ),
        "from": Str(format="date-time", max_length=40),
        "to": Str(format="date-time", max_length=40),
        "ca_id": Str(format="uuid", max_length=36),
        "days": Str("for expiring: within this many days of the cut", max_length=6, pattern=DIGITS),
    },
)
MANIFEST = AnyObject(
    "kind, format, parameters, at_position, at_time, generated_from, "
    "row_count, sha256, signature (Ed25519, base64), key_id, public_key_pem"
)

MAX_BATCH_ITEMS = 1000
MAX_BATCH_BYTES = 8 * 1024 * 1024  # 1000 items with a CSR each; other bodies get 1 MiB
BATCH_ITEM = PerItem(
    "BatchIssueItem",
    {
        **ISSUE.properties,
        "idempotency_key": Str(
            "repeating a key with the same parameters returns the first certificate",
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY,
        ),
    },
    ISSUE.required,
)
ISSUE_BATCH = Obj(
    "IssueCertificateBatch",
    {"items": Array(BATCH_ITEM, MAX_BATCH_ITEMS)},
    frozenset({"items"}),
)
BATCH_RESULT = Obj(
    "BatchIssueResult",
    {
        "index": Int(0, MAX_BATCH_ITEMS - 1),
        "status": Int(100, 599),
        "certificate": CERTIFICATE,
        "problem": PROBLEM,
    },
    frozenset({"index", "status"}),
    description="status 201 with the certificate, or a 4xx status with its problem",
)
BATCH_ANSWER = Obj(
    "BatchIssueAnswer",
    {
        "succeeded": Int(0, MAX_BATCH_ITEMS),
        "failed": Int(0, MAX_BATCH_ITEMS),
        "chain_pem": Str("the issuing CA's chain, shared by every certificate", max_length=65536),
        "results": Array(BATCH_RESULT, MAX_BATCH_ITEMS),
    },
    frozenset({"succeeded", "failed", "chain_pem", "results"}),
)
