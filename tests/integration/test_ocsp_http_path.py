"""OCSP over HTTP answered in front of Flask (api/http/ocsp_path.py) looks exactly like
what the Flask views answer, and whatever it cannot answer still reaches Flask."""

from __future__ import annotations

import base64
import sqlite3
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp as x509_ocsp
from werkzeug.test import TestResponse

from api.http.headers import SECURITY_HEADERS
from domain.model.tokens import Role
from tests.api_client import ApiClient
from tests.builders import enabled_intermediate, enabled_root, issue

OCSP_REQUEST = {"Content-Type": "application/ocsp-request"}


def _setup(api: ApiClient) -> tuple[str, bytes]:
    """An intermediate and an OCSP request (no nonce) about one of its certificates."""
    service = api.app.extensions["pca"].service
    ca_id = enabled_intermediate(service, enabled_root(service))
    leaf = issue(service, ca_id).certificate.certificate_der
    issuer = service.get_ca(ca_id).certificate_der
    request = (
        x509_ocsp.OCSPRequestBuilder()
        .add_certificate(
            x509.load_der_x509_certificate(leaf),
            x509.load_der_x509_certificate(issuer),
            hashes.SHA1(),  # noqa: S303 - what openssl and most clients send
        )
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    return str(ca_id), request


def _headers(response: TestResponse) -> dict[str, str]:
    return {name: value for name, value in response.headers if name != "X-Request-Id"}


def test_get_and_post_answer_alike_with_every_header(api: ApiClient) -> None:
    ca_id, request = _setup(api)
    post = api.call("POST", f"/ocsp/{ca_id}", None, data=request, headers=OCSP_REQUEST)
    encoded = quote(base64.b64encode(request).decode(), safe="")
    get = api.call("GET", f"/ocsp/{ca_id}/{encoded}", None)
    for response in (post, get):
        assert response.status_code == 200
        answer = x509_ocsp.load_der_ocsp_response(response.data)
        assert answer.certificate_status is x509_ocsp.OCSPCertStatus.GOOD
        assert response.headers["Content-Type"] == "application/ocsp-response"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Content-Length"] == str(len(response.data))
        assert {name: response.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS
    assert get.data == post.data  # the kept answer, whichever method asked


def test_the_answer_carries_the_callers_request_id(api: ApiClient) -> None:
    ca_id, request = _setup(api)
    headers = {**OCSP_REQUEST, "X-Request-Id": "ocsp-42"}
    answer = api.call("POST", f"/ocsp/{ca_id}", None, data=request, headers=headers)
    assert answer.headers["X-Request-Id"] == "ocsp-42"
    forged = {**OCSP_REQUEST, "X-Request-Id": "bad id <script>"}
    answer = api.call("POST", f"/ocsp/{ca_id}", None, data=request, headers=forged)
    assert answer.headers["X-Request-Id"] not in ("", "bad id <script>")


def test_flask_and_the_front_path_answer_a_malformed_request_alike(api: ApiClient) -> None:
    ca_id, _ = _setup(api)
    front = api.call("GET", f"/ocsp/{ca_id}/not-base64", None)
    # A path that is not ASCII is left to Flask, which answers the same way.
    flask = api.call("GET", f"/ocsp/{ca_id}/n%C3%A9", None)
    for response in (front, flask):
        status = x509_ocsp.load_der_ocsp_response(response.data).response_status
        assert status is x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert _headers(front) == _headers(flask)


def test_a_storage_outage_gets_flasks_503_problem(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_id, request = _setup(api)

    def locked(*_: object) -> object:
        error = sqlite3.OperationalError("database is locked")
        error.sqlite_errorcode = sqlite3.SQLITE_BUSY
        raise error

    monkeypatch.setattr(api.app.extensions["pca"].service, "versions", locked)
    answer = api.call("POST", f"/ocsp/{ca_id}", None, data=request, headers=OCSP_REQUEST)
    assert answer.status_code == 503
    assert answer.mimetype == "application/problem+json"
    assert "Retry-After" in answer.headers


def test_ocsp_requests_are_counted_in_the_metrics(api: ApiClient) -> None:
    ca_id, request = _setup(api)
    for _ in range(3):
        api.call("POST", f"/ocsp/{ca_id}", None, data=request, headers=OCSP_REQUEST)
    metrics = api.call("GET", "/metrics", Role.AUDITOR).get_data(as_text=True)
    line = 'pca_http_requests_total{method="POST",route="/ocsp/<uuid:ca_id>",status="200"}'
    assert any(row.startswith(line) and float(row.split()[-1]) >= 3 for row in metrics.splitlines())
