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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum

from domain.model.errors import PolicyError, ValidationError
from domain.model.text import show
from domain.model.validation import MAX_ATTRIBUTE_LENGTHS
from domain.model.values import SAN, CertificateType, KeyAlgorithm, SANType, Subject

DEFAULT_PROFILE = "default"
"""The profile every intermediate has without any event: today's behaviour."""
MAX_PROFILE_NAME = 64
MAX_PATTERNS = 100
PROFILE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
SUBJECT_FIELDS = (*MAX_ATTRIBUTE_LENGTHS, "country")
"""Subject fields besides the common name that a profile lets requests set, or fixes."""


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


def check_profile_name(name: str, field: str = "name") -> str:
    """``name`` if it is a valid profile name (lower-case letters, digits, hyphens)."""
    if not PROFILE_NAME.fullmatch(name):
        raise ValidationError(
            f"{field} {show(name)} is not a profile name: use 1 to {MAX_PROFILE_NAME} lower-case"
            " letters, digits and inner hyphens, as in 'web-servers'.",
            field=field,
        )
    return name
