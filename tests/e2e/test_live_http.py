"""The README quickstart over real HTTP against `pca serve`, read back by real tools."""

from __future__ import annotations

import http.client
import io
import json
import socket
import ssl
import subprocess
import threading
import urllib.parse
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.http.app import ALL_ROUTES
from api.http.openapi import openapi_path
from domain.adapters.settings import Settings
from tests.live import LiveServer


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings) as server:
        yield server


def _setup(live: LiveServer) -> tuple[str, str, str]:
    admin = live.pca("tokens", "create", "--role", "admin", "--name", "ops-admin").strip()
    operator = live.pca("tokens", "create", "--role", "operator", "--name", "deployer").strip()
    root = live.json(
        "POST",
        "/api/v1/cas",
        admin,
        {
            "kind": "root",
            "subject": {"common_name": "Live Root CA", "country": "DE"},
            "included_certificates": 10,
        },
    )
    live.json("POST", f"/api/v1/cas/{root['id']}/enable", admin)
    live.json("POST", f"/api/v1/cas/{root['id']}/quota/purchases", admin, {"count": 10})
    intermediate = live.json(
        "POST",
        "/api/v1/cas",
        admin,
        {
            "kind": "intermediate",
            "parent_id": root["id"],
            "subject": {"common_name": "Live Issuing CA"},
        },
    )
    live.json("POST", f"/api/v1/cas/{intermediate['id']}/enable", admin)
    live.json(
        "POST",
        f"/api/v1/cas/{root['id']}/quota/assignments",
        admin,
        {"intermediate_id": intermediate["id"], "remaining": 5},
    )
    return operator, root["id"], intermediate["id"]


def _issue(live: LiveServer, token: str, ca_id: str, kind: str, san: dict[str, str]) -> Any:
    return live.json(
        "POST",
        f"/api/v1/cas/{ca_id}/certificates",
        token,
        {
            "type": kind,
            "common_name": san["value"],
            "validity_days": 30,
            "sans": [san],
            "key_algorithm": "EC_P256",
        },
    )


def _download(live: LiveServer, token: str, cert_id: str, fmt: str, out: Path) -> Path:
    status, headers, body = live.request(
        "POST",
        f"/api/v1/certificates/{cert_id}/download",
        token,
        {"format": fmt, "password": "correct horse battery"},
    )
    assert status == 200, body[:300]
    assert 'filename="' in headers["Content-Disposition"]
    if fmt == "nginx":
        zipfile.ZipFile(io.BytesIO(body)).extractall(out)
    return out


@pytest.mark.slow
def test_the_quickstart_over_http_gives_files_real_servers_accept(
    live: LiveServer, tmp_path: Path
) -> None:
    operator, root_id, ca_id = _setup(live)
    server = _issue(live, operator, ca_id, "server", {"type": "ip", "value": "127.0.0.1"})
    client = _issue(live, operator, ca_id, "client", {"type": "email", "value": "svc@example.com"})
    _, _, root_der = live.request("GET", f"/ca/{root_id}.crt")
    root_pem = tmp_path / "root.pem"
    subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-out", str(root_pem)], input=root_der, check=True
    )
    bundle = _download(live, operator, server["id"], "nginx", tmp_path / "nginx")
    pems = sorted(bundle.glob("*.pem"))
    keys = sorted(bundle.glob("*.key"))
    assert len(pems) == 1
    assert len(keys) == 1
    client_files = _download(live, operator, client["id"], "nginx", tmp_path / "client")
    _mutual_tls(
        root_pem,
        pems[0],
        keys[0],
        next(client_files.glob("*.pem")),
        next(client_files.glob("*.key")),
    )
    listed = live.json("GET", f"/api/v1/certificates/{server['id']}", operator)
    assert listed["status"] == "issued"


def _mutual_tls(
    root: Path, server_chain: Path, server_key: Path, client_chain: Path, client_key: Path
) -> None:
    """A TLS 1.3 handshake where each side checks the other's issued certificate."""
    password = "correct horse battery"
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(server_chain, server_key, password)
    server_context.load_verify_locations(root)
    server_context.verify_mode = ssl.CERT_REQUIRED
    client_context = ssl.create_default_context(cafile=str(root))
    client_context.load_cert_chain(client_chain, client_key, password)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: dict[str, Any] = {}

    def accept() -> None:
        connection, _ = listener.accept()
        with server_context.wrap_socket(connection, server_side=True) as tls:
            seen["client"] = tls.getpeercert()
            tls.sendall(b"hello")

    thread = threading.Thread(target=accept)
    thread.start()
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        client_context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.recv(5) == b"hello"
    thread.join(10)
    listener.close()
    subject = dict(item[0] for item in seen["client"]["subject"])
    assert subject["commonName"] == "svc@example.com"


@pytest.mark.slow
def test_tokens_and_roles_hold_over_http(live: LiveServer) -> None:
    auditor = live.pca("tokens", "create", "--role", "auditor", "--name", "review").strip()
    status, headers, _ = live.request(
        "POST", "/api/v1/cas", auditor, {"kind": "root", "subject": {"common_name": "x"}}
    )
    assert status == 403
    assert headers["Content-Type"] == "application/problem+json"
    assert live.request("GET", "/api/v1/cas/" + "0" * 8 + "-0000-0000-0000-" + "0" * 12)[0] == 401


def test_every_route_answers_over_real_http_as_documented(live: LiveServer) -> None:
    document = json.loads(live.request("GET", "/openapi.json")[2])
    for routes in ALL_ROUTES:
        for operation in routes.operations:
            path = openapi_path(operation.rule).format(
                ca_id=uuid.uuid4(),
                certificate_id=uuid.uuid4(),
                encoded="AA",
                kind="inventory",
                generation=2,
                name="web",  # a profile's
            )
            status, headers, _ = live.request(operation.method, path)
            template = openapi_path(operation.rule)
            documented = document["paths"][template][operation.method.lower()]["responses"]
            assert str(status) in documented, (operation.method, path, status)
            assert headers["X-Request-Id"]
            if operation.role is not None:
                assert status == 401


def test_metrics_count_what_every_worker_served(live: LiveServer) -> None:
    """Counters live in each worker process; /metrics must add them up across workers."""
    operator, _, ca_id = _setup(live)
    for number in range(4):
        _issue(live, operator, ca_id, "server", {"type": "dns", "value": f"m{number}.example"})
    auditor = live.pca("tokens", "create", "--role", "auditor", "--name", "scraper").strip()
    status, _, body = live.request("GET", "/metrics", auditor)
    assert status == 200
    text = body.decode()
    route = "/api/v1/cas/<uuid:ca_id>/certificates"
    assert f'pca_http_requests_total{{method="POST",route="{route}",status="201"}} 4.0' in text


def _console_cookie(live: LiveServer, token: str, headers: dict[str, str]) -> str:
    """The session cookie a console sign-in over a fresh connection is answered with."""
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    try:
        form = {"Content-Type": "application/x-www-form-urlencoded", **headers}
        body = urllib.parse.urlencode({"token": token})
        connection.request("POST", "/console/sign-in", body, form)
        answer = connection.getresponse()
        answer.read()
        return answer.getheader("Set-Cookie", "")
    finally:
        connection.close()


def test_a_tls_proxy_on_the_same_host_makes_the_console_cookie_secure(live: LiveServer) -> None:
    token = live.pca("tokens", "create", "--role", "auditor", "--name", "proxied").strip()
    assert "Secure" not in _console_cookie(live, token, {})
    assert "Secure" in _console_cookie(live, token, {"X-Forwarded-Proto": "https"})
