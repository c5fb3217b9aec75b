"""OCSP (RFC 6960): parse a request, answer it, and make the delegated responder certificate.

The status comes from the caller, who reads the revocation index by (issuer, serial); nothing
here scans a CRL or loads the certificate asked about. Answers echo the request's CertID
(``add_response_by_hash``), so a client asking with SHA-256 CertIDs gets SHA-256 back.

Responses are signed by a delegated responder (§4.2.2.2): a certificate issued by the CA itself
with extendedKeyUsage id-kp-OCSPSigning, so the CA key signs only certificates and CRLs. The
responder certificate carries id-pkix-ocsp-nocheck: clients do not check its revocation status,
which is why it must be short-lived (§4.2.2.2.1) and rotated early (:func:`needs_rotation`).

Nonces (RFC 8954): a request's nonce of 1-32 octets is echoed; any other length is a malformed
request. Requests this responder cannot read get ``malformedRequest``; requests about another
issuer get ``unauthorized`` (§2.3).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from domain.model.errors import ValidationError
from domain.model.values import RevocationReason
from domain.pki import der
from domain.pki.signing import IssuerKey, SoftwareKey, sign_certificate, signature_hash

MAX_NONCE_OCTETS = 32  # RFC 8954 §2.1
_RESPONDER_SUFFIX = " OCSP Responder"
_MAX_COMMON_NAME = 64  # RFC 5280 ub-common-name
_DIGITAL_SIGNATURE_ONLY = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


class MalformedOCSPRequest(ValidationError):  # noqa: N818 - named after RFC 6960's status
    """Raised when an OCSP request cannot be parsed; answer with ``malformedRequest``."""


@dataclass(frozen=True)
class OCSPQuery:
    """What an OCSP request asks: one CertID (RFC 6960 §4.1.1) and an optional nonce."""

    serial_number: int
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    hash_algorithm: hashes.HashAlgorithm
    nonce: bytes | None


@dataclass(frozen=True)
class Good:
    """This CA issued the certificate and has not revoked it."""


@dataclass(frozen=True)
class Revoked:
    """The certificate was revoked at ``revoked_at`` for ``reason``."""

    revoked_at: dt.datetime
    reason: RevocationReason | None


@dataclass(frozen=True)
class Unknown:
    """The responder knows no certificate with this serial number from this issuer."""


CertStatusAnswer = Good | Revoked | Unknown
_CERT_STATUS: dict[type[CertStatusAnswer], ocsp.OCSPCertStatus] = {
    Good: ocsp.OCSPCertStatus.GOOD,
    Revoked: ocsp.OCSPCertStatus.REVOKED,
    Unknown: ocsp.OCSPCertStatus.UNKNOWN,
}


def parse_request(request_der: bytes) -> OCSPQuery:
    """The single CertID and nonce of a DER OCSPRequest; MalformedOCSPRequest otherwise."""
    try:
        request = ocsp.load_der_ocsp_request(request_der)
        query = OCSPQuery(
            serial_number=request.serial_number,
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            hash_algorithm=request.hash_algorithm,
            nonce=_nonce(request.extensions),
        )
    except (ValueError, NotImplementedError, UnsupportedAlgorithm) as error:
        raise MalformedOCSPRequest(f"The OCSP request cannot be read: {error}") from None
    if query.nonce is not None and not 1 <= len(query.nonce) <= MAX_NONCE_OCTETS:
        raise MalformedOCSPRequest("An OCSP nonce must be 1 to 32 octets long (RFC 8954).")
    return query


def asks_about(query: OCSPQuery, issuer: x509.Certificate) -> bool:
    """True when the query's CertID names ``issuer`` (its name hash and key hash match)."""
    name = issuer.subject.public_bytes()
    key = _subject_public_key(issuer.public_key())
    return query.issuer_name_hash == _digest(query.hash_algorithm, name) and (
        query.issuer_key_hash == _digest(query.hash_algorithm, key)
    )


def respond(
    query: OCSPQuery,
    status: CertStatusAnswer,
    issuer: x509.Certificate,
    responder_cert: x509.Certificate,
    responder_key: SoftwareKey,
    this_update: dt.datetime,
    next_update: dt.datetime,
) -> bytes:
    """A signed, successful BasicOCSPResponse (DER) for ``query`` with ``status``.

    The responder is identified by key hash and its certificate is included; the nonce, if
    any, is echoed. A query about an issuer other than ``issuer`` gets ``unauthorized``.
    ValueError when ``next_update`` outlives the responder certificate: rotate it first.
    """
    if not asks_about(query, issuer):
        return error_response(ocsp.OCSPResponseStatus.UNAUTHORIZED)
    if next_update > responder_cert.not_valid_after_utc:
        raise ValueError("The response would outlive the responder certificate; rotate it.")
    revoked_at, reason = _revocation(status)
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response_by_hash(
            issuer_name_hash=query.issuer_name_hash,
            issuer_key_hash=query.issuer_key_hash,
            serial_number=query.serial_number,
            algorithm=query.hash_algorithm,
            cert_status=_CERT_STATUS[type(status)],
            this_update=this_update,
            next_update=next_update,
            revocation_time=revoked_at,
            revocation_reason=reason,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, responder_cert)
        .certificates([responder_cert])
    )
    if query.nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(query.nonce), critical=False)
    response = builder.sign(responder_key, signature_hash(responder_key))
    return response.public_bytes(Encoding.DER)


def error_response(status: ocsp.OCSPResponseStatus) -> bytes:
    """An unsigned OCSPResponse carrying only the error ``status`` (not SUCCESSFUL)."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)


def build_responder_certificate(
    issuer: x509.Certificate,
    issuer_key: IssuerKey,
    responder_public_key: CertificatePublicKeyTypes,
    not_before: dt.datetime,
    not_after: dt.datetime,
    *,
    ca_issuers_url: str | None = None,
) -> x509.Certificate:
    """A delegated OCSP responder certificate issued by ``issuer`` (RFC 6960 §4.2.2.2).

    Subject: the issuer's name with " OCSP Responder" after its common name. Extensions:
    BasicConstraints CA:FALSE and KeyUsage digitalSignature (both critical), EKU
    id-kp-OCSPSigning, id-pkix-ocsp-nocheck, SKI, AKI, and AIA caIssuers when given.
    ValueError when it would outlive the issuer's certificate.
    """
    if not_after > issuer.not_valid_after_utc:
        raise ValueError("A responder certificate must not outlive its issuer's certificate.")
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(_responder_name(issuer.subject))
        .issuer_name(issuer.subject)
        .public_key(responder_public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_DIGITAL_SIGNATURE_ONLY, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
        .add_extension(x509.OCSPNoCheck(), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(responder_public_key), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
            critical=False,
        )
    )
    if ca_issuers_url is not None:
        builder = builder.add_extension(_ca_issuers(ca_issuers_url), critical=False)
    return sign_certificate(builder, issuer_key)


def needs_rotation(cert: x509.Certificate, now: dt.datetime, margin: dt.timedelta) -> bool:
    """True once less than a third of the responder's lifetime, or less than ``margin``, is left.

    Choose ``margin`` at least the responses' validity (nextUpdate - thisUpdate) so that no
    response outlives its signer; a third of the lifetime leaves room for failed attempts.
    """
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - now < max(margin, lifetime / 3)


def _nonce(extensions: x509.Extensions) -> bytes | None:
    try:
        return extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None


def _revocation(status: CertStatusAnswer) -> tuple[dt.datetime | None, x509.ReasonFlags | None]:
    """revocationTime and revocationReason; an unspecified reason is left out, as in CRLs."""
    if not isinstance(status, Revoked):
        return None, None
    if status.reason is None or status.reason is RevocationReason.UNSPECIFIED:
        return status.revoked_at, None
    return status.revoked_at, x509.ReasonFlags[status.reason.value]


def _subject_public_key(public_key: CertificatePublicKeyTypes) -> bytes:
    """The subjectPublicKey BIT STRING's value bits, which CertID's issuerKeyHash covers."""
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    _, fields, _ = der.read_tlv(spki)
    _, _, after_algorithm = der.read_tlv(fields)
    _, bits, _ = der.read_tlv(fields, after_algorithm)
    return bits[1:]


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()


def _responder_name(issuer_name: x509.Name) -> x509.Name:
    """The issuer's name with its common name suffixed, cut to fit 64 characters."""
    room = _MAX_COMMON_NAME - len(_RESPONDER_SUFFIX)
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{attribute.value[:room]}{_RESPONDER_SUFFIX}")
            if attribute.oid == NameOID.COMMON_NAME and isinstance(attribute.value, str)
            else attribute
            for attribute in issuer_name
        ]
    )


def _ca_issuers(url: str) -> x509.AuthorityInformationAccess:
    location = x509.UniformResourceIdentifier(url)
    return x509.AuthorityInformationAccess(
        [x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS, location)]
    )
