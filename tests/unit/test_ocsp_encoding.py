"""OCSP requests and responses (RFC 6960) and the delegated responder certificate.

Requests come from cryptography's request builder and responses are read back with
cryptography; tests/integration/test_ocsp_openssl.py does both with openssl.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from domain.model.values import KeyAlgorithm, RevocationReason, Subject
from domain.pki import ocsp
from domain.pki import x509 as certs
from domain.pki.ocsp import Good, MalformedOCSPRequest, OCSPQuery, Revoked, Unknown
from tests.pki import Pki, make_pki

# openssl checks a response's thisUpdate/nextUpdate against the real clock (-attime does not
# reach OCSP_check_validity), so this chain lives around the present.
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
THIS_UPDATE = NOW - dt.timedelta(minutes=1)
NEXT_UPDATE = NOW + dt.timedelta(hours=12)
REVOKED_AT = NOW - dt.timedelta(hours=2)


@dataclass(frozen=True)
class Responder:
    """A delegated responder certificate and its key, issued by the PKI's intermediate."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki(KeyAlgorithm.EC_P256, now=NOW)


@pytest.fixture(scope="module")
def responder(pki: Pki) -> Responder:
    return delegated_responder(pki)


def delegated_responder(pki: Pki) -> Responder:
    """A responder certificate valid around NOW, issued by the PKI's intermediate."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = ocsp.build_responder_certificate(
        pki.intermediate,
        pki.intermediate_key,
        key.public_key(),
        NOW - dt.timedelta(days=1),
        NOW + dt.timedelta(days=29),
    )
    return Responder(cert, key)


def query_for(
    pki: Pki,
    leaf: x509.Certificate,
    *,
    nonce: bytes | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
) -> OCSPQuery:
    """The parsed query of a request cryptography builds for ``leaf``."""
    builder = x509_ocsp.OCSPRequestBuilder().add_certificate(
        leaf, pki.intermediate, algorithm or hashes.SHA256()
    )
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return ocsp.parse_request(builder.build().public_bytes(Encoding.DER))


def answer(
    pki: Pki, responder: Responder, query: OCSPQuery, status: ocsp.CertStatusAnswer
) -> x509_ocsp.OCSPResponse:
    der_bytes = ocsp.respond(
        query, status, pki.intermediate, responder.cert, responder.key, THIS_UPDATE, NEXT_UPDATE
    )
    return x509_ocsp.load_der_ocsp_response(der_bytes)


# --- Requests ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "algorithm", [pytest.param(KeyAlgorithm.RSA_2048, marks=pytest.mark.slow), KeyAlgorithm.EC_P384]
)
@pytest.mark.parametrize(
    "hash_algorithm",
    [hashes.SHA1(), hashes.SHA256(), hashes.SHA512()],  # noqa: S303 - RFC 5019 CertIDs use SHA-1
)
def test_recognises_its_issuer_whatever_the_key_and_certid_hash(
    algorithm: KeyAlgorithm, hash_algorithm: hashes.HashAlgorithm, pki: Pki
) -> None:
    other = make_pki(algorithm, now=NOW)
    query = query_for(other, other.leaves[0], algorithm=hash_algorithm)
    assert ocsp.asks_about(query, other.intermediate)
    assert not ocsp.asks_about(query, pki.intermediate)
    assert not ocsp.asks_about(query, other.root)


@pytest.mark.parametrize("nonce", [b"", b"n" * 33])
def test_a_nonce_outside_1_to_32_octets_is_malformed(pki: Pki, nonce: bytes) -> None:
    with pytest.raises(MalformedOCSPRequest, match="RFC 8954"):
        query_for(pki, pki.leaves[0], nonce=nonce)


# --- Responses --------------------------------------------------------------------------------


def test_revoked_answer_carries_time_reason_and_the_echoed_nonce(
    pki: Pki, responder: Responder
) -> None:
    query = query_for(pki, pki.leaves[0], nonce=b"n" * 32)
    response = answer(
        pki, responder, query, Revoked(REVOKED_AT, RevocationReason.CESSATION_OF_OPERATION)
    )
    assert response.response_status is x509_ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status is x509_ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_time_utc == REVOKED_AT
    assert response.revocation_reason is x509.ReasonFlags.cessation_of_operation
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n" * 32
    assert (response.this_update_utc, response.next_update_utc) == (THIS_UPDATE, NEXT_UPDATE)


def test_response_echoes_the_certid_and_is_signed_by_the_responder(
    pki: Pki, responder: Responder
) -> None:
    query = query_for(pki, pki.leaves[1], algorithm=hashes.SHA384())
    response = answer(pki, responder, query, Good())
    assert response.certificate_status is x509_ocsp.OCSPCertStatus.GOOD
    assert isinstance(response.hash_algorithm, hashes.SHA384)
    assert (response.serial_number, response.issuer_key_hash, response.issuer_name_hash) == (
        query.serial_number,
        query.issuer_key_hash,
        query.issuer_name_hash,
    )
    ski = responder.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert response.responder_key_hash == ski.digest
    assert response.certificates == [responder.cert]
    signature_hash = response.signature_hash_algorithm
    assert signature_hash is not None
    responder.key.public_key().verify(
        response.signature, response.tbs_response_bytes, ec.ECDSA(signature_hash)
    )


@pytest.mark.parametrize("reason", [None, RevocationReason.UNSPECIFIED])
def test_an_unspecified_reason_is_left_out(
    pki: Pki, responder: Responder, reason: RevocationReason | None
) -> None:
    response = answer(pki, responder, query_for(pki, pki.leaves[0]), Revoked(REVOKED_AT, reason))
    assert response.certificate_status is x509_ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_reason is None


def test_unknown_serial_gets_unknown_and_no_nonce_when_none_was_asked(
    pki: Pki, responder: Responder
) -> None:
    query = query_for(pki, pki.leaves[0])
    response = answer(pki, responder, query, Unknown())
    assert response.certificate_status is x509_ocsp.OCSPCertStatus.UNKNOWN
    with pytest.raises(x509.ExtensionNotFound):
        response.extensions.get_extension_for_class(x509.OCSPNonce)


def test_a_query_about_another_issuer_is_unauthorized(pki: Pki, responder: Responder) -> None:
    other = make_pki(KeyAlgorithm.EC_P256, now=NOW)
    response = answer(pki, responder, query_for(other, other.leaves[0]), Good())
    assert response.response_status is x509_ocsp.OCSPResponseStatus.UNAUTHORIZED


def test_a_response_may_not_outlive_its_responder(pki: Pki, responder: Responder) -> None:
    late = responder.cert.not_valid_after_utc + dt.timedelta(seconds=1)
    with pytest.raises(ValueError, match="rotate"):
        ocsp.respond(
            query_for(pki, pki.leaves[0]),
            Good(),
            pki.intermediate,
            responder.cert,
            responder.key,
            THIS_UPDATE,
            late,
        )


@pytest.mark.parametrize(
    "status",
    [
        x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
        x509_ocsp.OCSPResponseStatus.INTERNAL_ERROR,
        x509_ocsp.OCSPResponseStatus.TRY_LATER,
        x509_ocsp.OCSPResponseStatus.SIG_REQUIRED,
        x509_ocsp.OCSPResponseStatus.UNAUTHORIZED,
    ],
)
def test_error_responses_carry_only_their_status(status: x509_ocsp.OCSPResponseStatus) -> None:
    der_bytes = ocsp.error_response(status)
    assert x509_ocsp.load_der_ocsp_response(der_bytes).response_status is status
    assert der_bytes == bytes((0x30, 0x03, 0x0A, 0x01, status.value))


def test_successful_is_not_an_error_status() -> None:
    with pytest.raises(ValueError, match="SUCCESSFUL"):
        ocsp.error_response(x509_ocsp.OCSPResponseStatus.SUCCESSFUL)


# --- The responder certificate ----------------------------------------------------------------


def test_responder_certificate_has_the_delegated_profile(pki: Pki, responder: Responder) -> None:
    cert = responder.cert
    cert.verify_directly_issued_by(pki.intermediate)
    extensions = cert.extensions
    eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
    assert extensions.get_extension_for_class(x509.OCSPNoCheck).value == x509.OCSPNoCheck()
    basic = extensions.get_extension_for_class(x509.BasicConstraints)
    assert (basic.critical, basic.value.ca) == (True, False)
    usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_cert_sign
    assert not usage.value.crl_sign
    issuer_ski = pki.intermediate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == issuer_ski.value.digest
    ski = extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(responder.key.public_key())
    common_name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name == "Test Issuing CA OCSP Responder"


def test_responder_certificate_can_point_at_its_issuer(pki: Pki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = ocsp.build_responder_certificate(
        pki.intermediate,
        pki.intermediate_key,
        key.public_key(),
        NOW,
        NOW + dt.timedelta(days=30),
        ca_issuers_url=pki.urls.ca_issuers,
    )
    access = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [(d.access_method, d.access_location.value) for d in access] == [
        (AuthorityInformationAccessOID.CA_ISSUERS, pki.urls.ca_issuers)
    ]


def test_responder_certificate_may_not_outlive_its_issuer(pki: Pki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(ValueError, match="outlive"):
        ocsp.build_responder_certificate(
            pki.intermediate,
            pki.intermediate_key,
            key.public_key(),
            NOW,
            pki.intermediate.not_valid_after_utc + dt.timedelta(days=1),
        )


def test_responder_name_fits_the_common_name_limit() -> None:
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    issuer = certs.build_root(issuer_key, Subject("C" * 64), NOW, NOW + dt.timedelta(days=9))
    responder_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    cert = ocsp.build_responder_certificate(
        issuer, issuer_key, responder_key, NOW, NOW + dt.timedelta(days=1)
    )
    common_name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name == "C" * 49 + " OCSP Responder"


@pytest.mark.parametrize(
    ("days_in", "margin_days", "due"),
    [(5, 1, False), (19, 1, False), (21, 1, True), (15, 16, True), (30, 0, True)],
)
def test_responder_is_rotated_with_a_third_of_its_life_or_the_margin_left(
    responder: Responder, days_in: int, margin_days: int, due: bool
) -> None:
    now = responder.cert.not_valid_before_utc + dt.timedelta(days=days_in)
    assert ocsp.needs_rotation(responder.cert, now, dt.timedelta(days=margin_days)) is due
