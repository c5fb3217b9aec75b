"""CRL and OCSP endpoints through the Flask test client: caching headers and 304, and
malformed OCSP requests answered malformedRequest."""

from __future__ import annotations

from uuid import UUID

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp

from tests.api_client import ApiClient


def test_crls_carry_caching_headers_and_answer_304(api: ApiClient) -> None:
    root = api.call(
        "POST", "/api/v1/cas", json={"kind": "root", "subject": {"common_name": "Cache Root"}}
    )
    root_id = root.get_json()["id"]
    api.call("POST", f"/api/v1/cas/{root_id}/enable")
    services = api.app.extensions["pca"]
    services.read_models.wait_for(services.service.recorder.max_notification_id(), 5)
    services.publisher.publish(UUID(root_id))
    response = api.call("GET", f"/crl/{root_id}.crl", role=None)
    assert response.mimetype == "application/pkix-crl"
    assert response.headers["Cache-Control"] == "public, no-cache"
    again = api.client.get(
        f"/crl/{root_id}.crl", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert again.status_code == 304
    pem = api.call("GET", f"/crl/{root_id}.pem", role=None)
    assert pem.data.startswith(b"-----BEGIN X509 CRL-----")
    assert x509.load_pem_x509_crl(pem.data).public_bytes(Encoding.DER) == response.data


def test_a_ca_never_enabled_has_no_crl_and_says_so(api: ApiClient) -> None:
    """409, not 503 "retry shortly": no CRL comes until the CA is enabled."""
    root = api.call(
        "POST", "/api/v1/cas", json={"kind": "root", "subject": {"common_name": "Pending Root"}}
    )
    root_id = root.get_json()["id"]
    for suffix in (".crl", "-delta.crl", ".pem"):
        response = api.call("GET", f"/crl/{root_id}{suffix}", role=None)
        assert response.status_code == 409
        assert "never been enabled" in response.get_json()["detail"]
        assert "Retry-After" not in response.headers


def test_malformed_ocsp_requests_get_malformed_request(api: ApiClient) -> None:
    root = api.call(
        "POST", "/api/v1/cas", json={"kind": "root", "subject": {"common_name": "OCSP Root"}}
    )
    response = api.call(
        "POST",
        f"/ocsp/{root.get_json()['id']}",
        role=None,
        data=b"garbage",
        headers={"Content-Type": "application/ocsp-request"},
    )
    assert response.status_code == 200
    parsed = x509_ocsp.load_der_ocsp_response(response.data)
    assert parsed.response_status is x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    bad_get = api.call("GET", f"/ocsp/{root.get_json()['id']}/%%%not-base64", role=None)
    assert x509_ocsp.load_der_ocsp_response(bad_get.data).response_status is (
        x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )
