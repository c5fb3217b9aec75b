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

import ipaddress
import re
import unicodedata
from collections.abc import Sequence

from domain.model.errors import SANError, SubjectError, ValidationError
from domain.model.values import SAN, CertificateType, SANType, Subject

MAX_SANS = 10
"""Most subjectAltName entries one certificate may carry."""

ALLOWED_SAN_TYPES: dict[CertificateType, tuple[SANType, ...]] = {
    CertificateType.SERVER: (SANType.DNS, SANType.IP),
    CertificateType.CLIENT: (SANType.EMAIL, SANType.URI),
}
"""The SAN types each certificate type accepts."""

_MAX_COMMON_NAME = 64
_MAX_URI = 2048
_MAX_DNS_NAME = 253
_MAX_DNS_LABEL = 63
_MAX_EMAIL = 254
_MAX_EMAIL_LOCAL = 64

# C0 controls (NUL included), DEL, C1 controls, and lone surrogates (not encodable).
_FORBIDDEN_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Categories allowed for non-ASCII characters in a U-label: an approximation of the
# IDNA2008 PVALID set (lower-case and other letters, combining marks, decimal digits).
_IDN_CATEGORIES = frozenset({"Ll", "Lo", "Lm", "Mn", "Mc", "Nd"})
_LDH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_QUOTED_STRING = re.compile(r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"')
_URI_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_URI_BAD_CHAR = re.compile(r"[^A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]")
_URI_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_URI_PORT = re.compile(r"(?::[0-9]*)?")
_BRACKETS_MESSAGE = "percent-encode '[' and ']' outside an IPv6 host"


def _show(value: str) -> str:
    """Quote a user value for a message: shortened, with control characters escaped."""
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _clean(value: object, field: str, error: type[ValidationError], what: str) -> str:
    """Return ``value`` stripped of surrounding whitespace, refusing control characters."""
    if not isinstance(value, str):
        raise error(f"{what} must be a string; got {type(value).__name__}", field=field)
    bad = _FORBIDDEN_CHARS.search(value)
    if bad:
        raise error(
            f"remove the control character U+{ord(bad.group()):04X} from {what} {_show(value)}",
            field=field,
        )
    return value.strip()


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
    common_name = _clean(subject.common_name, field, SubjectError, "common_name")
    if not common_name:
        raise SubjectError(
            "common_name is required; give the host name or person the certificate is for",
            field=field,
        )
    if len(common_name.encode()) > _MAX_COMMON_NAME:
        raise SubjectError(
            f"common_name must be at most 64 characters (64 bytes in UTF-8); "
            f"shorten {_show(common_name)}",
            field=field,
        )
    return Subject(
        common_name=common_name,
        organization=_optional_attribute(subject.organization, "organization", 64),
        organizational_unit=_optional_attribute(
            subject.organizational_unit, "organizational_unit", 64
        ),
        locality=_optional_attribute(subject.locality, "locality", 128),
        state=_optional_attribute(subject.state, "state", 128),
        country=_country(subject.country),
    )


def _optional_attribute(value: str | None, name: str, limit: int) -> str | None:
    """Strip an optional attribute; None when empty; SubjectError when too long."""
    if value is None:
        return None
    text = _clean(value, f"subject.{name}", SubjectError, name)
    if len(text) > limit:
        raise SubjectError(
            f"{name} must be at most {limit} characters; shorten {_show(text)} "
            f"({len(text)} characters)",
            field=f"subject.{name}",
        )
    return text or None


def _country(value: str | None) -> str | None:
    """Return the country as an upper-case 2-letter code, or None when absent."""
    if value is None:
        return None
    text = _clean(value, "subject.country", SubjectError, "country")
    if not text:
        return None
    if not re.fullmatch(r"[A-Za-z]{2}", text):
        raise SubjectError(
            f"country must be a 2-letter ISO 3166 code such as 'DE'; got {_show(text)}",
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
                f"got {_show(str(type_name))}",
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
        normalized = SAN(type=san_type, value=_NORMALIZERS[san_type](san.value, field))
        if normalized in first_index:
            raise SANError(
                f"sans[{index}] repeats sans[{first_index[normalized]}] "
                f"({san_type.value} {_show(normalized.value)}); remove one of them",
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
            f"got {_show(shown)}",
            field=field,
        )
    return san_type


# --- DNS names ---------------------------------------------------------------------------


def _dns(value: object, field: str) -> str:
    """Normalise a DNS SAN; a leftmost wildcard label "*" is allowed."""
    text = _clean(value, field, SANError, "DNS name")
    return _dns_name(text, field, what="DNS name", wildcard_ok=True)


def _dns_name(text: str, field: str, *, what: str, wildcard_ok: bool) -> str:
    """Return ``text`` as a lower-case ASCII DNS name with A-labels and no trailing dot."""
    name = unicodedata.normalize("NFC", text).lower().removesuffix(".")
    if not name:
        raise SANError(f"{what} must not be empty; give one such as 'www.example.com'", field=field)
    _refuse_ip(name, text, field, what)
    if len(name) > _MAX_DNS_NAME:
        raise SANError(f"{what} must be at most 253 characters; shorten {_show(text)}", field=field)
    labels = name.split(".")
    prefix = ""
    if labels[0] == "*" and wildcard_ok:
        if len(labels) < 3:
            raise SANError(
                f"a wildcard needs at least two labels after '*.', as in '*.example.com'; "
                f"got {_show(text)}",
                field=field,
            )
        prefix, labels = "*.", labels[1:]
    a_labels = [_a_label(label, text, field, what, wildcard_ok) for label in labels]
    if a_labels[-1].isdigit():
        raise SANError(
            f"the last label of the {what} cannot be all digits; if {_show(text)} is meant "
            f"as an IP address, use an 'ip' entry",
            field=field,
        )
    result = prefix + ".".join(a_labels)
    if len(result) > _MAX_DNS_NAME:
        raise SANError(
            f"{what} must be at most 253 characters once encoded; shorten {_show(text)}",
            field=field,
        )
    return result


_IP_CHARACTERS = frozenset("0123456789abcdef.:[]%")


def _refuse_ip(name: str, text: str, field: str, what: str) -> None:
    """Raise SANError when ``name`` is an IP address written where a host name belongs."""
    if not _IP_CHARACTERS.issuperset(name):  # most names: no need to try parsing
        return
    try:
        ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
    except ValueError:
        return
    hint = (
        "add it as an 'ip' entry instead of 'dns'"
        if what == "DNS name"
        else f"the {what} must be a host name"
    )
    raise SANError(f"{_show(text)} is an IP address; {hint}", field=field)


def _a_label(label: str, text: str, field: str, what: str, wildcard_ok: bool) -> str:
    """Return one lower-case label of a DNS name as an LDH label or A-label."""
    if not label:
        raise SANError(
            f"{what} {_show(text)} has an empty label; remove the extra dot", field=field
        )
    if "*" in label:
        rule = (
            "a wildcard is allowed only as the whole leftmost label, as in '*.example.com'"
            if wildcard_ok
            else f"remove '*' from the {what}"
        )
        raise SANError(f"{rule}; got {_show(text)}", field=field)
    if len(label) > _MAX_DNS_LABEL:
        raise SANError(_label_too_long(label, what), field=field)
    u_label = _decode_a_label(label, field, what) if label.startswith("xn--") else label
    problem = _u_label_problem(u_label)
    if problem and u_label != label:
        raise SANError(
            f"{what} label {_show(label)} is not a valid A-label: its Unicode form "
            f"{_show(u_label)} {problem}",
            field=field,
        )
    if problem:
        raise SANError(f"{what} label {_show(label)} {problem}", field=field)
    if label.isascii():
        return label
    encoded = "xn--" + label.encode("punycode").decode("ascii")
    if len(encoded) > _MAX_DNS_LABEL:
        raise SANError(_label_too_long(label, what), field=field)
    return encoded


def _label_too_long(label: str, what: str) -> str:
    return f"each {what} label must be at most 63 characters once encoded; shorten {_show(label)}"


def _decode_a_label(label: str, field: str, what: str) -> str:
    """Return the U-label of an "xn--" label; SANError unless it is a canonical A-label."""
    try:
        u_label = label[4:].encode("ascii").decode("punycode")
        reencoded = u_label.encode("punycode").decode("ascii")
    except (UnicodeError, ValueError, OverflowError):
        u_label = reencoded = ""
    canonical = (
        not u_label.isascii()
        and reencoded == label[4:]
        and unicodedata.normalize("NFC", u_label.lower()) == u_label
    )
    if not canonical:
        raise SANError(
            f"{what} label {_show(label)} is not a valid punycode A-label; "
            f"write the name in Unicode or correct the 'xn--' label",
            field=field,
        )
    return u_label


def _u_label_problem(label: str) -> str | None:
    """Say which IDNA2008-style rule a lower-case, non-empty label breaks, or None."""
    if label.startswith("-") or label.endswith("-"):
        return "must not start or end with a hyphen; remove the hyphen"
    if label[2:4] == "--":
        return "must not have '--' in the third and fourth positions; remove a hyphen"
    if not label.isascii():
        plain = unicodedata.normalize("NFKC", label)
        if plain != label:
            return f"uses compatibility characters (such as full-width letters); write {plain!r}"
        if unicodedata.category(label[0]).startswith("M"):
            return "must not start with a combining mark; put a letter before it"
    for ch in label:
        allowed = ch in _LDH_CHARS or (
            not ch.isascii() and unicodedata.category(ch) in _IDN_CATEGORIES
        )
        if not allowed:
            return f"may use only letters, digits and '-'; remove {ch!r} (U+{ord(ch):04X})"
    return None


# --- IP addresses, email addresses, URIs -------------------------------------------------


def _ip(value: object, field: str) -> str:
    """Normalise an IPv4 or IPv6 address to its compressed text form."""
    text = _clean(value, field, SANError, "IP address")
    if "/" in text:
        raise SANError(
            f"an 'ip' entry is a single address, not a network; drop the '/' prefix length "
            f"from {_show(text)}",
            field=field,
        )
    if "%" in text:
        raise SANError(
            f"remove the zone index ('%...') from the IP address {_show(text)}", field=field
        )
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise SANError(
            f"give an IPv4 address such as '192.0.2.10' or an IPv6 address such as "
            f"'2001:db8::10'; got {_show(text)}",
            field=field,
        ) from None


def _email(value: object, field: str) -> str:
    """Normalise an RFC 5322 addr-spec; only the domain is lower-cased and IDNA-encoded."""
    text = _clean(value, field, SANError, "email address")
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise SANError(
            f"an email address must look like 'name@example.com'; got {_show(text)}",
            field=field,
        )
    if not local.isascii():
        raise SANError(
            f"the part before '@' must be ASCII (internationalised mailboxes are not "
            f"supported); got {_show(text)}",
            field=field,
        )
    if len(local) > _MAX_EMAIL_LOCAL:
        raise SANError(
            f"the part before '@' must be at most 64 characters; shorten {_show(text)}",
            field=field,
        )
    if not (_DOT_ATOM.fullmatch(local) or _QUOTED_STRING.fullmatch(local)):
        raise SANError(
            f"the part before '@' must be dot-separated letters, digits and "
            f"!#$%&'*+/=?^_`{{|}}~- with no empty parts, or a quoted string; got {_show(text)}",
            field=field,
        )
    address = f"{local}@{_dns_name(domain, field, what='email domain', wildcard_ok=False)}"
    if len(address) > _MAX_EMAIL:
        raise SANError(
            f"an email address must be at most 254 characters once encoded; shorten {_show(text)}",
            field=field,
        )
    return address


def _uri(value: object, field: str) -> str:
    """Check an absolute RFC 3986 URI (with a host when it has '//'); lower-case the scheme."""
    text = _clean(value, field, SANError, "URI")
    if len(text) > _MAX_URI:
        raise SANError(f"a URI must be at most 2048 characters; shorten {_show(text)}", field=field)
    scheme, colon, rest = text.partition(":")
    if not colon or not _URI_SCHEME.fullmatch(scheme):
        raise SANError(
            f"a URI must be absolute, starting with a scheme such as 'https:' or 'spiffe:'; "
            f"got {_show(text)}",
            field=field,
        )
    if not rest:
        raise SANError(f"add something after '{scheme}:' in the URI {_show(text)}", field=field)
    bad = _URI_BAD_CHAR.search(rest)
    if bad:
        raise SANError(
            f"percent-encode {bad.group()!r} in the URI as UTF-8 %XX escapes; got {_show(text)}",
            field=field,
        )
    if _URI_BAD_PERCENT.search(rest):
        raise SANError(
            f"every '%' in a URI must start a %XX escape with two hex digits; got {_show(text)}",
            field=field,
        )
    problem = _uri_structure_problem(rest)
    if problem:
        raise SANError(f"{problem}; got {_show(text)}", field=field)
    return f"{scheme.lower()}:{rest}"


def _uri_structure_problem(rest: str) -> str | None:
    """Say what is wrong with the part of a URI after "scheme:", or None."""
    body, _, fragment = rest.partition("#")
    if "#" in fragment:
        return "a URI may contain only one '#'; percent-encode the others as %23"
    outside = rest
    if body.startswith("//"):
        authority = re.split(r"[/?]", body[2:], maxsplit=1)[0]
        userinfo, _, host_port = authority.rpartition("@")
        if "@" in userinfo:
            return "a URI authority may contain only one '@'; percent-encode the others as %40"
        problem = _host_problem(host_port)
        if problem:
            return problem
        outside = userinfo + rest[2 + len(authority) :]
    if "[" in outside or "]" in outside:
        return _BRACKETS_MESSAGE
    return None


def _host_problem(host_port: str) -> str | None:
    """Say what is wrong with the "host[:port]" of a URI authority, or None."""
    if host_port.startswith("["):
        literal, bracket, port = host_port[1:].partition("]")
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            bracket = ""
        if not bracket:
            return "brackets in a URI host must hold an IPv6 address such as '[2001:db8::1]'"
    else:
        host, colon, digits = host_port.partition(":")
        port = colon + digits
        if "[" in host_port or "]" in host_port:
            return _BRACKETS_MESSAGE
        if not host:
            return "a URI with '//' must name a host (RFC 5280), as in 'spiffe://example.org/x'"
    if not _URI_PORT.fullmatch(port):
        return "a URI port must be digits only"
    return None


_NORMALIZERS = {
    SANType.DNS: _dns,
    SANType.IP: _ip,
    SANType.EMAIL: _email,
    SANType.URI: _uri,
}
