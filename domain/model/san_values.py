"""Normalisation of one subjectAltName value by its type: DNS names (IDNA A-labels),
IP addresses, RFC 5322 email addresses and RFC 3986 URIs. Each function returns the
normalised ASCII text or raises :class:`~domain.model.errors.SANError` naming ``field``."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable

from domain.model.errors import SANError
from domain.model.text import clean, show
from domain.model.values import SANType

_MAX_URI = 2048
_MAX_DNS_NAME = 253
_MAX_DNS_LABEL = 63
_MAX_EMAIL = 254
_MAX_EMAIL_LOCAL = 64

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


# --- DNS names ---------------------------------------------------------------------------


def _dns(value: object, field: str) -> str:
    """Normalise a DNS SAN; a leftmost wildcard label "*" is allowed."""
    text = clean(value, field, SANError, "DNS name")
    return _dns_name(text, field, what="DNS name", wildcard_ok=True)


def _dns_name(text: str, field: str, *, what: str, wildcard_ok: bool) -> str:
    """Return ``text`` as a lower-case ASCII DNS name with A-labels and no trailing dot."""
    name = unicodedata.normalize("NFC", text).lower().removesuffix(".")
    if not name:
        raise SANError(f"{what} must not be empty; give one such as 'www.example.com'", field=field)
    _refuse_ip(name, text, field, what)
    if len(name) > _MAX_DNS_NAME:
        raise SANError(f"{what} must be at most 253 characters; shorten {show(text)}", field=field)
    labels = name.split(".")
    prefix = ""
    if labels[0] == "*" and wildcard_ok:
        if len(labels) < 3:
            raise SANError(
                f"a wildcard needs at least two labels after '*.', as in '*.example.com'; "
                f"got {show(text)}",
                field=field,
            )
        prefix, labels = "*.", labels[1:]
    a_labels = [_a_label(label, text, field, what, wildcard_ok) for label in labels]
    if a_labels[-1].isdigit():
        raise SANError(
            f"the last label of the {what} cannot be all digits; if {show(text)} is meant "
            f"as an IP address, use an 'ip' entry",
            field=field,
        )
    result = prefix + ".".join(a_labels)
    if len(result) > _MAX_DNS_NAME:
        raise SANError(
            f"{what} must be at most 253 characters once encoded; shorten {show(text)}",
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
    raise SANError(f"{show(text)} is an IP address; {hint}", field=field)


def _a_label(label: str, text: str, field: str, what: str, wildcard_ok: bool) -> str:
    """Return one lower-case label of a DNS name as an LDH label or A-label."""
    if not label:
        raise SANError(f"{what} {show(text)} has an empty label; remove the extra dot", field=field)
    if "*" in label:
        rule = (
            "a wildcard is allowed only as the whole leftmost label, as in '*.example.com'"
            if wildcard_ok
            else f"remove '*' from the {what}"
        )
        raise SANError(f"{rule}; got {show(text)}", field=field)
    if len(label) > _MAX_DNS_LABEL:
        raise SANError(_label_too_long(label, what), field=field)
    u_label = _decode_a_label(label, field, what) if label.startswith("xn--") else label
    problem = _u_label_problem(u_label)
    if problem and u_label != label:
        raise SANError(
            f"{what} label {show(label)} is not a valid A-label: its Unicode form "
            f"{show(u_label)} {problem}",
            field=field,
        )
    if problem:
        raise SANError(f"{what} label {show(label)} {problem}", field=field)
    if label.isascii():
        return label
    encoded = "xn--" + label.encode("punycode").decode("ascii")
    if len(encoded) > _MAX_DNS_LABEL:
        raise SANError(_label_too_long(label, what), field=field)
    return encoded


def _label_too_long(label: str, what: str) -> str:
    return f"each {what} label must be at most 63 characters once encoded; shorten {show(label)}"


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
            f"{what} label {show(label)} is not a valid punycode A-label; "
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
    text = clean(value, field, SANError, "IP address")
    if "/" in text:
        raise SANError(
            f"an 'ip' entry is a single address, not a network; drop the '/' prefix length "
            f"from {show(text)}",
            field=field,
        )
    if "%" in text:
        raise SANError(
            f"remove the zone index ('%...') from the IP address {show(text)}", field=field
        )
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise SANError(
            f"give an IPv4 address such as '192.0.2.10' or an IPv6 address such as "
            f"'2001:db8::10'; got {show(text)}",
            field=field,
        ) from None


def _email(value: object, field: str) -> str:
    """Normalise an RFC 5322 addr-spec; only the domain is lower-cased and IDNA-encoded."""
    text = clean(value, field, SANError, "email address")
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise SANError(
            f"an email address must look like 'name@example.com'; got {show(text)}",
            field=field,
        )
    if not local.isascii():
        raise SANError(
            f"the part before '@' must be ASCII (internationalised mailboxes are not "
            f"supported); got {show(text)}",
            field=field,
        )
    if len(local) > _MAX_EMAIL_LOCAL:
        raise SANError(
            f"the part before '@' must be at most 64 characters; shorten {show(text)}",
            field=field,
        )
    if not (_DOT_ATOM.fullmatch(local) or _QUOTED_STRING.fullmatch(local)):
        raise SANError(
            f"the part before '@' must be dot-separated letters, digits and "
            f"!#$%&'*+/=?^_`{{|}}~- with no empty parts, or a quoted string; got {show(text)}",
            field=field,
        )
    address = f"{local}@{_dns_name(domain, field, what='email domain', wildcard_ok=False)}"
    if len(address) > _MAX_EMAIL:
        raise SANError(
            f"an email address must be at most 254 characters once encoded; shorten {show(text)}",
            field=field,
        )
    return address


def _uri(value: object, field: str) -> str:
    """Check an absolute RFC 3986 URI (with a host when it has '//'); lower-case the scheme."""
    text = clean(value, field, SANError, "URI")
    if len(text) > _MAX_URI:
        raise SANError(f"a URI must be at most 2048 characters; shorten {show(text)}", field=field)
    scheme, colon, rest = text.partition(":")
    if not colon or not _URI_SCHEME.fullmatch(scheme):
        raise SANError(
            f"a URI must be absolute, starting with a scheme such as 'https:' or 'spiffe:'; "
            f"got {show(text)}",
            field=field,
        )
    if not rest:
        raise SANError(f"add something after '{scheme}:' in the URI {show(text)}", field=field)
    bad = _URI_BAD_CHAR.search(rest)
    if bad:
        raise SANError(
            f"percent-encode {bad.group()!r} in the URI as UTF-8 %XX escapes; got {show(text)}",
            field=field,
        )
    if _URI_BAD_PERCENT.search(rest):
        raise SANError(
            f"every '%' in a URI must start a %XX escape with two hex digits; got {show(text)}",
            field=field,
        )
    problem = _uri_structure_problem(rest)
    if problem:
        raise SANError(f"{problem}; got {show(text)}", field=field)
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


def normalize_san_value(san_type: SANType, value: object, field: str) -> str:
    """``value`` normalised as a SAN of ``san_type``; SANError naming ``field`` otherwise."""
    return _NORMALIZERS[san_type](value, field)


_NORMALIZERS: dict[SANType, Callable[[object, str], str]] = {
    SANType.DNS: _dns,
    SANType.IP: _ip,
    SANType.EMAIL: _email,
    SANType.URI: _uri,
}
