"""The request and response bodies of the HTTP API, declared once (see api/http/schema.py)."""

from __future__ import annotations

from api.http.errors import MAX_DETAIL, MAX_FIELD, MAX_INSTANCE
from api.http.params import MAX_IDEMPOTENCY_KEY
from api.http.schema import (
    AnyObject,
    Array,
    Bool,
    Either,
    Int,
    NotTogether,
    Nullable,
    Obj,
    PerItem,
    QueryInt,
    RequiredWhen,
    Spec,
    Str,
    Uuid,
    When,
)
from domain.application.commands import (
    CA_DEFAULTS,
    DEFAULT_CA_KEY_ALGORITHM,
    DEFAULT_LEAF_KEY_ALGORITHM,
    INCLUDE_CRL_BY_DEFAULT,
)
from domain.application.tokens import MAX_SCOPE_ITEMS, MAX_TOKEN_DAYS
from domain.model.acme import DIRECTORY_NAME
from domain.model.ca_rules import MAX_CA_YEARS, MAX_LEAF_DAYS, MAX_QUOTA_STEP, MAX_SERVICE_DAYS
from domain.model.constraints import MAX_SUBTREES
from domain.model.countries import COUNTRY_CODES
from domain.model.policy import (
    DEFAULT_PROFILE,
    MAX_PATTERNS,
    MAX_PROFILE_NAME,
    PROFILE_NAME,
    SUBJECT_FIELDS,
    ExtendedKeyUsage,
    KeyUsage,
    NamesFrom,
)
from domain.model.text import CONTROL_CHARACTERS
from domain.model.tokens import MAX_NAME_LENGTH, Role
from domain.model.validation import ALLOWED_SAN_TYPES, MAX_ATTRIBUTE_LENGTHS, MAX_SANS
from domain.model.values import (
    CAKind,
    CAStatus,
    CertificateType,
    KeyAlgorithm,
    KeyStorage,
    RevocationReason,
    SANType,
)
from domain.pki.formats import MIN_PASSWORD_LENGTH, DownloadFormat, needs_password
from projections.audit.history import event_types
from projections.audit.report_kinds import ReportKind
from projections.audit.reports import MAX_DAYS, PERIOD_KINDS
from projections.readmodels.models import CertificateViewStatus
from projections.readmodels.queries import (
    CURSOR_PATTERN,
    DEFAULT_PAGE_SIZE,
    MAX_CURSOR_LENGTH,
    MAX_PAGE_SIZE,
    MAX_TEXT_LENGTH,
)

KEY_ALGORITHMS = tuple(algorithm.value for algorithm in KeyAlgorithm)
REASONS = tuple(reason.value for reason in RevocationReason)
CA_KINDS = tuple(kind.value for kind in CAKind)
KEY_STORAGES = tuple(storage.value for storage in KeyStorage)
ROLES = tuple(role.value for role in Role)
CERTIFICATE_STATUSES = tuple(status.value for status in CertificateViewStatus)
_DEFAULT_YEARS = ", ".join(
    f"{defaults.validity_years} for {kind.value}" for kind, defaults in CA_DEFAULTS.items()
)
_DEFAULT_DAYS = ", ".join(
    f"{defaults.service_days} for {kind.value}" for kind, defaults in CA_DEFAULTS.items()
)
UUID_TEXT = Uuid()
TIMESTAMP = Nullable(Str(format="date-time", max_length=40))
# Text the domain keeps: no control characters (it strips the ends, so a common name
# needs one character that is not a space).
_PLAIN = f"[^{CONTROL_CHARACTERS}]"
PLAIN_TEXT = f"^{_PLAIN}*$"
NAMING_TEXT = rf"^{_PLAIN}*[^\s{CONTROL_CHARACTERS}]{_PLAIN}*$"
# The domain strips the spaces around a country code, takes an empty one as none, and any
# case of an assigned ISO 3166-1 code.
_COUNTRY_CODE = "|".join(
    "".join(f"[{c}{c.lower()}]" for c in code) for code in sorted(COUNTRY_CODES)
)
COUNTRY = f"^ *((?:{_COUNTRY_CODE}) *)?$"
COUNTRY_CODE = f"^ *(?:{_COUNTRY_CODE}) *$"  # one required
# Printable ASCII, what every download format derives the same key from.
PRINTABLE_ASCII = r"^[ -~]*$"
MAX_POSITION = 2**62
# Event type names separated by commas; spaces around a name and empty names are ignored.
_EVENT_NAME = f" *(?:(?:{'|'.join(sorted(event_types()))}) *)?"
EVENT_TYPES = f"^{_EVENT_NAME}(?:,{_EVENT_NAME})*$"
# A log cut: a position, or a time with a zone.
LOG_CUT = Either(
    (
        Str("a log position", max_length=18, pattern=r"^[0-9]+$"),
        Str("a time with a zone", format="date-time", max_length=40),
    ),
    "must be a log position (digits) or an ISO 8601 time with a zone, such as "
    "2025-01-31T12:00:00Z.",
)

SUBJECT = Obj(
    "Subject",
    {
        "common_name": Str("Common Name (CN)", min_length=1, max_length=64, pattern=NAMING_TEXT),
        **{
            name: Nullable(Str(max_length=limit, pattern=PLAIN_TEXT))
            for name, limit in MAX_ATTRIBUTE_LENGTHS.items()
        },
        "country": Nullable(Str("ISO 3166 two-letter code", max_length=2, pattern=COUNTRY)),
    },
    frozenset({"common_name"}),
)
OPTIONAL_SUBJECT = Obj(
    "SubjectExtras",
    {key: spec for key, spec in SUBJECT.properties.items() if key != "common_name"},
    description="Optional subject fields (company, department, ...) besides the common name.",
)

GENERATION = Int(2, 2**31 - 1, "a CA key after its first rollover (the first key has no -g)")
KEY_NUMBER = Int(1, 2**31 - 1, "a key generation of the CA, as key_generations numbers it")
ENABLE_CA = Obj(
    "EnableCA",
    {
        "key_storage": Str(
            f"where the first enablement makes the CA's key: the key store, or the PKCS#11"
            f" token the server is configured with (default {KeyStorage.SOFTWARE.value})",
            enum=KEY_STORAGES,
        )
    },
)
# What each SAN type's value looks like, as far as JSON Schema can say it; the domain's
# checks (IDNA rules, lengths, repeats after normalisation) stay the authority.
_ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LDH_NAME = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
_SAN_VALUES: dict[SANType, Spec] = {
    SANType.DNS: Str("a host name", min_length=1, max_length=253, format="idn-hostname"),
    SANType.IP: Either(
        (Str(format="ipv4", max_length=15), Str(format="ipv6", max_length=45)),
        "must be an IPv4 or IPv6 address.",
    ),
    SANType.EMAIL: Str(
        "an ASCII mailbox", max_length=320, pattern=rf"^{_ATOM}(?:\.{_ATOM})*@{_LDH_NAME}$"
    ),
    SANType.URI: Str(
        "an absolute URI without an authority (such as urn: or spiffe: forms)",
        max_length=2048,
        pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9._~:?#@!$&'()*+,;=-][A-Za-z0-9._~:/?#@!$&'()*+,;=-]*$",
    ),
}


_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_HOST = f"^\\.?{_LDH_NAME}$"  # a host, or with a leading dot every host below a domain
_SUBTREE_VALUES: dict[SANType, Spec] = {
    SANType.DNS: _SAN_VALUES[SANType.DNS],
    SANType.IP: Str(
        "a network in CIDR form, its host bits zero: '10.0.0.0/8', '2001:db8::/32'",
        max_length=49,
        pattern=rf"^(?:(?:{_OCTET}\.){{3}}{_OCTET}/(?:3[0-2]|[12]?[0-9])|[0-9a-fA-F:]*:[0-9a-fA-F:]*/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))$",
    ),
    SANType.EMAIL: Str(
        "a mailbox, a host, or '.domain' for every host below it",
        max_length=253,
        pattern=rf"^(?:{_ATOM}(?:\.{_ATOM})*@{_LDH_NAME}|\.?{_LDH_NAME})$",
    ),
    SANType.URI: Str("a host, or '.domain' for every host below it", max_length=253, pattern=_HOST),
}
_SUBTREES = Array(
    Obj(
        "Subtree",
        {
            "type": Str(enum=tuple(t.value for t in SANType)),
            "value": Str(
                "dns/uri/email: a host such as 'example.com' (uri and email also"
                " '.example.com', email a mailbox); ip: a network, '10.0.0.0/8'",
                min_length=1,
                max_length=253,
            ),
        },
        frozenset({"type", "value"}),
        when=tuple(When("type", (t.value,), {"value": _SUBTREE_VALUES[t]}) for t in SANType),
    ),
    MAX_SUBTREES,
)
NAME_CONSTRAINTS = Obj(
    "NameConstraints",
    {"permitted": _SUBTREES, "excluded": _SUBTREES},
    description="an intermediate's subtrees (RFC 5280 4.2.1.10), critical in its certificate",
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
        "name_constraints": NAME_CONSTRAINTS,
    },
    frozenset({"kind", "subject"}),
    required_when=(RequiredWhen("kind", (CAKind.INTERMEDIATE.value,), frozenset({"parent_id"})),),
    when=(
        When(
            "kind",
            (CAKind.ROOT.value,),
            {
                "name_constraints": Obj(
                    "NoNameConstraints",
                    {
                        "permitted": Array(Obj("NoSubtree", {}), 0),
                        "excluded": Array(Obj("NoSubtree", {}), 0),
                    },
                    description="a root takes no name constraints",
                )
            },
        ),
    ),
)
RENEW_CA = Obj("RenewCA", {"service_days": Int(1, MAX_SERVICE_DAYS)}, frozenset({"service_days"}))
REVOKE = Obj("Revoke", {"reason": Str(enum=REASONS)})
PURCHASE = Obj("QuotaPurchase", {"count": Int(1, MAX_QUOTA_STEP)}, frozenset({"count"}))
ASSIGN = Obj(
    "QuotaAssignment",
    {"intermediate_id": UUID_TEXT, "remaining": Int(0, MAX_QUOTA_STEP)},
    frozenset({"intermediate_id", "remaining"}),
)


def _san(name: str, types: tuple[SANType, ...]) -> Obj:
    """A SAN entry whose type is one of ``types``, its value shaped by its type."""
    return Obj(
        name,
        {
            "type": Str(enum=tuple(t.value for t in types)),
            "value": Str(min_length=1, max_length=2048),
        },
        frozenset({"type", "value"}),
        when=tuple(When("type", (t.value,), {"value": _SAN_VALUES[t]}) for t in types),
    )


SAN = Obj(
    "SAN",
    {
        "type": Str(enum=tuple(t.value for t in SANType)),
        "value": Str(min_length=1, max_length=2048),
    },
    frozenset({"type", "value"}),
    description="a subjectAltName entry as the certificate holds it",
)


def _sans_for(kind: CertificateType) -> When:
    """The SANs a certificate of ``kind`` takes; a server certificate names its host in a
    SAN or in a common name that is a host name or an IP address."""
    sans = Array(_san(f"{kind.value.title()}SAN", ALLOWED_SAN_TYPES[kind]), MAX_SANS)
    if kind is not CertificateType.SERVER:
        return When("type", (kind.value,), {"sans": sans})
    host = Either(
        (_SAN_VALUES[SANType.DNS], _SAN_VALUES[SANType.IP]),
        "must be a host name or an IP address.",
    )
    return When(
        "type",
        (kind.value,),
        {"sans": sans},
        one_of=(
            {"sans": Array(sans.items, MAX_SANS, min_items=1)},
            {"common_name": host},
        ),
        needs="needs a DNS or IP entry when the common name is no host name.",
    )


PROFILE_NAME_TEXT = Str(
    f"the certificate profile to issue under (default {DEFAULT_PROFILE!r})",
    min_length=1,
    max_length=MAX_PROFILE_NAME,
    pattern=f"^{PROFILE_NAME.pattern}$",
)
_PATTERNS = Array(Str(min_length=1, max_length=253, pattern=PLAIN_TEXT), MAX_PATTERNS)


def _name_rule(name: str, description: str) -> Obj:
    return Obj(name, {"allow": _PATTERNS, "deny": _PATTERNS}, description=description)


_DNS_PATTERNS = "'api.example' matches exactly, '*.svc.example' every name below svc.example"
POLICY = Obj(
    "IssuancePolicy",
    {
        "types": Array(Str(enum=tuple(t.value for t in CertificateType)), len(CertificateType)),
        "dns": _name_rule("DNSNameRule", f"DNS names: {_DNS_PATTERNS}"),
        "allow_wildcards": Bool("whether DNS names like '*.svc.example' may be requested"),
        "ip": _name_rule("IPNameRule", "IP addresses: networks in CIDR form, '10.0.0.0/8'"),
        "email": _name_rule("EmailNameRule", f"e-mail addresses by domain: {_DNS_PATTERNS}"),
        "uri": _name_rule("URINameRule", "URIs by prefix: 'urn:example:team:'"),
        "common_name": _name_rule("CommonNameRule", f"common names: {_DNS_PATTERNS}"),
        "key_algorithms": Array(Str(enum=KEY_ALGORITHMS), len(KEY_ALGORITHMS)),
        "max_validity_days": Nullable(Int(1, MAX_LEAF_DAYS)),
        "default_validity_days": Nullable(
            Int(1, MAX_LEAF_DAYS, "used when a request gives neither validity_days nor not_after")
        ),
        "key_usage": Array(Str(enum=tuple(u.value for u in KeyUsage)), len(KeyUsage)),
        "extended_key_usage": Array(
            Str(enum=tuple(u.value for u in ExtendedKeyUsage)), len(ExtendedKeyUsage)
        ),
        "subject_fields": Array(Str(enum=SUBJECT_FIELDS), len(SUBJECT_FIELDS)),
        "fixed_subject": Obj(
            "FixedSubject",
            {
                **{
                    key: Str(min_length=1, max_length=limit, pattern=NAMING_TEXT)
                    for key, limit in MAX_ATTRIBUTE_LENGTHS.items()
                },
                "country": Str("ISO 3166 two-letter code", max_length=2, pattern=COUNTRY_CODE),
            },
            description="subject fields the profile sets on every certificate",
        ),
        "include_crl": Nullable(Bool("true or false fixes it; null lets the request choose")),
        "names_from": Str(
            "where the common name and SANs come from: the request body (default), or the"
            " CSR (names the body also gives must repeat it)",
            enum=tuple(source.value for source in NamesFrom),
        ),
    },
    description="What requests under a profile may have; a field left out allows what the CA"
    " allows. Empty allow lists allow every name; deny entries win over allow entries.",
)
CREATE_PROFILE = Obj(
    "CreateProfile",
    {"name": PROFILE_NAME_TEXT, "policy": POLICY},
    frozenset({"name"}),
)
UPDATE_PROFILE = Obj("UpdateProfile", {"policy": POLICY}, frozenset({"policy"}))
PROFILE = Obj(
    "Profile",
    {
        "name": PROFILE_NAME_TEXT,
        "version": Int(1, 2**31),
        "retired": Bool(),
        "policy": POLICY,
    },
    frozenset({"name", "version", "retired", "policy"}),
)
PROFILE_LIST = Obj("ProfileList", {"items": Array(PROFILE, 10**6)}, frozenset({"items"}))
TOKEN = Obj(
    "Token",
    {
        "id": UUID_TEXT,
        "name": Str(max_length=MAX_NAME_LENGTH),
        "role": Str(enum=ROLES),
        "cas": Array(UUID_TEXT, MAX_SCOPE_ITEMS),
        "profiles": Array(PROFILE_NAME_TEXT, MAX_SCOPE_ITEMS),
        "status": Str(enum=("active", "revoked", "expired")),
        "created_at": TIMESTAMP,
        "expires_at": TIMESTAMP,
    },
    frozenset({"id", "name", "role", "cas", "profiles", "status"}),
    description="a token's record; empty cas or profiles: not limited",
)
TOKEN_LIST = Obj("TokenList", {"items": Array(TOKEN, 10**6)}, frozenset({"items"}))
CREATE_TOKEN = Obj(
    "CreateToken",
    {
        "name": Str(
            "who or what uses it, e.g. ci-deployer",
            min_length=1,
            max_length=MAX_NAME_LENGTH,
            pattern=NAMING_TEXT,
        ),
        "role": Str(enum=ROLES),
        "valid_days": Int(1, MAX_TOKEN_DAYS, "refuse the token after this many days"),
        "ca_ids": Array(UUID_TEXT, MAX_SCOPE_ITEMS),
        "profiles": Array(PROFILE_NAME_TEXT, MAX_SCOPE_ITEMS),
    },
    frozenset({"name", "role"}),
    description="ca_ids and profiles limit what the token may issue and act on",
)
CREATED_TOKEN = Obj(
    "CreatedToken",
    {**TOKEN.properties, "token": Str("the bearer token: shown this once", max_length=128)},
    TOKEN.required | {"token"},
)
_SANS_BY_TYPE = tuple(_sans_for(kind) for kind in ALLOWED_SAN_TYPES)
ISSUE = Obj(
    "IssueCertificate",
    {
        "type": Str(enum=tuple(t.value for t in CertificateType)),
        "name": Str("display name; defaults to the common name", max_length=128),
        "common_name": Str(min_length=1, max_length=64, pattern=NAMING_TEXT),
        "validity_days": Int(1, MAX_LEAF_DAYS, "days from now; or give not_after"),
        "not_after": Str(
            "an explicit end (ISO 8601), held to the same limits as validity_days",
            format="date-time",
            max_length=40,
        ),
        "sans": Array(_san("RequestedSAN", tuple(SANType)), MAX_SANS),
        "subject": OPTIONAL_SUBJECT,
        "key_algorithm": Str(
            f"the server makes the key (default {DEFAULT_LEAF_KEY_ALGORITHM.value} without csr)",
            enum=KEY_ALGORITHMS,
        ),
        "csr": Str("PEM certificate signing request", max_length=65536),
        "include_crl": Bool(
            f"write the CRL distribution point (default {str(INCLUDE_CRL_BY_DEFAULT).lower()})"
        ),
        "profile": PROFILE_NAME_TEXT,
    },
    frozenset({"type", "common_name"}),
    when=(
        *_SANS_BY_TYPE,
        NotTogether(
            ("key_algorithm", "csr"),
            "and csr exclude each other: give key_algorithm (the server makes the key) "
            "or csr, not both.",
        ),
        NotTogether(
            ("not_after", "validity_days"),
            "and validity_days exclude each other: give validity_days or not_after, not both.",
        ),
    ),
)
DOWNLOAD = Obj(
    "Download",
    {
        "format": Str(enum=tuple(fmt.value for fmt in DownloadFormat)),
        "password": Str(min_length=MIN_PASSWORD_LENGTH, max_length=256, pattern=PRINTABLE_ASCII),
        "include_chain": Bool(),
    },
    frozenset({"format"}),
    required_when=(
        RequiredWhen(
            "format",
            tuple(fmt.value for fmt in DownloadFormat if needs_password(fmt)),
            frozenset({"password"}),
        ),
    ),
)
# Every list pages alike: ``limit`` and an opaque ``cursor`` in, ``next_cursor`` out.
PAGING: dict[str, Spec] = {
    "limit": QueryInt(1, MAX_PAGE_SIZE, f"default {DEFAULT_PAGE_SIZE}"),
    "cursor": Str(
        "a previous page's next_cursor, as given",
        max_length=MAX_CURSOR_LENGTH,
        pattern=CURSOR_PATTERN,
    ),
}
NEXT_CURSOR = Nullable(
    Str(
        "the cursor of the next page; null on the last",
        max_length=MAX_CURSOR_LENGTH,
        pattern=CURSOR_PATTERN,
    )
)
CA_QUERY = Obj("CAQuery", PAGING)
CHECKPOINT_QUERY = Obj("CheckpointQuery", PAGING)
CERTIFICATE_QUERY = Obj(
    "CertificateQuery",
    {
        "status": Str(enum=CERTIFICATE_STATUSES),
        "type": Str(enum=tuple(t.value for t in CertificateType)),
        "q": Str(
            "text in the common name, a SAN, the name or the serial (hex)",
            min_length=1,
            max_length=MAX_TEXT_LENGTH,
            pattern=PLAIN_TEXT,
        ),
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
KEY_GENERATION = Obj(
    "KeyGeneration",
    {
        "generation": Int(1, 2**31 - 1),
        "key_storage": Str(enum=KEY_STORAGES),
        "serial_number": Str("the generation's CA certificate's, lower-case hex", max_length=64),
        "subject_key_identifier": Nullable(Str("lower-case hex", max_length=128)),
        "not_before": TIMESTAMP,
        "not_after": TIMESTAMP,
        "current": Bool("the key the CA signs with now"),
        "retired_at": TIMESTAMP,
        "certificate_pem": Str("in one CA's answer, not in the list", max_length=65536),
    },
    frozenset({"generation", "key_storage", "serial_number", "not_before", "not_after"})
    | {"current"},
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
        "key_storage": Nullable(
            Str("where the CA's key lives, once it has one", enum=KEY_STORAGES)
        ),
        "not_before": TIMESTAMP,
        "not_after": TIMESTAMP,
        "service_until": TIMESTAMP,
        "certificate_pem": Nullable(Str(max_length=65536)),
        "quota": QUOTA,
        "certificates": CERTIFICATE_COUNTS,
        "key_generations": Array(
            KEY_GENERATION, 2**31 - 1, "every key the CA has had, oldest first"
        ),
        "link_certificates_pem": Array(
            Str(max_length=65536),
            2,
            "after a root's rollover: its new key certified by the old one, the old by the new",
        ),
        "name_constraints": NAME_CONSTRAINTS,
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
        "profile": PROFILE_NAME_TEXT,
        "profile_version": Int(1, 2**31),
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
_NOT_IN_LISTS = {"subject", "certificate_pem", "chain_pem", "profile", "profile_version"}
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
        "after": QueryInt(
            0, MAX_POSITION, "log position to continue after (default 0); cursor wins over it"
        ),
        **PAGING,
        "type": Str(
            "event type names, comma-separated (e.g. CertificateIssued)",
            max_length=512,
            pattern=EVENT_TYPES,
        ),
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
STATE_QUERY = Obj("StateQuery", {"at": LOG_CUT})
_REPORT_SCOPE: dict[str, Spec] = {
    "format": Str(enum=("csv", "json")),
    "at": LOG_CUT,
    "ca_id": Str(format="uuid", max_length=36),
}
_PERIOD: dict[str, Spec] = {
    "from": Str("start of the period (inclusive)", format="date-time", max_length=40),
    "to": Str(
        "end of the period (exclusive; one not after from selects nothing)",
        format="date-time",
        max_length=40,
    ),
}
_HORIZON: dict[str, Spec] = {
    "days": QueryInt(1, MAX_DAYS, "within this many days of the cut (default 30)")
}


def _report_query(kind: ReportKind) -> Obj:
    """The query a report of ``kind`` takes: what it does not take is refused."""
    extra = _PERIOD if kind in PERIOD_KINDS else _HORIZON if kind is ReportKind.EXPIRING else {}
    name = "".join(word.title() for word in kind.value.split("-"))
    return Obj(f"{name}ReportQuery", {**_REPORT_SCOPE, **extra})


REPORT_QUERIES = {kind: _report_query(kind) for kind in ReportKind}
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
    when=ISSUE.when,
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

# --- ACME administration (api.http.views.acme) ------------------------------------------

ACME_DIRECTORY_NAME = Str(
    "a URL segment: /acme/{name}/directory", max_length=63, pattern=f"^{DIRECTORY_NAME}$"
)
CREATE_ACME_DIRECTORY = Obj(
    "CreateAcmeDirectory",
    {
        "name": ACME_DIRECTORY_NAME,
        "ca_id": UUID_TEXT,
        "profile": Str(f"the certificate profile (default {DEFAULT_PROFILE})", max_length=64),
        "eab_required": Bool("accounts need an external account binding (default true)"),
    },
    frozenset({"name", "ca_id"}),
)
ACME_DIRECTORY = Obj(
    "AcmeDirectory",
    {
        "name": ACME_DIRECTORY_NAME,
        "ca_id": UUID_TEXT,
        "profile": Str(max_length=64),
        "eab_required": Bool(),
        "url": Str(max_length=2048),
    },
    frozenset({"name", "ca_id", "profile", "eab_required", "url"}),
)
EAB_CREDENTIAL = Obj(
    "EabCredential",
    {
        "directory": ACME_DIRECTORY_NAME,
        "kid": Str("the key id to give the ACME client"),
        "hmac_key": Str("the HMAC key (base64url), shown this once"),
    },
    frozenset({"directory", "kid", "hmac_key"}),
)
ACME_ACCOUNT = Obj(
    "AcmeAccount",
    {
        "id": UUID_TEXT,
        "status": Str(enum=("valid", "deactivated")),
        "contact": Array(Str(max_length=2048), 100),
        "eab_kid": Nullable(Str()),
        "thumbprint": Str(),
        "created_at": Str(format="date-time", max_length=40),
    },
    frozenset({"id", "status", "contact", "eab_kid", "thumbprint", "created_at"}),
)
ACME_ORDER = Obj(
    "AcmeOrder",
    {
        "id": UUID_TEXT,
        "account_id": UUID_TEXT,
        "status": Str(enum=("pending", "ready", "valid", "invalid")),
        "identifiers": Array(Str(), MAX_SANS),
        "certificate_id": Nullable(UUID_TEXT),
        "replaces": Nullable(Str(max_length=1024)),
        "created_at": Str(format="date-time", max_length=40),
    },
    frozenset(
        {"id", "account_id", "status", "identifiers", "certificate_id", "replaces", "created_at"}
    ),
)
ACME_ACCOUNTS = Obj("AcmeAccounts", {"items": Array(ACME_ACCOUNT, 100_000)}, frozenset({"items"}))
ACME_ORDERS = Obj("AcmeOrders", {"items": Array(ACME_ORDER, 100_000)}, frozenset({"items"}))
