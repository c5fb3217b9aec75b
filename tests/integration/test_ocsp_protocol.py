"""`pca ocsp-serve`'s protocol (api.http.ocsp_protocol) in process, under uvicorn: a request
whose answer raised is handed on, and answered by Flask as `pca serve` answers it. The
storage error is injected: a disk that fails on demand cannot run here."""

from __future__ import annotations

import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

import pytest
import uvicorn
from cryptography.x509 import ocsp as x509_ocsp

from api.http.ocsp_asgi import OCSPResponderApp
from api.ocsp_serve import APP, UVICORN_OPTIONS
from domain.adapters.settings import Settings, open_service
from tests.builders import enabled_intermediate, enabled_root, issue
from tests.integration.test_ocsp_precomputed import ocsp_request
from tests.live import AnswerHeaders, free_port, settings_env


@dataclass(frozen=True)
class Responder:
    base: str
    app: OCSPResponderApp
    ca_id: UUID
    request_der: bytes

    def post(self) -> tuple[int, AnswerHeaders, bytes]:
        request = urllib.request.Request(
            f"{self.base}/ocsp/{self.ca_id}", self.request_der, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, AnswerHeaders(answer.headers), answer.read()
        except urllib.error.HTTPError as error:
            return error.code, AnswerHeaders(error.headers), error.read()


@pytest.fixture
def responder(sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Responder]:
    service = open_service(sqlite_settings)
    ca_id = enabled_intermediate(service, enabled_root(service))
    certificate = issue(service, ca_id).certificate
    request_der = ocsp_request(service, ca_id, certificate.certificate_der, nonce=False)
    service.close()
    service.keystore.close()
    port = free_port()
    for name, value in settings_env(sqlite_settings, port).items():
        if name.startswith("PCA_"):
            monkeypatch.setenv(name, value)
    config = uvicorn.Config(APP, port=port, **UVICORN_OPTIONS)  # as `pca ocsp-serve`
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.01)
    assert isinstance(config.loaded_app, OCSPResponderApp)
    yield Responder(f"http://127.0.0.1:{port}", config.loaded_app, ca_id, request_der)
    server.should_exit = True
    thread.join(timeout=30)


def _io_error() -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("disk I/O error")
    error.sqlite_errorcode = sqlite3.SQLITE_IOERR
    return error


def test_a_failed_answer_gets_flasks_503_after_one_more_try(
    responder: Responder, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = responder.app.serving
    assert serving is not None
    status, _, der = responder.post()
    assert status == 200
    tries = []

    def failing(ca_id: UUID, request_der: bytes) -> bytes:
        tries.append(request_der)
        raise _io_error()

    monkeypatch.setattr(serving.deployment.ocsp, "answer", failing)
    status, headers, body = responder.post()
    assert (status, headers["Content-Type"]) == (503, "application/problem+json")
    assert "Retry-After" in headers
    assert b"Storage unavailable" in body
    assert tries == [responder.request_der] * 2  # the protocol's, then Flask's view's
    monkeypatch.undo()
    status, _, again = responder.post()
    assert status == 200
    assert again == der  # kept, and served again once the storage answers
    assert x509_ocsp.load_der_ocsp_response(again).certificate_status is (
        x509_ocsp.OCSPCertStatus.GOOD
    )
