"""A minimal DER (X.690) encoder and TLV reader, and PEM (RFC 7468): just what CRLs, OCSP
key hashes, encrypted PKCS#8 keys and PEM downloads need.

Every encoding function returns the complete encoding (tag, length octets, contents) of one
value, so values compose by concatenation: ``sequence(integer(1), boolean(True))``. Nothing
here knows about X.509; the structures live in ``domain.pki.crl`` and ``domain.pki.ocsp``.
"""

from __future__ import annotations

import base64
import datetime as dt

TAG_BOOLEAN = 0x01
TAG_INTEGER = 0x02
TAG_BIT_STRING = 0x03
TAG_OCTET_STRING = 0x04
TAG_NULL = 0x05
TAG_OID = 0x06
TAG_ENUMERATED = 0x0A
TAG_UTC_TIME = 0x17
TAG_GENERALIZED_TIME = 0x18
TAG_SEQUENCE = 0x30
_CONSTRUCTED = 0x20
_CONTEXT = 0x80
_UTC_TIME_YEARS = range(1950, 2050)
_PEM_LINE = 64


def length(size: int) -> bytes:
    """The length octets for ``size`` content octets: short form below 128, else long form."""
    if size < 0x80:
        return bytes((size,))
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def tlv(tag: int, contents: bytes) -> bytes:
    """One value: the single identifier octet ``tag``, the length, then ``contents``."""
    return bytes((tag,)) + length(len(contents)) + contents


def header(tag: int, size: int) -> bytes:
    """The identifier and length octets of a value whose ``size`` contents come separately."""
    return bytes((tag,)) + length(size)


def sequence(*parts: bytes) -> bytes:
    """A SEQUENCE (or SEQUENCE OF) of already encoded ``parts``."""
    return tlv(TAG_SEQUENCE, b"".join(parts))


def integer(value: int, tag: int = TAG_INTEGER) -> bytes:
    """An INTEGER in the fewest two's-complement octets (a 0x00 lead keeps 0x80+ positive)."""
    size = (value + (value < 0)).bit_length() // 8 + 1
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def enumerated(value: int) -> bytes:
    """An ENUMERATED, encoded like an INTEGER under its own tag."""
    return integer(value, TAG_ENUMERATED)


def boolean(value: bool) -> bytes:
    """A BOOLEAN; DER fixes TRUE as 0xFF."""
    return tlv(TAG_BOOLEAN, b"\xff" if value else b"\x00")


def null() -> bytes:
    """The NULL value."""
    return tlv(TAG_NULL, b"")


def octet_string(value: bytes) -> bytes:
    """An OCTET STRING holding ``value``."""
    return tlv(TAG_OCTET_STRING, value)


def bit_string(value: bytes) -> bytes:
    """A BIT STRING of whole octets (zero unused bits), as signatures and keys are."""
    return tlv(TAG_BIT_STRING, b"\x00" + value)


def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER from its dotted form, e.g. ``"2.5.29.20"``."""
    arcs = [int(arc) for arc in dotted.split(".")]
    first = arcs[0] * 40 + arcs[1]  # X.690 §8.19.4: the first two arcs share one subidentifier
    return tlv(TAG_OID, b"".join(_base128(arc) for arc in [first, *arcs[2:]]))


def _base128(value: int) -> bytes:
    """``value`` in base 128, most significant group first, bit 8 set on all but the last."""
    septets = [value & 0x7F]
    value >>= 7
    while value:
        septets.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(septets))


def time(value: dt.datetime) -> bytes:
    """An RFC 5280 Time: UTCTime for 1950-2049, GeneralizedTime otherwise, in whole seconds.

    ``value`` must be timezone-aware; it is converted to UTC and its fraction of a second is
    dropped (RFC 5280 §4.1.2.5 forbids fractional seconds).
    """
    if value.tzinfo is None:
        raise ValueError("DER times need a timezone-aware datetime.")
    utc = value.astimezone(dt.UTC)
    fields = (utc.month, utc.day, utc.hour, utc.minute, utc.second)
    if utc.year in _UTC_TIME_YEARS:
        return tlv(TAG_UTC_TIME, b"%02d%02d%02d%02d%02d%02dZ" % (utc.year % 100, *fields))
    return tlv(TAG_GENERALIZED_TIME, b"%04d%02d%02d%02d%02d%02dZ" % (utc.year, *fields))


def context(number: int, contents: bytes, *, constructed: bool = True) -> bytes:
    """A context-specific ``[number]`` tag (0-30) around ``contents``.

    For an EXPLICIT tag pass the inner value's full encoding; for an IMPLICIT tag pass only
    its contents, with ``constructed`` matching the underlying type.
    """
    if not 0 <= number <= 30:
        raise ValueError("Only low tag numbers (0-30) are supported.")
    return tlv(_CONTEXT | (_CONSTRUCTED if constructed else 0) | number, contents)


def read_tlv(data: bytes, offset: int = 0) -> tuple[int, bytes, int]:
    """The value starting at ``offset``: (tag, contents, offset after it).

    ValueError on truncated input, high tag numbers or non-minimal long lengths.
    """
    if offset + 2 > len(data):
        raise ValueError("DER value truncated before its length.")
    tag, first = data[offset], data[offset + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("High tag numbers are not supported.")
    start = offset + 2
    size = first
    if first & 0x80:
        count = first & 0x7F
        octets = data[start : start + count]
        minimal = count > 0 and len(octets) == count and octets[0] != 0
        if not minimal or (count == 1 and octets[0] < 0x80):
            raise ValueError("DER length is truncated or not in minimal long form.")
        size = int.from_bytes(octets, "big")
        start += count
    end = start + size
    if end > len(data):
        raise ValueError("DER value truncated before its end.")
    return tag, data[start:end], end


def pem(der: bytes, label: str = "CERTIFICATE") -> str:
    """``der`` as RFC 7468 text: ``-----BEGIN label-----``, the base64 in lines of 64
    characters, ``-----END label-----`` and a final newline, as OpenSSL writes it."""
    text = base64.b64encode(der).decode("ascii")
    lines = [text[i : i + _PEM_LINE] for i in range(0, len(text), _PEM_LINE)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""])
