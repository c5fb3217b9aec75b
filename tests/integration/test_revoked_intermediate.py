"""What a revoked intermediate means for what it issued, over HTTP: issuing and enabling
say it was revoked, its certificates list with their issuer revoked (and can be filtered
on it), and OCSP answers revoked for them, as their chain no longer validates."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp

from domain.model.tokens import Role
from tests.api_client import ApiClient
from tests.integration.test_api_flow import _intermediate, _issue, _root


def _listed(api: ApiClient, ca_id: str, query: str = "") -> list[dict[str, object]]:
    head = str(api.app.extensions["pca"].service.recorder.max_notification_id())
    response = api.call(
        "GET", f"/api/v1/cas/{ca_id}/certificates{query}", headers={"X-Wait-For-Position": head}
    )
    assert response.status_code == 200, response.get_json()
    items: list[dict[str, object]] = response.get_json()["items"]
    return items


def test_a_revoked_intermediate_and_what_it_issued(api: ApiClient) -> None:
    ca_id = _intermediate(api, _root(api))
    issued = _issue(api, ca_id)
    revoked = api.call("POST", f"/api/v1/cas/{ca_id}/revoke", json={"reason": "key_compromise"})
    assert revoked.status_code == 200, revoked.get_json()

    body = {"type": "server", "common_name": "late.example.com", "validity_days": 30}
    refused = api.call("POST", f"/api/v1/cas/{ca_id}/certificates", role=Role.OPERATOR, json=body)
    assert refused.status_code == 409
    assert "was revoked" in refused.get_json()["detail"]
    assert "enable it first" not in refused.get_json()["detail"]
    enable = api.call("POST", f"/api/v1/cas/{ca_id}/enable")
    assert enable.status_code == 409
    assert "cannot be enabled again" in enable.get_json()["detail"]

    (listed,) = _listed(api, ca_id)
    assert (listed["status"], listed["issuer_revoked"]) == ("issued", True)
    assert len(_listed(api, ca_id, "?issuer_revoked=true")) == 1
    assert _listed(api, ca_id, "?issuer_revoked=false") == []

    leaf = x509.load_pem_x509_certificate(str(issued["certificate_pem"]).encode())
    issuer = x509.load_pem_x509_certificate(str(issued["chain_pem"]).encode())
    cert_id_hash = hashes.SHA1()  # noqa: S303 - RFC 5019 CertIDs use SHA-1
    request = x509_ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, cert_id_hash).build()
    answer = api.call(
        "POST",
        f"/ocsp/{ca_id}",
        role=None,
        data=request.public_bytes(Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    parsed = x509_ocsp.load_der_ocsp_response(answer.data)
    assert parsed.response_status is x509_ocsp.OCSPResponseStatus.SUCCESSFUL
    assert parsed.certificate_status is x509_ocsp.OCSPCertStatus.REVOKED
    assert parsed.revocation_reason is x509.ReasonFlags.ca_compromise


def test_revoking_with_no_body_is_revoking_with_an_empty_one(api: ApiClient) -> None:
    ca_id = _intermediate(api, _root(api))
    revoked = api.call("POST", f"/api/v1/cas/{ca_id}/revoke")
    assert revoked.status_code == 200, revoked.get_json()
    assert revoked.get_json()["status"] == "revoked"
    issued = _issue(api, _intermediate(api, _root(api)))
    bare = api.call("POST", f"/api/v1/certificates/{issued['id']}/revoke", role=Role.OPERATOR)
    assert bare.status_code == 200, bare.get_json()
    assert api.call("POST", "/api/v1/cas", data=b"").status_code == 400  # required fields
