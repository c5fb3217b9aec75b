"""Certificate profiles: the issuance policy an intermediate applies to what it signs.

A profile names the certificate types, names, key algorithms, validity, key usages and
subject fields a request may have. Every rule is a pure function of the request's values;
a refusal raises :class:`~domain.model.errors.PolicyError` naming the rule, the value and
what the profile allows, so the requester knows what to change. Name patterns:

- DNS names and the common name: ``api.example`` matches exactly; ``*.svc.example``
  matches every name below ``svc.example`` (at any depth). A requested wildcard name
  (``*.a.svc.example``) also needs ``allow_wildcards``.
- IP addresses: networks in CIDR form (``10.0.0.0/8``; one address is ``/32``).
- e-mail addresses: their domain, with the DNS patterns above.
- URIs: a prefix (``urn:example:team:``).

An empty allow list allows every value; a deny entry wins over any allow entry.
"""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, TypeVar

from domain.model.ca_rules import MAX_LEAF_DAYS
from domain.model.errors import PolicyError, SubjectError, ValidationError
from domain.model.san_values import normalize_san_value
from domain.model.text import show
from domain.model.validation import MAX_ATTRIBUTE_LENGTHS, normalize_subject
from domain.model.values import SAN, CertificateType, KeyAlgorithm, SANType, Subject

DEFAULT_PROFILE = "default"
"""The profile every intermediate has without any event: today's behaviour."""
MAX_PROFILE_NAME = 64
MAX_PATTERNS = 100
PROFILE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
SUBJECT_FIELDS = (*MAX_ATTRIBUTE_LENGTHS, "country")
"""Subject fields besides the common name that a profile lets requests set, or fixes."""
_URI_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S*")
_E = TypeVar("_E", bound=Enum)


class KeyUsage(Enum):
    """The keyUsage bits a leaf profile may ask for (never keyCertSign or cRLSign)."""

    DIGITAL_SIGNATURE = "digital_signature"
    CONTENT_COMMITMENT = "content_commitment"
    KEY_ENCIPHERMENT = "key_encipherment"
    DATA_ENCIPHERMENT = "data_encipherment"
    KEY_AGREEMENT = "key_agreement"


class NamesFrom(Enum):
    """Where a certificate's common name and SANs come from."""

    REQUEST = "request"  # the request body (a CSR's own names are not used)
    CSR = "csr"  # the CSR; names the body also gives must be the same


class ExtendedKeyUsage(Enum):
    SERVER_AUTH = "server_auth"
    CLIENT_AUTH = "client_auth"
    CODE_SIGNING = "code_signing"
    EMAIL_PROTECTION = "email_protection"


@dataclass(frozen=True)
class NameRule:
    """Allowed and denied patterns for one kind of name; empty ``allow`` allows all."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


@dataclass(frozen=True)
class IssuancePolicy:
    """What a profile lets a request have. The defaults are the service's own rules, so
    ``IssuancePolicy()`` is the default profile: everything the CA's rules allow."""

    types: tuple[CertificateType, ...] = tuple(CertificateType)
    dns: NameRule = NameRule()
    allow_wildcards: bool = True
    ip: NameRule = NameRule()
    email: NameRule = NameRule()
    uri: NameRule = NameRule()
    common_name: NameRule = NameRule()
    key_algorithms: tuple[KeyAlgorithm, ...] = ()  # empty: every offered algorithm
    max_validity_days: int | None = None
    default_validity_days: int | None = None
    key_usage: tuple[KeyUsage, ...] = ()  # empty: the service's usage per type and key
    extended_key_usage: tuple[ExtendedKeyUsage, ...] = ()  # empty: the type's usage
    subject_fields: tuple[str, ...] = SUBJECT_FIELDS  # which a request may set
    fixed_subject: tuple[tuple[str, str], ...] = ()  # (field, value) the profile sets
    include_crl: bool | None = None  # None: the request decides
    names_from: NamesFrom = NamesFrom.REQUEST


@dataclass(frozen=True)
class CertificateProfile:
    """A named, versioned policy of one intermediate."""

    name: str
    version: int = 1
    policy: IssuancePolicy = field(default_factory=IssuancePolicy)
    retired: bool = False


@dataclass(frozen=True)
class Decided:
    """What a profile decides about one request, once it is allowed."""

    subject: Subject
    validity_days: int | None
    include_crl: bool


# --- the checks ------------------------------------------------------------------------


def check_identifier(profile: CertificateProfile, san: SAN) -> None:
    """Raise PolicyError unless ``profile`` allows the (normalised) name ``san``.

    What an ACME server asks before any certificate is requested."""
    _SAN_CHECKS[san.type](profile, san.value)


def check_request(
    profile: CertificateProfile,
    certificate_type: CertificateType,
    subject: Subject,
    sans: Sequence[SAN],
) -> None:
    """Raise PolicyError at the first rule of ``profile`` the request's type and names
    break (checked before any key is made)."""
    policy = profile.policy
    if certificate_type not in policy.types:
        _refuse(profile, "type", certificate_type.value, "certificate types", policy.types)
    _check_subject_fields(profile, subject)
    _check_names(profile, "common_name", "common names", subject.common_name, policy.common_name)
    for index, san in enumerate(sans):
        try:
            check_identifier(profile, san)
        except PolicyError as error:
            error.field = f"sans[{index}].value"
            raise


def names_from_csr(
    profile: CertificateProfile,
    common_name: str,
    sans: Sequence[SAN],
    csr_names: tuple[str | None, Sequence[SAN]] | None,
) -> tuple[str, tuple[SAN, ...]]:
    """Under ``names_from: csr``, the common name and SANs to certify: the CSR's
    (``csr_names``, None without a CSR); names the request also gives must repeat them.
    PolicyError says what differs."""
    if csr_names is None:
        raise PolicyError(
            f"Profile {_quoted(profile.name)} takes names from a CSR; send csr.", field="csr"
        )
    csr_common_name, csr_sans = csr_names
    if csr_common_name is not None and common_name != csr_common_name:
        raise PolicyError(
            f"common_name {_quoted(common_name)} differs from the CSR's"
            f" {_quoted(csr_common_name)}; profile {_quoted(profile.name)} takes names from"
            " the CSR.",
            field="common_name",
        )
    if sans and set(sans) != set(csr_sans):
        raise PolicyError(
            f"sans differ from the CSR's; profile {_quoted(profile.name)} takes names from the"
            " CSR: leave sans out or repeat the CSR's.",
            field="sans",
        )
    return csr_common_name or common_name, tuple(csr_sans)


def check_key_algorithm(profile: CertificateProfile, algorithm: KeyAlgorithm, field: str) -> None:
    """PolicyError unless ``profile`` allows keys of ``algorithm`` (``field``: where the
    request gave it, key_algorithm or csr)."""
    allowed = profile.policy.key_algorithms
    if allowed and algorithm not in allowed:
        _refuse(profile, field, algorithm.value, "key algorithms", allowed)


def key_algorithm_for(profile: CertificateProfile, fallback: KeyAlgorithm) -> KeyAlgorithm:
    """The algorithm of a key the service makes when the request names none: ``fallback``
    if the profile allows it, else the profile's first."""
    allowed = profile.policy.key_algorithms
    return fallback if not allowed or fallback in allowed else allowed[0]


def decide(
    profile: CertificateProfile,
    subject: Subject,
    validity_days: int | None,
    has_end: bool,
    include_crl: bool,
) -> Decided:
    """The subject with the fixed fields set, the validity (the profile's default when the
    request gives none) and the CRL choice; PolicyError for a validity over the maximum.
    ``has_end``: the request gives an explicit not_after instead of validity_days."""
    policy = profile.policy
    days = validity_days if validity_days is not None or has_end else policy.default_validity_days
    if days is None and not has_end:
        raise ValidationError(
            f"validity_days is required: profile {_quoted(profile.name)} has no default validity;"
            " give validity_days, or not_after (an ISO 8601 end time).",
            field="validity_days",
        )
    fixed = replace(subject, **dict(policy.fixed_subject)) if policy.fixed_subject else subject
    crl = include_crl if policy.include_crl is None else policy.include_crl
    return Decided(fixed, days, crl)


def check_validity(profile: CertificateProfile, span: dt.timedelta, field: str) -> None:
    """PolicyError if ``span`` (from now to the certificate's end) exceeds the maximum."""
    limit = profile.policy.max_validity_days
    if limit is not None and span > dt.timedelta(days=limit):
        raise PolicyError(
            f"{field} is longer than profile {_quoted(profile.name)} allows: at most {limit} days;"
            " ask for a shorter validity.",
            field=field,
        )


def _check_subject_fields(profile: CertificateProfile, subject: Subject) -> None:
    fixed = dict(profile.policy.fixed_subject)
    for name in SUBJECT_FIELDS:
        value = getattr(subject, name)
        if value is None or fixed.get(name) == value:
            continue
        if name in fixed:
            raise PolicyError(
                f"subject.{name} {_quoted(value)} differs from what profile {_quoted(profile.name)}"
                f" fixes, {_quoted(fixed[name])}; leave it out.",
                field=f"subject.{name}",
            )
        if name not in profile.policy.subject_fields:
            allowed = ", ".join(profile.policy.subject_fields) or "none"
            raise PolicyError(
                f"subject.{name} may not be set under profile {_quoted(profile.name)}; the fields"
                f" a request may set are: {allowed}.",
                field=f"subject.{name}",
            )


def _check_dns(profile: CertificateProfile, name: str) -> None:
    if name.startswith("*.") and not profile.policy.allow_wildcards:
        raise PolicyError(
            f"{_quoted(name)} is a wildcard name and profile {_quoted(profile.name)} allows no"
            " wildcards; name each host.",
            field="sans",
        )
    _check_names(profile, "sans", "DNS names", name, profile.policy.dns)


def _check_ip(profile: CertificateProfile, address: str) -> None:
    _check_names(profile, "sans", "IP addresses", address, profile.policy.ip, _ip_any)


def _check_email(profile: CertificateProfile, address: str) -> None:
    rule = profile.policy.email
    domain = address.rpartition("@")[2]
    _check_names(profile, "sans", "e-mail domains", domain, rule, shown=address)


def _check_uri(profile: CertificateProfile, uri: str) -> None:
    _check_names(profile, "sans", "URIs", uri, profile.policy.uri, _uri_any)


_SAN_CHECKS: dict[SANType, Callable[[CertificateProfile, str], None]] = {
    SANType.DNS: _check_dns,
    SANType.IP: _check_ip,
    SANType.EMAIL: _check_email,
    SANType.URI: _check_uri,
}


def _check_names(
    profile: CertificateProfile,
    field: str,
    what: str,
    value: str,
    rule: NameRule,
    matches: Callable[[str, tuple[str, ...]], bool] | None = None,
    *,
    shown: str | None = None,
) -> None:
    match = matches or _dns_any
    if rule.deny and match(value, rule.deny):
        denied = next(pattern for pattern in rule.deny if match(value, (pattern,)))
        raise PolicyError(
            f"{_quoted(shown or value)} is denied by profile {_quoted(profile.name)}, which"
            f" excludes {what} matching {_quoted(denied)}.",
            field=field,
        )
    if rule.allow and not match(value, rule.allow):
        _refuse(profile, field, shown or value, what, rule.allow)


def _refuse(
    profile: CertificateProfile, field: str, value: str, what: str, allowed: Sequence[object]
) -> None:
    listed = ", ".join(_quoted(str(getattr(item, "value", item))) for item in allowed)
    raise PolicyError(
        f"{_quoted(value)} is outside the allowed {what} of profile {_quoted(profile.name)}:"
        f" allowed are {listed}.",
        field=field,
    )


def _quoted(text: str) -> str:
    """``text`` in double quotes, as the messages of a policy show values."""
    return f'"{text}"'


def _dns_any(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``name`` matches one of the DNS ``patterns`` (exact, or ``*.`` suffix)."""
    exact, suffixes = _dns_index(patterns)
    name = name.lower()
    return name in exact or name.endswith(suffixes)


@functools.lru_cache(maxsize=1024)
def _dns_index(patterns: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
    """Exact names and ``.suffix`` strings of ``patterns``, made once per pattern list:
    a check is then one set lookup and one ``endswith``, whatever the list's length."""
    lowered = [pattern.lower() for pattern in patterns]
    suffixes = tuple(pattern[1:] for pattern in lowered if pattern.startswith("*."))
    return frozenset(p for p in lowered if not p.startswith("*.")), suffixes


def _ip_any(address: str, networks: tuple[str, ...]) -> bool:
    parsed = parsed_address(address)
    return any(parsed in network for network in parsed_networks(networks))


@functools.lru_cache(maxsize=4096)
def parsed_address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``address`` parsed, remembered: the profile and the CA's constraints both ask."""
    return ipaddress.ip_address(address)


@functools.lru_cache(maxsize=1024)
def parsed_networks(
    networks: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``networks`` (CIDR text) parsed once per list."""
    return tuple(ipaddress.ip_network(network) for network in networks)


def _uri_any(uri: str, prefixes: tuple[str, ...]) -> bool:
    return uri.startswith(prefixes)


# --- reading a policy from its plain form (events, HTTP bodies, CLI files) ------------------


def check_profile_name(name: str, field: str = "name") -> str:
    """``name`` if it is a valid profile name (lower-case letters, digits, hyphens)."""
    if not PROFILE_NAME.fullmatch(name):
        raise ValidationError(
            f"{field} {show(name)} is not a profile name: use 1 to {MAX_PROFILE_NAME} lower-case"
            " letters, digits and inner hyphens, as in 'web-servers'.",
            field=field,
        )
    return name


def policy_from(data: Mapping[str, Any], prefix: str = "policy") -> IssuancePolicy:
    """The policy a plain mapping describes (as :func:`policy_data` writes it), checked:
    ValidationError names the field (``policy.dns.allow[2]``) and what to change."""
    reader = _Reader(data, prefix)
    policy = IssuancePolicy(
        types=reader.enums("types", CertificateType) or tuple(CertificateType),
        dns=reader.rule("dns", _dns_pattern),
        allow_wildcards=reader.flag("allow_wildcards", True),
        ip=reader.rule("ip", _network),
        email=reader.rule("email", _dns_pattern),
        uri=reader.rule("uri", _uri_prefix),
        common_name=reader.rule("common_name", _text_pattern),
        key_algorithms=reader.enums("key_algorithms", KeyAlgorithm),
        max_validity_days=reader.days("max_validity_days"),
        default_validity_days=reader.days("default_validity_days"),
        key_usage=reader.enums("key_usage", KeyUsage),
        extended_key_usage=reader.enums("extended_key_usage", ExtendedKeyUsage),
        subject_fields=reader.subject_fields(),
        fixed_subject=reader.fixed_subject(),
        include_crl=reader.optional_flag("include_crl"),
        names_from=reader.choice("names_from", NamesFrom, NamesFrom.REQUEST),
    )
    _check_consistent(policy, prefix)
    return policy


def policy_data(policy: IssuancePolicy) -> dict[str, Any]:
    """The plain (JSON) form of ``policy``, which :func:`policy_from` reads back."""
    return {
        "types": [kind.value for kind in policy.types],
        **{
            kind: {"allow": list(rule.allow), "deny": list(rule.deny)}
            for kind, rule in _rules(policy).items()
        },
        "allow_wildcards": policy.allow_wildcards,
        "key_algorithms": [algorithm.value for algorithm in policy.key_algorithms],
        "max_validity_days": policy.max_validity_days,
        "default_validity_days": policy.default_validity_days,
        "key_usage": [usage.value for usage in policy.key_usage],
        "extended_key_usage": [usage.value for usage in policy.extended_key_usage],
        "subject_fields": list(policy.subject_fields),
        "fixed_subject": dict(policy.fixed_subject),
        "include_crl": policy.include_crl,
        "names_from": policy.names_from.value,
    }


def _rules(policy: IssuancePolicy) -> dict[str, NameRule]:
    return {
        "dns": policy.dns,
        "ip": policy.ip,
        "email": policy.email,
        "uri": policy.uri,
        "common_name": policy.common_name,
    }


def _check_consistent(policy: IssuancePolicy, prefix: str) -> None:
    most, default = policy.max_validity_days, policy.default_validity_days
    if most is not None and default is not None and default > most:
        raise ValidationError(
            f"{prefix}.default_validity_days {default} exceeds max_validity_days {most};"
            " lower the default or raise the maximum.",
            field=f"{prefix}.default_validity_days",
        )
    both = set(policy.subject_fields) & {name for name, _ in policy.fixed_subject}
    if both:
        raise ValidationError(
            f"{prefix}.subject_fields lists {', '.join(sorted(both))}, which fixed_subject"
            " sets; a field is either fixed by the profile or set by the request.",
            field=f"{prefix}.subject_fields",
        )


def _dns_pattern(value: str, field: str) -> str:
    return normalize_san_value(SANType.DNS, value, field)


def _network(value: str, field: str) -> str:
    try:  # host bits are dropped: '10.1.2.3/16' is the network 10.1.0.0/16
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValidationError(
            f"{field} {show(value)} is not a network in CIDR form, as in '10.1.0.0/16' or"
            " '2001:db8::/32'.",
            field=field,
        ) from None


def _uri_prefix(value: str, field: str) -> str:
    if not _URI_PREFIX.fullmatch(value):
        raise ValidationError(
            f"{field} {show(value)} is not a URI prefix; start it with a scheme, as in"
            " 'urn:example:team:'.",
            field=field,
        )
    return value


def _text_pattern(value: str, field: str) -> str:
    if not value.strip() or len(value) > 64:
        raise ValidationError(f"{field} must be 1 to 64 characters.", field=field)
    return value.strip()


def _not_one_of(path: str, value: str, enum: type[Enum]) -> ValidationError:
    names = ", ".join(member.value for member in enum)
    return ValidationError(f"{path} {show(value)} is not one of {names}.", field=path)


@dataclass(frozen=True)
class _Reader:
    """Typed reads of one plain policy mapping, each error naming its field."""

    data: Mapping[str, Any]
    prefix: str

    def _get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = self.data.get(key, default)
        if value is not None and not isinstance(value, kind):
            raise ValidationError(
                f"{self.prefix}.{key} has the wrong type; see the Profile schema.",
                field=f"{self.prefix}.{key}",
            )
        return value

    def _strings(self, key: str, data: Mapping[str, Any] | None = None) -> list[str]:
        values = self._get(key, list, []) if data is None else data.get(key) or []
        if len(values) > MAX_PATTERNS or not all(isinstance(value, str) for value in values):
            raise ValidationError(
                f"{self.prefix}.{key} must be a list of at most {MAX_PATTERNS} strings.",
                field=f"{self.prefix}.{key}",
            )
        return list(values)

    def enums(self, key: str, enum: type[_E]) -> tuple[_E, ...]:
        found: list[_E] = []
        for index, value in enumerate(self._strings(key)):
            try:
                member = enum(value)
            except ValueError:
                raise _not_one_of(f"{self.prefix}.{key}[{index}]", value, enum) from None
            if member not in found:
                found.append(member)
        return tuple(found)

    def choice(self, key: str, enum: type[_E], default: _E) -> _E:
        value = self._get(key, str, None)
        if value is None:
            return default
        try:
            return enum(value)
        except ValueError:
            raise _not_one_of(f"{self.prefix}.{key}", value, enum) from None

    def rule(self, key: str, parse: Callable[[str, str], str]) -> NameRule:
        data = self._get(key, dict, {})
        lists = {}
        for part in ("allow", "deny"):
            path = f"{self.prefix}.{key}.{part}"
            values = _Reader(data, f"{self.prefix}.{key}")._strings(part, data)
            lists[part] = tuple(parse(value, f"{path}[{i}]") for i, value in enumerate(values))
        return NameRule(**lists)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, bool, default)
        return default if value is None else bool(value)

    def optional_flag(self, key: str) -> bool | None:
        value: bool | None = self._get(key, bool, None)
        return value

    def days(self, key: str) -> int | None:
        value = self._get(key, int, None)
        if value is not None and (isinstance(value, bool) or not 1 <= value <= MAX_LEAF_DAYS):
            raise ValidationError(
                f"{self.prefix}.{key} must be a number of days from 1 to {MAX_LEAF_DAYS}.",
                field=f"{self.prefix}.{key}",
            )
        return value if value is None else int(value)

    def subject_fields(self) -> tuple[str, ...]:
        if "subject_fields" not in self.data or self.data["subject_fields"] is None:
            return SUBJECT_FIELDS
        values = self._strings("subject_fields")
        for index, value in enumerate(values):
            self._subject_field(value, f"{self.prefix}.subject_fields[{index}]")
        return tuple(dict.fromkeys(values))

    def fixed_subject(self) -> tuple[tuple[str, str], ...]:
        data = self._get("fixed_subject", dict, {})
        path = f"{self.prefix}.fixed_subject"
        for key, value in data.items():
            self._subject_field(key, f"{path}.{key}")
            if not isinstance(value, str) or not value.strip():
                raise ValidationError(f"{path}.{key} must be a non-empty string.", field=path)
        try:  # the same normal form as a request's subject, so they compare equal
            fixed = normalize_subject(Subject("fixed", **data))
        except SubjectError as error:
            field = f"{path}.{(error.field or '').rpartition('.')[2]}"
            raise ValidationError(error.detail, field=field) from None
        return tuple(sorted((key, getattr(fixed, key)) for key in data))

    @staticmethod
    def _subject_field(name: str, path: str) -> None:
        if name not in SUBJECT_FIELDS:
            raise ValidationError(
                f"{path} {show(name)} is not a subject field; choose from"
                f" {', '.join(SUBJECT_FIELDS)}.",
                field=path,
            )
