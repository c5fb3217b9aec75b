"""`pca ocsp-serve`, the dedicated OCSP responder, over real HTTP beside `pca serve`: openssl
sees good, revoked and unknown through it, by POST and by GET, and it answers what
`pca serve` answers for the same request, errors included. One pair of servers per store
for the whole module."""

from __future__ import annotations

import base64
import http.client
import json
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp as x509_ocsp

from domain.adapters.settings import Settings
from tests.conftest import PUBLIC_URL, STORES
from tests.e2e.test_revocation_publishing import Hierarchy
from tests.live import AnswerHeaders, LiveServer
from tests.pgserver import create_schema, drop_schema
from tests.polling import until

pytestmark = pytest.mark.slow
UNKNOWN_SERIAL = "0x7e57ab1e"
# what differs by request, connection or signature (an ECDSA signature's DER length varies)
PER_ANSWER = ("x-request-id", "date", "server", "connection", "keep-alive", "content-length")


@dataclass(frozen=True)
class Servers:
    """`pca serve` and `pca ocsp-serve` on one deployment, a hierarchy, three leaves."""

    serve: LiveServer
    responder: LiveServer
    pki: Hierarchy
    good: Path
    revoked: Path
    chain: Path


@pytest.fixture(scope="module", params=STORES)
def store_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    data_dir = tmp_path_factory.mktemp(f"responder-{request.param}") / "data"
    if request.param == "sqlite":
        yield Settings(data_dir=data_dir, public_url=PUBLIC_URL)
        return
    url = request.getfixturevalue("postgres_url")
    schema = create_schema(url)
    yield Settings(
        data_dir=data_dir, public_url=PUBLIC_URL, database_url=url, database_schema=schema
    )
    drop_schema(url, schema)


@pytest.fixture(scope="module")
def servers(store_settings: Settings) -> Iterator[Servers]:
    directory = store_settings.data_dir.parent
    with LiveServer(store_settings) as serve:
        pki = Hierarchy(serve, directory)
        _, good = pki.issue("good.example.com")
        revoked_id, revoked = pki.issue("revoked.example.com")
        pki.revoke(revoked_id)
        chain = directory / "chain.pem"
        chain.write_text(pki.root_pem.read_text() + pki.intermediate_pem.read_text())
        with LiveServer(store_settings, command="ocsp-serve") as responder:
            yield Servers(serve, responder, pki, good, revoked, chain)


def _openssl_ocsp(servers: Servers, *args: str) -> str:
    """What ``openssl ocsp`` prints, verifying against the root with the chain."""
    command = ["openssl", "ocsp", "-issuer", str(servers.pki.intermediate_pem)]
    command += ["-CAfile", str(servers.chain), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    return done.stdout + done.stderr


def _request_der(servers: Servers, leaf: Path, *, nonce: bool = False) -> bytes:
    out = leaf.with_suffix(".nonce.req" if nonce else ".req")
    flag = "-nonce" if nonce else "-no_nonce"
    _openssl_ocsp(servers, "-cert", str(leaf), flag, "-reqout", str(out))
    return out.read_bytes()


def _post(server: LiveServer, ca_id: str, body: bytes) -> tuple[int, AnswerHeaders, bytes]:
    headers = {"Content-Type": "application/ocsp-request", "X-Request-Id": "ocsp-test-1"}
    return server.request("POST", f"/ocsp/{ca_id}", headers=headers, data=body)


def _get(server: LiveServer, ca_id: str, request_der: bytes) -> tuple[int, AnswerHeaders, bytes]:
    encoded = urllib.parse.quote(base64.b64encode(request_der).decode(), safe="")
    return server.request("GET", f"/ocsp/{ca_id}/{encoded}")


def _same_headers(first: Mapping[str, str], second: Mapping[str, str]) -> None:
    kept = {name: value for name, value in first.items() if name not in PER_ANSWER}
    assert kept == {name: value for name, value in second.items() if name not in PER_ANSWER}


def _facts(der: bytes) -> tuple[object, ...]:
    """What a relying party reads in an OCSP answer, without times and signature."""
    answer = x509_ocsp.load_der_ocsp_response(der)
    if answer.response_status is not x509_ocsp.OCSPResponseStatus.SUCCESSFUL:
        return (answer.response_status,)
    return (
        answer.certificate_status,
        answer.serial_number,
        answer.revocation_reason,
        answer.responder_key_hash,
        tuple(cert.fingerprint(hashes.SHA256()) for cert in answer.certificates),
    )


@pytest.mark.parametrize(
    ("asked", "seen"),
    [
        (("-cert", "good"), "good"),
        (("-cert", "revoked"), "revoked\n\tThis Update"),
        (("-serial", UNKNOWN_SERIAL), "unknown"),
    ],
    ids=["good", "revoked", "unknown"],
)
def test_openssl_sees_the_status_through_it(
    servers: Servers, asked: tuple[str, str], seen: str
) -> None:
    """One CertID per request, as the responder takes (openssl adds a nonce, and warns
    when the answer does not echo it)."""
    flag, name = asked
    leaf = str(getattr(servers, name, name))
    url = f"{servers.responder.base}/ocsp/{servers.pki.intermediate}"
    answer = _openssl_ocsp(servers, "-url", url, flag, leaf)
    assert "Response verify OK" in answer, (answer, servers.responder.log.read_text()[-3000:])
    assert f"{leaf}: {seen}" in answer
    assert "nonce" not in answer.lower()
    if name == "revoked":
        assert "Reason: keyCompromise" in answer


def test_a_get_answer_verifies_in_openssl(servers: Servers) -> None:
    status, headers, der = _get(
        servers.responder, servers.pki.intermediate, _request_der(servers, servers.revoked)
    )
    assert (status, headers["Content-Type"]) == (200, "application/ocsp-response")
    saved = servers.revoked.with_suffix(".resp")
    saved.write_bytes(der)
    answer = _openssl_ocsp(servers, "-respin", str(saved), "-cert", str(servers.revoked))
    assert "Response verify OK" in answer, answer
    assert f"{servers.revoked}: revoked" in answer


@pytest.mark.parametrize("ask", [_post, _get], ids=["POST", "GET"])
def test_it_answers_what_pca_serve_answers(servers: Servers, ask: object) -> None:
    assert callable(ask)
    request_der = _request_der(servers, servers.revoked)
    ca_id = servers.pki.intermediate
    status, headers, der = ask(servers.responder, ca_id, request_der)
    expected_status, expected_headers, expected = ask(servers.serve, ca_id, request_der)
    assert status == expected_status == 200
    _same_headers(headers, expected_headers)
    assert _facts(der) == _facts(expected)
    assert int(headers["Content-Length"]) == len(der)


def test_a_kept_answer_is_served_again_byte_for_byte(servers: Servers) -> None:
    """Asked twice on one keep-alive connection (so of one worker, which keeps it)."""
    connection = http.client.HTTPConnection("127.0.0.1", servers.responder.port, timeout=30)
    path = f"/ocsp/{servers.pki.intermediate}"
    answers = []
    for _ in range(2):
        connection.request("POST", path, _request_der(servers, servers.good))
        answers.append(connection.getresponse().read())
    connection.close()
    assert answers[0] == answers[1]
    assert _facts(answers[0])[0] is x509_ocsp.OCSPCertStatus.GOOD


def test_a_nonce_is_echoed_in_a_fresh_answer(servers: Servers) -> None:
    request_der = _request_der(servers, servers.good, nonce=True)
    nonce = x509_ocsp.load_der_ocsp_request(request_der).extensions.get_extension_for_class(
        x509.OCSPNonce
    )
    _, _, der = _post(servers.responder, servers.pki.intermediate, request_der)
    answer = x509_ocsp.load_der_ocsp_response(der)
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value == nonce.value


def test_the_request_id_given_is_the_one_answered(servers: Servers) -> None:
    request_der = _request_der(servers, servers.good)
    _, headers, _ = _post(servers.responder, servers.pki.intermediate, request_der)
    assert headers["X-Request-Id"] == "ocsp-test-1"


@pytest.mark.parametrize(
    "path",
    [
        "/ocsp/{ca}/not*base64",
        "/ocsp/00000000-0000-4000-8000-000000000000/{request}",
        "/ocsp/not-a-ca/{request}",
    ],
    ids=["malformed", "unknown-ca", "not-a-uuid"],
)
def test_a_bad_get_gets_what_pca_serve_answers(servers: Servers, path: str) -> None:
    encoded = base64.b64encode(_request_der(servers, servers.good)).decode()
    target = path.format(ca=servers.pki.intermediate, request=urllib.parse.quote(encoded, safe=""))
    (status, headers, body), (expected_status, expected_headers, expected) = (
        server.request("GET", target) for server in (servers.responder, servers.serve)
    )
    assert status == expected_status
    _same_headers(headers, expected_headers)
    if status == 200:
        assert body == expected
    else:
        assert _without_request_id(body) == _without_request_id(expected)


def _without_request_id(problem: bytes) -> dict[str, object]:
    shown: dict[str, object] = json.loads(problem)
    shown.pop("request_id", None)
    return shown


def test_a_malformed_post_gets_what_pca_serve_answers(servers: Servers) -> None:
    (status, headers, body), (expected_status, expected_headers, expected) = (
        _post(server, servers.pki.intermediate, b"\x30\x03junk")
        for server in (servers.responder, servers.serve)
    )
    assert (status, body) == (expected_status, expected)
    _same_headers(headers, expected_headers)
    assert _facts(body) == (x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST,)


def test_healthz_is_served_as_pca_serve_serves_it(servers: Servers) -> None:
    status, _, body = servers.responder.request("GET", "/healthz")
    assert status == 200
    assert json.loads(body) == json.loads(servers.serve.request("GET", "/healthz")[2])


def test_nothing_but_ocsp_crls_and_health_is_served(servers: Servers) -> None:
    assert servers.responder.request("GET", "/api/v1/cas")[0] == 404
    assert servers.responder.request("POST", "/api/v1/cas", body={"kind": "root"})[0] == 404
    status, _, der = servers.responder.request("GET", f"/crl/{servers.pki.intermediate}.crl")
    assert status == 200
    assert (
        x509.load_der_x509_crl(der).issuer
        == x509.load_pem_x509_certificate(servers.pki.intermediate_pem.read_bytes()).subject
    )


def _raw(servers: Servers, *pieces: bytes, pause: float = 0.0) -> socket.socket:
    """A connection to the responder with ``pieces`` sent on it, ``pause`` seconds apart."""
    connection = socket.create_connection(("127.0.0.1", servers.responder.port), timeout=30)
    for number, piece in enumerate(pieces):
        if number:
            time.sleep(pause)
        connection.sendall(piece)
    return connection


def _ocsp_get(servers: Servers, leaf: Path, *lines: str, version: str = "1.1") -> bytes:
    encoded = urllib.parse.quote(base64.b64encode(_request_der(servers, leaf)).decode(), safe="")
    head = [f"GET /ocsp/{servers.pki.intermediate}/{encoded} HTTP/{version}", "Host: t", *lines]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def _ocsp_post_head(servers: Servers, body: bytes, *lines: str) -> bytes:
    head = [f"POST /ocsp/{servers.pki.intermediate} HTTP/1.1", "Host: t"]
    head += [f"Content-Length: {len(body)}", "Content-Type: application/ocsp-request", *lines]
    return ("\r\n".join(head) + "\r\n\r\n").encode()


def _read_answer(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer off ``stream``: status, headers (names in lower case), body."""
    status = int(stream.readline().split()[1])
    headers = {}
    while (line := stream.readline()) != b"\r\n":
        name, value = line.decode("latin-1").split(":", 1)
        headers[name.lower()] = value.strip()
    return status, headers, stream.read(int(headers.get("content-length", "0")))


def _certificate_status(der: bytes) -> x509_ocsp.OCSPCertStatus:
    return x509_ocsp.load_der_ocsp_response(der).certificate_status


def test_pipelined_requests_are_answered_in_order_whichever_path_answers(
    servers: Servers,
) -> None:
    """The first OCSP request is answered by the server's protocol; the one sent behind
    /healthz (answered by Flask on a thread) waits for it and is answered by the ASGI
    app, with the same headers."""
    healthz = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    body = _request_der(servers, servers.good)
    pipelined = _ocsp_get(servers, servers.revoked) + healthz + _ocsp_get(servers, servers.good)
    with _raw(servers, pipelined + _ocsp_post_head(servers, body) + body) as connection:
        stream = connection.makefile("rb")
        answers = [_read_answer(stream) for _ in range(4)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 200]
    assert json.loads(answers[1][2])["status"] == "ok"
    statuses = [_certificate_status(answers[n][2]) for n in (0, 2, 3)]
    assert statuses == [x509_ocsp.OCSPCertStatus.REVOKED] + [x509_ocsp.OCSPCertStatus.GOOD] * 2
    _same_headers(answers[0][1], answers[2][1])


@pytest.mark.parametrize(
    ("line", "version"), [("Connection: close", "1.1"), ("X-Any: 1", "1.0")], ids=str
)
def test_a_client_that_closes_is_answered_then_closed(
    servers: Servers, line: str, version: str
) -> None:
    with _raw(servers, _ocsp_get(servers, servers.good, line, version=version)) as connection:
        stream = connection.makefile("rb")
        status, headers, der = _read_answer(stream)
        connection.settimeout(5)  # well under the keep-alive timeout (30 s)
        assert stream.read() == b""  # closed by the server, nothing more sent
    assert (status, headers["connection"]) == (200, "close")
    assert _certificate_status(der) is x509_ocsp.OCSPCertStatus.GOOD


@pytest.mark.parametrize("expect", [False, True], ids=["late-body", "expect-100-continue"])
def test_a_post_whose_body_comes_later_is_answered(servers: Servers, expect: bool) -> None:
    body = _request_der(servers, servers.revoked)
    head = _ocsp_post_head(servers, body, *(["Expect: 100-continue"] if expect else []))
    with _raw(servers, head, body[:10], body[10:], pause=0.05) as connection:
        stream = connection.makefile("rb")
        if expect:
            assert stream.readline() == b"HTTP/1.1 100 Continue\r\n"
            assert stream.readline() == b"\r\n"
        status, _, der = _read_answer(stream)
    assert status == 200
    assert _certificate_status(der) is x509_ocsp.OCSPCertStatus.REVOKED


def test_sigterm_stops_it_cleanly_with_its_access_log_written(
    servers: Servers, store_settings: Settings
) -> None:
    body = _request_der(servers, servers.revoked)
    with LiveServer(store_settings, command="ocsp-serve") as responder:
        _post(responder, servers.pki.intermediate, _request_der(servers, servers.good))
        # a POST whose body is still coming when SIGTERM arrives is answered, then closed
        connection = socket.create_connection(("127.0.0.1", responder.port), timeout=30)
        connection.sendall(_ocsp_post_head(servers, body) + body[:10])
        time.sleep(0.2)
        responder.process.terminate()
        assert until(lambda: responder.log.read_text().count("Shutting down") == 2, 10)
        time.sleep(0.1)  # each worker asks its connections to stop right after that line
        connection.sendall(body[10:])
        stream = connection.makefile("rb")
        status, headers, der = _read_answer(stream)
        assert stream.read() == b""
        connection.close()
    assert (status, headers["connection"]) == (200, "close")
    assert _certificate_status(der) is x509_ocsp.OCSPCertStatus.REVOKED
    assert responder.process.returncode == 0
    log = responder.log.read_text()
    assert f'"POST /ocsp/{servers.pki.intermediate} HTTP/1.1" 200' in log
    assert "rid=ocsp-test-1" in log
    assert "Application shutdown complete" in log
