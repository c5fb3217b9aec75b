"""Issuing end-entity certificates: validity, SANs, subjects, CSRs and the leaf profile."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from domain.adapters.settings import Settings, open_service
from domain.application.commands import CertificateRequest
from domain.application.service import PrivateCA
from domain.model.errors import CSRError, LifetimeError, SANError, ValidationError
from domain.model.values import SAN, CertificateType, KeyAlgorithm, SANType, Subject
from tests.builders import (
    OPERATOR,
    client_request,
    enabled_intermediate,
    enabled_root,
    issue,
    server_request,
)
from tests.conftest import SettableClock


def _leaf(service: PrivateCA, request: CertificateRequest) -> x509.Certificate:
    intermediate_id = enabled_intermediate(service, enabled_root(service))
    issued = service.issue_certificate(OPERATOR, intermediate_id, request)
    return x509.load_der_x509_certificate(issued.certificate.certificate_der)


def _csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cn: str = "csr.example") -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()


def test_a_server_certificate_carries_the_profile_of_rfc_5280(service: PrivateCA) -> None:
    leaf = _leaf(service, server_request("api.example.com"))
    extensions = leaf.extensions
    constraints = extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert not constraints.value.ca
    usage = extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_encipherment  # EC key
    eku = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    sans = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["api.example.com"]
    extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert leaf.serial_number.bit_length() > 128


def test_the_crl_and_issuer_urls_point_at_this_service(service: PrivateCA) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service))
    issued = issue(service, intermediate_id)
    leaf = x509.load_der_x509_certificate(issued.certificate.certificate_der)
    cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name is not None
    assert cdp[0].full_name[0].value == f"http://pca.test:8080/crl/{intermediate_id}.crl"
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    urls = {d.access_method.dotted_string: d.access_location.value for d in aia}
    assert f"http://pca.test:8080/ca/{intermediate_id}.crt" in urls.values()
    assert f"http://pca.test:8080/ocsp/{intermediate_id}" in urls.values()


def test_certificates_name_a_dedicated_ocsp_responder_when_one_is_set(
    settings: Settings, clock: SettableClock
) -> None:
    service = open_service(
        dataclasses.replace(settings, ocsp_url="http://ocsp.pca.test/"), clock=clock
    )
    try:
        intermediate_id = enabled_intermediate(service, enabled_root(service))
        leaf = x509.load_der_x509_certificate(
            issue(service, intermediate_id).certificate.certificate_der
        )
    finally:
        service.close()
        service.keystore.close()
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert sorted(d.access_location.value for d in aia) == [
        f"http://ocsp.pca.test/ocsp/{intermediate_id}",
        f"http://pca.test:8080/ca/{intermediate_id}.crt",
    ]


def test_the_crl_address_can_be_left_out(service: PrivateCA) -> None:
    leaf = _leaf(service, dataclasses.replace(server_request(), include_crl=False))
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints)


@pytest.mark.slow
def test_an_rsa_server_key_may_also_encipher(service: PrivateCA) -> None:
    leaf = _leaf(service, server_request(key_algorithm=KeyAlgorithm.RSA_2048))
    assert isinstance(leaf.public_key(), rsa.RSAPublicKey)
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_a_client_certificate_has_client_auth_and_email(service: PrivateCA) -> None:
    leaf = _leaf(service, client_request("Dev@Example.COM"))
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.RFC822Name) == ["Dev@example.com"]


def test_the_subject_carries_the_optional_fields(service: PrivateCA) -> None:
    subject = Subject("www.example.com", "Example Corp", "Web", "Berlin", "Berlin", "de")
    leaf = _leaf(service, dataclasses.replace(server_request(), subject=subject))
    assert leaf.subject.rfc4514_string() == (
        "CN=www.example.com,OU=Web,O=Example Corp,L=Berlin,ST=Berlin,C=DE"
    )


def test_a_server_certificate_without_sans_uses_its_common_name(service: PrivateCA) -> None:
    leaf = _leaf(service, dataclasses.replace(server_request("10.0.0.7"), sans=()))
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]


def test_a_server_certificate_needs_a_host_name_somewhere(service: PrivateCA) -> None:
    request = dataclasses.replace(server_request(), subject=Subject("Web Team"), sans=())
    with pytest.raises(SANError, match="add one to sans"):
        _leaf(service, request)


def test_client_certificates_refuse_dns_names(service: PrivateCA) -> None:
    request = dataclasses.replace(client_request(), sans=(SAN(SANType.DNS, "a.example"),))
    with pytest.raises(SANError):
        _leaf(service, request)


def test_more_than_ten_sans_are_refused(service: PrivateCA) -> None:
    sans = tuple(SAN(SANType.DNS, f"h{i}.example.com") for i in range(11))
    with pytest.raises(SANError) as caught:
        _leaf(service, dataclasses.replace(server_request(), sans=sans))
    assert caught.value.field == "sans"


def test_the_display_name_defaults_to_the_common_name(service: PrivateCA) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service))
    unnamed = issue(service, intermediate_id).certificate
    named = service.issue_certificate(
        OPERATOR, intermediate_id, dataclasses.replace(server_request(), name="Shop frontend")
    ).certificate
    assert (unnamed.name, named.name) == ("www.example.com", "Shop frontend")


def test_a_short_service_period_caps_validity_at_its_end(service: PrivateCA) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service), service_days=31)
    issue(service, intermediate_id, server_request(validity_days=31))
    with pytest.raises(LifetimeError, match="at most 31") as caught:
        issue(service, intermediate_id, server_request(validity_days=32))
    assert caught.value.field == "validity_days"


def test_a_long_service_period_allows_long_certificates_within_the_ca(
    service: PrivateCA,
) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service), service_days=365)
    issued = issue(service, intermediate_id, server_request(validity_days=3000))
    assert issued.certificate.not_after - issued.certificate.not_before > dt.timedelta(2999)
    with pytest.raises(LifetimeError, match="the issuing CA's certificate"):
        issue(service, intermediate_id, server_request(validity_days=5000))


@pytest.mark.parametrize("days", [0, 36526])
def test_validity_outside_one_day_to_a_hundred_years_is_refused(
    service: PrivateCA, days: int
) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service))
    with pytest.raises(ValidationError) as caught:
        issue(service, intermediate_id, server_request(validity_days=days))
    assert caught.value.field == "validity_days"


def test_a_leaf_never_starts_before_its_ca(service: PrivateCA, clock: SettableClock) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service))
    issued = issue(service, intermediate_id)
    ca = service.get_ca(intermediate_id)
    assert ca.not_before is not None
    assert issued.certificate.not_before >= ca.not_before


def test_a_csr_keeps_the_requesters_key(service: PrivateCA) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    request = dataclasses.replace(server_request(), key_algorithm=None, csr_pem=_csr(key))
    intermediate_id = enabled_intermediate(service, enabled_root(service))
    issued = service.issue_certificate(OPERATOR, intermediate_id, request).certificate
    leaf = x509.load_der_x509_certificate(issued.certificate_der)
    assert leaf.public_key() == key.public_key()
    assert issued.key_id is None
    assert issued.key_algorithm is KeyAlgorithm.EC_P384


def test_a_csr_with_a_weak_rsa_key_is_refused(service: PrivateCA) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - on purpose
    request = dataclasses.replace(server_request(), key_algorithm=None, csr_pem=_csr(weak))
    with pytest.raises(CSRError, match="at least 2048 bits"):
        _leaf(service, request)


def test_a_csr_with_a_broken_signature_is_refused(service: PrivateCA) -> None:
    pem = _csr(ec.generate_private_key(ec.SECP256R1()))
    der = x509.load_pem_x509_csr(pem.encode()).public_bytes(Encoding.DER)
    tampered = der[:-3] + bytes([der[-3] ^ 0x01]) + der[-2:]
    tampered_pem = x509.load_der_x509_csr(tampered).public_bytes(Encoding.PEM).decode()
    request = dataclasses.replace(server_request(), key_algorithm=None, csr_pem=tampered_pem)
    with pytest.raises(CSRError, match="signature does not verify"):
        _leaf(service, request)


def test_garbage_instead_of_a_csr_is_refused(service: PrivateCA) -> None:
    request = dataclasses.replace(server_request(), key_algorithm=None, csr_pem="hello")
    with pytest.raises(CSRError, match="not a PEM"):
        _leaf(service, request)


def test_key_algorithm_and_csr_together_are_refused(service: PrivateCA) -> None:
    csr = _csr(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValidationError, match="not both"):
        _leaf(service, dataclasses.replace(server_request(), csr_pem=csr))


def test_events_record_who_did_it_and_from_which_request(service: PrivateCA) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service))
    certificate_id = issue(service, intermediate_id).certificate.id
    events = list(service.events.get(certificate_id))
    assert [(e.actor, e.request_id) for e in events] == [("bob (operator)", "req-operator")]  # type: ignore[attr-defined]
    ca_events = list(service.events.get(intermediate_id))
    assert {type(e).__name__ for e in ca_events} >= {"CACreated", "CAEnabled", "QuotaSpent"}
    assert all(e.actor for e in ca_events)  # type: ignore[attr-defined]


def test_a_failed_issuance_stores_nothing(service: PrivateCA) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service), remaining=1)
    before = service.recorder.max_notification_id()
    with pytest.raises(SANError):
        service.issue_certificate(
            OPERATOR,
            intermediate_id,
            CertificateRequest(
                CertificateType.SERVER, Subject("x"), 30, (SAN(SANType.IP, "1.2.3"),)
            ),
        )
    assert service.recorder.max_notification_id() == before
    assert service.get_ca(intermediate_id).quota_remaining == 1
