"""The plain (JSON) form of an issuance policy: what events store, HTTP bodies and CLI
files carry. :func:`policy_from` reads and checks it, naming the offending field
(``policy.dns.allow[2]``) and what to change; :func:`policy_data` writes it back."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from domain.model.ca_rules import MAX_LEAF_DAYS
from domain.model.errors import SubjectError, ValidationError
from domain.model.policy import (
    MAX_PATTERNS,
    SUBJECT_FIELDS,
    ExtendedKeyUsage,
    IssuancePolicy,
    KeyUsage,
    NameRule,
    NamesFrom,
)
from domain.model.san_values import normalize_san_value
from domain.model.text import show
from domain.model.validation import normalize_subject
from domain.model.values import CertificateType, KeyAlgorithm, SANType, Subject

_URI_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S*")
_E = TypeVar("_E", bound=Enum)


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
