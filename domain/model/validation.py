"""Validation and normalisation of certificate request input: the subject and its SANs.

Each public function either returns a normalised copy of its input or raises
:class:`~domain.model.errors.SubjectError` / :class:`~domain.model.errors.SANError` whose ``field``
is the path of the offending input ("subject.country", "sans[3].value", "sans") and whose
message says, in one sentence, what to change. No other exception escapes for bad text.

Normalised values are stable: normalising them again returns them unchanged. Accepted
DNS names, email addresses and URIs are ASCII, so they can go into a certificate as they
are; internationalised domain names are converted to A-labels ("xn--...").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from domain.model.countries import COUNTRY_CODES
from domain.model.errors import SANError, SubjectError, ValidationError
from domain.model.san_values import normalize_san_value
from domain.model.text import clean, show
from domain.model.values import SAN, CertificateType, SANType, Subject

MAX_SANS = 10
"""Most subjectAltName entries one certificate may carry."""

ALLOWED_SAN_TYPES: dict[CertificateType, tuple[SANType, ...]] = {
    CertificateType.SERVER: (SANType.DNS, SANType.IP),
    CertificateType.CLIENT: (SANType.EMAIL, SANType.URI),
}
"""The SAN types each certificate type accepts."""

_MAX_COMMON_NAME = 64
MAX_ATTRIBUTE_LENGTHS = {
    "organization": 64,
    "organizational_unit": 64,
    "locality": 128,
    "state": 128,
}
"""The longest optional subject attributes, in characters (RFC 5280's upper bounds)."""


# --- subject -----------------------------------------------------------------------------


def normalize_subject(subject: Subject) -> Subject:
    """Return ``subject`` with every attribute stripped and within RFC 5280 bounds.

    The common name is required and at most 64 characters; because the certificate
    library counts UTF-8 bytes, it must also fit in 64 bytes. Organization and unit allow
    64 characters, locality and state 128. Empty optional attributes become None and the
    country becomes a 2-letter upper-case code. Control characters are refused anywhere.
    Raises SubjectError.
    """
    field = "subject.common_name"
    common_name = clean(subject.common_name, field, SubjectError, "common_name")
    if not common_name:
        raise SubjectError(
            "common_name is required; give the host name or person the certificate is for",
            field=field,
        )
    if len(common_name.encode()) > _MAX_COMMON_NAME:
        raise SubjectError(
            f"common_name must be at most 64 characters (64 bytes in UTF-8); "
            f"shorten {show(common_name)}",
            field=field,
        )
    return Subject(
        common_name=common_name,
        organization=_optional_attribute(subject.organization, "organization"),
        organizational_unit=_optional_attribute(subject.organizational_unit, "organizational_unit"),
        locality=_optional_attribute(subject.locality, "locality"),
        state=_optional_attribute(subject.state, "state"),
        country=_country(subject.country),
    )


def display_name(value: str | None, field: str = "name") -> str | None:
    """A display name (of a certificate or a token) stripped, or None when absent or blank;
    ValidationError for control or bidirectional-control characters."""
    if value is None:
        return None
    return clean(value, field, ValidationError, field) or None


def _optional_attribute(value: str | None, name: str) -> str | None:
    """Strip an optional attribute; None when empty; SubjectError when too long."""
    limit = MAX_ATTRIBUTE_LENGTHS[name]
    if value is None:
        return None
    text = clean(value, f"subject.{name}", SubjectError, name)
    if len(text) > limit:
        raise SubjectError(
            f"{name} must be at most {limit} characters; shorten {show(text)} "
            f"({len(text)} characters)",
            field=f"subject.{name}",
        )
    return text or None


def _country(value: str | None) -> str | None:
    """Return the country as an upper-case 2-letter code, or None when absent."""
    if value is None:
        return None
    text = clean(value, "subject.country", SubjectError, "country")
    if not text:
        return None
    if not re.fullmatch(r"[A-Za-z]{2}", text):
        raise SubjectError(
            f"country must be a 2-letter ISO 3166 code such as 'DE'; got {show(text)}",
            field="subject.country",
        )
    if text.upper() not in COUNTRY_CODES:
        raise SubjectError(
            f"country {show(text)} is not an assigned ISO 3166-1 code; use one such as 'DE'"
            " or 'GB' (the United Kingdom's code is GB, not UK)",
            field="subject.country",
        )
    return text.upper()


# --- SAN list ----------------------------------------------------------------------------


def parse_san_list(raw: Sequence[tuple[str, str]]) -> list[SAN]:
    """Turn ``(type, value)`` pairs such as ``("dns", "a.example")`` into SAN values.

    Types are matched case-insensitively; values pass through untouched (validate them
    with :func:`normalize_sans`). Raises SANError with field "sans[i].type" for an
    unknown type.
    """
    sans: list[SAN] = []
    for index, (type_name, value) in enumerate(raw):
        key = type_name.strip().lower() if isinstance(type_name, str) else type_name
        try:
            san_type = SANType(key)
        except ValueError:
            raise SANError(
                f"type must be one of {_type_names(tuple(SANType), 'or')}; "
                f"got {show(str(type_name))}",
                field=f"sans[{index}].type",
            ) from None
        sans.append(SAN(type=san_type, value=value))
    return sans


def normalize_sans(cert_type: CertificateType, sans: Sequence[SAN]) -> tuple[SAN, ...]:
    """Return ``sans`` validated and normalised for a certificate of ``cert_type``.

    At most 10 entries; server certificates take only DNS and IP entries, client
    certificates only email and URI entries; entries equal after normalisation are
    refused. DNS names become lower-case ASCII (A-labels) without a trailing dot, IP
    addresses their compressed text form, email domains lower-case A-labels, and URI
    schemes lower case. Order is kept. Raises SANError.
    """
    if len(sans) > MAX_SANS:
        raise SANError(
            f"a certificate can carry at most {MAX_SANS} subjectAltName entries; "
            f"remove {len(sans) - MAX_SANS} of the {len(sans)} given",
            field="sans",
        )
    kind = CertificateType(cert_type)
    result: list[SAN] = []
    first_index: dict[SAN, int] = {}
    for index, san in enumerate(sans):
        san_type = _allowed_type(kind, san.type, f"sans[{index}].type")
        field = f"sans[{index}].value"
        normalized = SAN(type=san_type, value=normalize_san_value(san_type, san.value, field))
        if normalized in first_index:
            raise SANError(
                f"sans[{index}] repeats sans[{first_index[normalized]}] "
                f"({san_type.value} {show(normalized.value)}); remove one of them",
                field=field,
            )
        first_index[normalized] = index
        result.append(normalized)
    return tuple(result)


def _type_names(types: Sequence[SANType], conjunction: str) -> str:
    """Render SAN types for a message, e.g. "'dns' and 'ip'"."""
    names = [repr(t.value) for t in types]
    return f"{', '.join(names[:-1])} {conjunction} {names[-1]}"


def _allowed_type(kind: CertificateType, raw: object, field: str) -> SANType:
    """Return ``raw`` as a SANType that ``kind`` accepts, else raise SANError."""
    allowed = ALLOWED_SAN_TYPES[kind]
    try:
        san_type: SANType | None = SANType(raw)
    except ValueError:
        san_type = None
    if san_type is None or san_type not in allowed:
        shown = raw.value if isinstance(raw, SANType) else str(raw)
        raise SANError(
            f"a {kind.value} certificate accepts only {_type_names(allowed, 'and')} entries; "
            f"got {show(shown)}",
            field=field,
        )
    return san_type
