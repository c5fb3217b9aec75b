"""OCSP answers without a nonce are kept and served again while nothing they depend on has
changed; a revocation, of the certificate or of its CA, shows in the very next answer."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from uuid import UUID

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp

from domain.adapters.settings import OCSPSettings, Settings
from domain.application.service import PrivateCA
from domain.model.values import RevocationReason
from projections.readmodels.queries import ReadModels
from projections.revocation.ocsp_responder import OCSPResponder
from tests.builders import ADMIN, OPERATOR, enabled_intermediate, enabled_root, issue
from tests.conftest import SettableClock


@pytest.fixture
def responder(service: PrivateCA, settings: Settings) -> Iterator[OCSPResponder]:
    with ReadModels.open(settings) as read_models:
        yield OCSPResponder(service, read_models, OCSPSettings(validity=dt.timedelta(hours=1)))


SHA1 = hashes.SHA1()  # noqa: S303 - what openssl and most clients send


def ocsp_request(
    service: PrivateCA,
    ca_id: UUID,
    certificate_der: bytes,
    nonce: bool,
    algorithm: hashes.HashAlgorithm = SHA1,
) -> bytes:
    """An OCSP request about ``certificate_der`` issued by ``ca_id``, with a fresh nonce if
    ``nonce``."""
    issuer_der = service.get_ca(ca_id).certificate_der
    assert issuer_der is not None
    builder = x509_ocsp.OCSPRequestBuilder().add_certificate(
        x509.load_der_x509_certificate(certificate_der),
        x509.load_der_x509_certificate(issuer_der),
        algorithm,
    )
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def _signature(answer: bytes) -> bytes:
    return x509_ocsp.load_der_ocsp_response(answer).signature


def _status(answer: bytes) -> x509_ocsp.OCSPCertStatus:
    return x509_ocsp.load_der_ocsp_response(answer).certificate_status


@pytest.mark.parametrize("unrelated_event", [False, True])
def test_an_unchanged_certificate_gets_the_kept_answer_until_it_is_revoked(
    service: PrivateCA, responder: OCSPResponder, unrelated_event: bool
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    certificate = issue(service, ca_id).certificate
    request = ocsp_request(service, ca_id, certificate.certificate_der, nonce=False)
    first = responder.answer(ca_id, request)
    if unrelated_event:  # the log's head moves; this certificate and its CA do not
        enabled_root(service)
        assert responder.answer(ca_id, request) == first  # kept again, with the new head
    assert responder.answer(ca_id, request) == first  # the same signed bytes
    assert _status(first) is x509_ocsp.OCSPCertStatus.GOOD
    service.revoke_certificate(OPERATOR, certificate.id, RevocationReason.KEY_COMPROMISE)
    assert _status(responder.answer(ca_id, request)) is x509_ocsp.OCSPCertStatus.REVOKED


def test_revoking_the_issuing_ca_shows_in_the_next_answer(
    service: PrivateCA, responder: OCSPResponder
) -> None:
    root_id = enabled_root(service)
    ca_id = enabled_intermediate(service, root_id)
    certificate = issue(service, ca_id).certificate
    request = ocsp_request(service, ca_id, certificate.certificate_der, nonce=False)
    assert _status(responder.answer(ca_id, request)) is x509_ocsp.OCSPCertStatus.GOOD
    service.revoke_ca(ADMIN, ca_id, RevocationReason.KEY_COMPROMISE)
    assert _status(responder.answer(ca_id, request)) is x509_ocsp.OCSPCertStatus.REVOKED


def test_a_kept_answer_is_signed_again_after_half_its_validity(
    service: PrivateCA, responder: OCSPResponder, clock: SettableClock
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    certificate = issue(service, ca_id).certificate
    request = ocsp_request(service, ca_id, certificate.certificate_der, nonce=False)
    first = x509_ocsp.load_der_ocsp_response(responder.answer(ca_id, request))
    clock.advance(minutes=29)
    assert responder.answer(ca_id, request) == first.public_bytes(serialization.Encoding.DER)
    clock.advance(minutes=2)
    renewed = x509_ocsp.load_der_ocsp_response(responder.answer(ca_id, request))
    assert renewed.this_update_utc == first.this_update_utc + dt.timedelta(minutes=31)


def test_a_nonce_gets_a_fresh_signature_that_echoes_it(
    service: PrivateCA, responder: OCSPResponder
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    certificate = issue(service, ca_id).certificate
    answers = [
        x509_ocsp.load_der_ocsp_response(
            responder.answer(ca_id, ocsp_request(service, ca_id, certificate.certificate_der, True))
        )
        for _ in range(2)
    ]
    nonces = [a.extensions.get_extension_for_class(x509.OCSPNonce).value for a in answers]
    assert nonces[0] != nonces[1]
    assert answers[0].signature != answers[1].signature


def test_each_way_of_asking_keeps_its_own_answer_and_every_one_follows_a_revocation(
    service: PrivateCA, responder: OCSPResponder
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    certificate = issue(service, ca_id).certificate
    requests = {
        algorithm.name: ocsp_request(service, ca_id, certificate.certificate_der, False, algorithm)
        for algorithm in (SHA1, hashes.SHA256())
    }
    for _ in range(2):  # signed, then kept
        for name, request in requests.items():
            answer = x509_ocsp.load_der_ocsp_response(responder.answer(ca_id, request))
            assert answer.hash_algorithm.name == name  # the CertID as it was asked
            assert answer.certificate_status is x509_ocsp.OCSPCertStatus.GOOD
    service.revoke_certificate(OPERATOR, certificate.id, RevocationReason.KEY_COMPROMISE)
    for request in requests.values():
        assert _status(responder.answer(ca_id, request)) is x509_ocsp.OCSPCertStatus.REVOKED


def test_the_same_request_with_a_nonce_asked_twice_is_signed_twice(
    service: PrivateCA, responder: OCSPResponder
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    certificate = issue(service, ca_id).certificate
    request = ocsp_request(service, ca_id, certificate.certificate_der, nonce=True)
    first, second = (
        x509_ocsp.load_der_ocsp_response(responder.answer(ca_id, request)) for _ in "ab"
    )
    assert first.signature != second.signature  # ECDSA signs with a fresh random each time
