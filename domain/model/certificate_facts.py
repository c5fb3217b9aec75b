"""The one reader of a certificate's DER: what the rules and the read sides take from it.

It sits in the model because a CA's rules need its certificate's validity window; the PKI
ring builds certificates and imports this reader rather than parsing again.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509

_Extension = TypeVar("_Extension", bound=x509.ExtensionType)


@functools.lru_cache(maxsize=256)
def load_certificate(der: bytes) -> x509.Certificate:
    """A parsed certificate, cached because CA certificates are read on every issuance."""
    return x509.load_der_x509_certificate(der)


@dataclass(frozen=True)
class CertificateFacts:
    """What readers of a CA's certificate take from it: the serial number in lower-case
    hex (as events carry serials) and the validity window."""

    serial_number: str
    not_before: dt.datetime
    not_after: dt.datetime


def certificate_facts(der: bytes) -> CertificateFacts:
    """The serial number and validity of the certificate ``der`` (the aggregate, the read
    models, point-in-time state and reports all read a CA's certificate through this)."""
    certificate = load_certificate(der)
    return CertificateFacts(
        format(certificate.serial_number, "x"),
        certificate.not_valid_before_utc,
        certificate.not_valid_after_utc,
    )


def subject_key_identifier(der: bytes) -> bytes | None:
    """The certificate's subjectKeyIdentifier, if it carries one."""
    found = _extension(der, x509.SubjectKeyIdentifier)
    return None if found is None else found.digest


def authority_key_identifier(der: bytes) -> bytes | None:
    """The keyIdentifier of the certificate's authorityKeyIdentifier: which key signed it."""
    found = _extension(der, x509.AuthorityKeyIdentifier)
    return None if found is None else found.key_identifier


def _extension(der: bytes, kind: type[_Extension]) -> _Extension | None:
    try:
        return load_certificate(der).extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
