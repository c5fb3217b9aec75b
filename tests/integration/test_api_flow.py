"""The HTTP API end to end through the reference product's initial configuration."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from cryptography import x509

from domain.model.tokens import Role
from tests.api_client import ApiClient
from tests.polling import until

SUBJECT = {"common_name": "API Root CA", "organization": "Example Corp", "country": "DE"}


def _root(api: ApiClient, quota: int = 10) -> str:
    created = api.call(
        "POST",
        "/api/v1/cas",
        json={
            "kind": "root",
            "subject": SUBJECT,
            "key_algorithm": "EC_P256",
            "validity_years": 20,
            "service_days": 3650,
            "included_certificates": quota,
        },
    )
    assert created.status_code == 201, created.get_json()
    root_id: str = created.get_json()["id"]
    assert api.call("POST", f"/api/v1/cas/{root_id}/enable").status_code == 200
    return root_id


def _intermediate(api: ApiClient, root_id: str, remaining: int = 5) -> str:
    created = api.call(
        "POST",
        "/api/v1/cas",
        json={
            "kind": "intermediate",
            "parent_id": root_id,
            "subject": {"common_name": "API Issuing CA"},
            "validity_years": 5,
            "service_days": 365,
        },
    )
    ca_id: str = created.get_json()["id"]
    api.call("POST", f"/api/v1/cas/{ca_id}/enable")
    assigned = api.call(
        "POST",
        f"/api/v1/cas/{root_id}/quota/assignments",
        json={"intermediate_id": ca_id, "remaining": remaining},
    )
    assert assigned.status_code == 201, assigned.get_json()
    return ca_id


def _issue(api: ApiClient, ca_id: str, **extra: Any) -> dict[str, Any]:
    body = {
        "type": "server",
        "common_name": "www.example.com",
        "validity_days": 90,
        "sans": [{"type": "dns", "value": "www.example.com"}],
        "key_algorithm": "EC_P256",
    }
    body.update(extra)
    response = api.call("POST", f"/api/v1/cas/{ca_id}/certificates", role=Role.OPERATOR, json=body)
    assert response.status_code == 201, response.get_json()
    issued: dict[str, Any] = response.get_json()
    return issued


def test_a_new_root_is_pending_with_its_included_quota(api: ApiClient) -> None:
    created = api.call(
        "POST",
        "/api/v1/cas",
        json={"kind": "root", "subject": SUBJECT, "included_certificates": 10},
    )
    body = created.get_json()
    assert created.status_code == 201
    assert (body["status"], body["quota"]) == (
        "pending",
        {"total": 10, "assigned": 0, "available": 10},
    )
    assert created.headers["X-Log-Position"].isdigit()


def test_quota_moves_from_the_root_to_the_intermediate(api: ApiClient) -> None:
    root_id = _root(api, quota=10)
    purchased = api.call("POST", f"/api/v1/cas/{root_id}/quota/purchases", json={"count": 5})
    assert purchased.get_json()["quota"]["total"] == 15
    ca_id = _intermediate(api, root_id, remaining=4)
    assert api.call("GET", f"/api/v1/cas/{root_id}").get_json()["quota"] == {
        "total": 15,
        "assigned": 4,
        "available": 11,
    }
    assert api.call("GET", f"/api/v1/cas/{ca_id}").get_json()["quota"] == {
        "remaining": 4,
        "issued": 0,
    }


def test_issue_download_revoke_delete(api: ApiClient) -> None:
    ca_id = _intermediate(api, _root(api))
    issued = _issue(api, ca_id, name="Shop", subject={"organization": "Shop GmbH"})
    assert issued["name"] == "Shop"
    leaf = x509.load_pem_x509_certificate(issued["certificate_pem"].encode())
    assert format(leaf.serial_number, "x") == issued["serial_number"]
    assert issued["chain_pem"].count("BEGIN CERTIFICATE") == 2
    cert_id = issued["id"]
    fetched = api.call("GET", f"/api/v1/certificates/{cert_id}", role=Role.AUDITOR)
    assert fetched.get_json()["status"] == "issued"
    download = api.call(
        "POST",
        f"/api/v1/certificates/{cert_id}/download",
        role=Role.OPERATOR,
        json={"format": "pem"},
    )
    assert download.status_code == 200
    assert "attachment" in download.headers["Content-Disposition"]
    revoked = api.call(
        "POST",
        f"/api/v1/certificates/{cert_id}/revoke",
        role=Role.OPERATOR,
        json={"reason": "key_compromise"},
    )
    assert revoked.get_json()["revocation_reason"] == "key_compromise"
    deleted = api.call("DELETE", f"/api/v1/certificates/{cert_id}", role=Role.OPERATOR)
    assert deleted.status_code == 204
    assert "Content-Type" not in deleted.headers  # no body, no type
    assert deleted.data == b""
    assert api.call("GET", f"/api/v1/certificates/{cert_id}").status_code == 404


def test_an_idempotency_key_returns_the_same_certificate(api: ApiClient) -> None:
    ca_id = _intermediate(api, _root(api))
    headers = {"Idempotency-Key": "deploy-42"}
    body = {
        "type": "client",
        "common_name": "bot",
        "validity_days": 10,
        "sans": [{"type": "email", "value": "bot@example.com"}],
    }
    path = f"/api/v1/cas/{ca_id}/certificates"
    first = api.call("POST", path, role=Role.OPERATOR, json=body, headers=headers)
    again = api.call("POST", path, role=Role.OPERATOR, json=body, headers=headers)
    assert first.get_json()["id"] == again.get_json()["id"]
    changed = api.call(
        "POST", path, role=Role.OPERATOR, json={**body, "validity_days": 11}, headers=headers
    )
    assert changed.status_code == 409
    assert changed.get_json()["field"] == "Idempotency-Key"
    assert api.call("GET", f"/api/v1/cas/{ca_id}").get_json()["quota"]["remaining"] == 4


def test_ca_certificates_are_public_at_the_aia_url(api: ApiClient) -> None:
    root_id = _root(api)
    der = api.call("GET", f"/ca/{root_id}.crt", role=None)
    assert der.mimetype == "application/pkix-cert"
    certificate = x509.load_der_x509_certificate(der.data)
    assert certificate.subject.rfc4514_string() == "CN=API Root CA,O=Example Corp,C=DE"
    pem = api.call("GET", f"/ca/{root_id}.pem", role=None)
    assert pem.data.startswith(b"-----BEGIN CERTIFICATE-----")


def test_every_response_carries_a_request_id_and_security_headers(api: ApiClient) -> None:
    response = api.call("GET", "/healthz", role=None, headers={"X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    generated = api.call("GET", "/healthz", role=None)
    assert len(generated.headers["X-Request-Id"]) == 36


def test_events_record_the_token_and_the_request(api: ApiClient) -> None:
    root_id = _root(api)
    api.call("POST", f"/api/v1/cas/{root_id}/disable", headers={"X-Request-Id": "req-77"})
    service = api.app.extensions["pca"].service
    last = list(service.events.get(UUID(root_id)))[-1]
    assert (last.actor, last.request_id) == ("test-admin (admin)", "req-77")


def test_a_client_that_issues_then_lists_sees_its_certificate(api: ApiClient) -> None:
    ca_id = _intermediate(api, _root(api))
    path = f"/api/v1/cas/{ca_id}/certificates"
    response = api.call(
        "POST",
        path,
        role=Role.OPERATOR,
        json={"type": "server", "common_name": "fresh.example.com", "validity_days": 30},
    )
    position = response.headers["X-Log-Position"]
    listed = api.call(
        "GET", path, role=Role.AUDITOR, headers={"X-Wait-For-Position": position}
    ).get_json()
    assert [item["common_name"] for item in listed["items"]] == ["fresh.example.com"]
    assert listed["items"][0]["requested_by"] == "test-operator (operator)"


def test_certificate_lists_filter_and_page(api: ApiClient) -> None:
    ca_id = _intermediate(api, _root(api, quota=10), remaining=5)
    names = [f"host{i}.example.com" for i in range(5)]
    last = ""
    for name in names:
        response = api.call(
            "POST",
            f"/api/v1/cas/{ca_id}/certificates",
            role=Role.OPERATOR,
            json={"type": "server", "common_name": name, "validity_days": 30},
        )
        last = response.headers["X-Log-Position"]
    first_id = api.call(
        "GET", f"/api/v1/cas/{ca_id}/certificates?q=host0", headers={"X-Wait-For-Position": last}
    ).get_json()["items"][0]["id"]
    revoked = api.call(
        "POST",
        f"/api/v1/certificates/{first_id}/revoke",
        role=Role.OPERATOR,
        json={"reason": "superseded"},
    )
    wait = {"X-Wait-For-Position": revoked.headers["X-Log-Position"]}
    page = api.call("GET", f"/api/v1/cas/{ca_id}/certificates?limit=2", headers=wait).get_json()
    assert [item["common_name"] for item in page["items"]] == names[:2:-1][:2]
    rest = api.call(
        "GET", f"/api/v1/cas/{ca_id}/certificates?limit=10&cursor=" + page["next_cursor"]
    ).get_json()
    assert len(rest["items"]) == 3
    assert rest["next_cursor"] is None
    only_revoked = api.call("GET", f"/api/v1/cas/{ca_id}/certificates?status=revoked").get_json()
    assert [item["id"] for item in only_revoked["items"]] == [first_id]
    bad = api.call("GET", f"/api/v1/cas/{ca_id}/certificates?limit=0")
    assert (bad.status_code, bad.get_json()["field"]) == (422, "limit")


def test_the_ca_list_shows_quota_and_counts(api: ApiClient) -> None:
    root_id = _root(api, quota=10)
    ca_id = _intermediate(api, root_id, remaining=3)
    _issue(api, ca_id)
    head = str(api.app.extensions["pca"].service.recorder.max_notification_id())
    listed = api.call(
        "GET", "/api/v1/cas", role=Role.AUDITOR, headers={"X-Wait-For-Position": head}
    ).get_json()["items"]
    by_id = {item["id"]: item for item in listed}
    assert by_id[root_id]["quota"] == {"total": 10, "assigned": 3, "available": 7}
    assert by_id[ca_id]["quota"] == {"remaining": 2, "issued": 1}
    assert by_id[ca_id]["certificates"]["issued"] == 1
    assert by_id[ca_id]["certificate_pem"].startswith("-----BEGIN CERTIFICATE-----")


def test_metrics_count_requests_and_certificates(api: ApiClient) -> None:
    ca_id = _intermediate(api, _root(api))
    issued = api.call(
        "POST",
        f"/api/v1/cas/{ca_id}/certificates",
        role=Role.OPERATOR,
        json={"type": "server", "common_name": "m.example.com", "validity_days": 30},
    )
    api.call(
        "GET", "/api/v1/cas", headers={"X-Wait-For-Position": issued.headers["X-Log-Position"]}
    )
    text = api.call("GET", "/metrics", role=Role.AUDITOR).get_data(as_text=True)
    assert "pca_certificates_issued 1.0" in text
    assert 'route="/api/v1/cas/<uuid:ca_id>/certificates"' in text
    settled(api, ca_id)  # the lag reaches 0 once the CRL publisher's events are projected
    assert api.call("GET", "/metrics", role=None).status_code == 401


def settled(api: ApiClient, ca_id: str, timeout: float = 30.0) -> None:
    """Wait until the CRL publisher has published ``ca_id``'s CRLs and the read models hold
    every event of the log, the publisher's too (``pca_projection_lag_events`` 0): then
    the deployment's background writers are idle. AssertionError after ``timeout``."""

    def idle() -> bool:
        published = api.call("GET", f"/crl/{ca_id}-delta.crl", role=None).status_code == 200
        return published and _projection_lag(api) == 0

    if not until(idle, timeout, every=0.02):
        raise AssertionError(f"no CRL of {ca_id}, or the read models lag: {_projection_lag(api)}")


def _projection_lag(api: ApiClient) -> float:
    text = api.call("GET", "/metrics", role=Role.AUDITOR).get_data(as_text=True)
    found = re.search(r"^pca_projection_lag_events (\S+)$", text, re.MULTILINE)
    assert found is not None, "no pca_projection_lag_events in /metrics"
    return float(found[1])


def test_a_retried_ca_creation_or_purchase_with_its_key_acts_once(api: ApiClient) -> None:
    """A client that lost the answer (a timeout, a 503) retries with the same key."""
    body = {"kind": "root", "subject": SUBJECT, "included_certificates": 10}
    key = {"Idempotency-Key": "root-2026"}
    first = api.call("POST", "/api/v1/cas", json=body, headers=key)
    again = api.call("POST", "/api/v1/cas", json=body, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.get_json()["id"] == again.get_json()["id"]
    other = api.call("POST", "/api/v1/cas", json={**body, "included_certificates": 5}, headers=key)
    assert (other.status_code, other.get_json()["field"]) == (409, "Idempotency-Key")
    root_id = first.get_json()["id"]
    created = api.call("GET", "/api/v1/events?type=CACreated", role=Role.AUDITOR).get_json()
    assert [event["aggregate_id"] for event in created["items"]] == [root_id]
    api.call("POST", f"/api/v1/cas/{root_id}/enable")

    purchase = f"/api/v1/cas/{root_id}/quota/purchases"
    bought = [
        api.call("POST", purchase, json={"count": 100}, headers={"Idempotency-Key": "po-17"})
        for _ in range(2)
    ]
    assert [response.get_json()["quota"]["total"] for response in bought] == [110, 110]
    without_key = api.call("POST", purchase, json={"count": 100})
    assert without_key.get_json()["quota"]["total"] == 210


def test_a_non_ascii_name_is_downloaded_under_rfc_6266_filename_star(api: ApiClient) -> None:
    ca_id = _intermediate(api, _root(api))
    issued = _issue(api, ca_id, name="Bäckerei Müller")
    download = api.call(
        "POST",
        f"/api/v1/certificates/{issued['id']}/download",
        role=Role.OPERATOR,
        json={"format": "pem"},
    )
    disposition = download.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="B_ckerei_M_ller.pem"'), disposition
    assert "filename*=UTF-8''B%C3%A4ckerei%20M%C3%BCller.pem" in disposition
    plain = _issue(api, ca_id, name="shop")
    answer = api.call(
        "POST",
        f"/api/v1/certificates/{plain['id']}/download",
        role=Role.OPERATOR,
        json={"format": "pem"},
    )
    assert answer.headers["Content-Disposition"] == 'attachment; filename="shop.pem"'
