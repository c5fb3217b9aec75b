"""CRLs and OCSP as relying parties use them: fetched over HTTP, checked by openssl."""

from __future__ import annotations

import io
import socket
import ssl
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from domain.adapters.settings import Settings
from tests.live import LiveServer

PUBLISH_WAIT_SECONDS = 60.0  # the publisher looks every 0.5 s; this only bounds a hang


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings) as server:
        yield server


class Hierarchy:
    """A root, an intermediate and an operator token on a live server."""

    def __init__(self, live: LiveServer, directory: Path) -> None:
        self.live = live
        self.directory = directory
        self.admin = live.pca("tokens", "create", "--role", "admin", "--name", "a").strip()
        self.operator = live.pca("tokens", "create", "--role", "operator", "--name", "o").strip()
        self.root = self._ca(
            {"kind": "root", "subject": {"common_name": "CRL Root"}, "included_certificates": 10}
        )
        self.intermediate = self._ca(
            {
                "kind": "intermediate",
                "parent_id": self.root,
                "subject": {"common_name": "CRL Issuing CA"},
            }
        )
        live.json(
            "POST",
            f"/api/v1/cas/{self.root}/quota/assignments",
            self.admin,
            {"intermediate_id": self.intermediate, "remaining": 5},
        )
        self.root_pem = self._save(
            "root.pem", live.json("GET", f"/api/v1/cas/{self.root}", self.admin)["certificate_pem"]
        )
        self.intermediate_pem = self._save(
            "intermediate.pem",
            live.json("GET", f"/api/v1/cas/{self.intermediate}", self.admin)["certificate_pem"],
        )

    def _ca(self, body: dict[str, Any]) -> str:
        ca_id: str = self.live.json("POST", "/api/v1/cas", self.admin, body)["id"]
        self.live.json("POST", f"/api/v1/cas/{ca_id}/enable", self.admin)
        return ca_id

    def _save(self, name: str, text: str) -> Path:
        path = self.directory / name
        path.write_text(text)
        return path

    def issue(self, name: str) -> tuple[str, Path]:
        issued = self.live.json(
            "POST",
            f"/api/v1/cas/{self.intermediate}/certificates",
            self.operator,
            {"type": "server", "common_name": name, "validity_days": 30},
        )
        return issued["id"], self._save(f"{name}.pem", issued["certificate_pem"])

    def revoke(self, certificate_id: str) -> None:
        self.live.json(
            "POST",
            f"/api/v1/certificates/{certificate_id}/revoke",
            self.operator,
            {"reason": "key_compromise"},
        )

    def crl(self, ca_id: str, name: str, must_list: int | None = None) -> Path:
        """Fetch the CA's CRL over HTTP, waiting (bounded) until it lists ``must_list``."""
        deadline = time.monotonic() + PUBLISH_WAIT_SECONDS
        while True:
            status, _, der = self.live.request("GET", f"/crl/{ca_id}.crl")
            if status == 200:
                crl = x509.load_der_x509_crl(der)
                if must_list is None or crl.get_revoked_certificate_by_serial_number(must_list):
                    path = self.directory / name
                    path.write_bytes(der)
                    return path
            assert time.monotonic() < deadline, f"CRL of {ca_id} never listed {must_list}"
            time.sleep(0.05)

    def verify(self, leaf: Path, *crls: Path) -> subprocess.CompletedProcess[str]:
        command = [
            "openssl",
            "verify",
            "-crl_check_all",
            "-CAfile",
            str(self.root_pem),
            "-untrusted",
            str(self.intermediate_pem),
        ]
        for crl in crls:
            command += ["-CRLfile", str(_pem_crl(crl))]
        return subprocess.run([*command, str(leaf)], capture_output=True, text=True, check=False)


def _pem_crl(der_path: Path) -> Path:
    pem_path = der_path.with_suffix(".crl.pem")
    subprocess.run(
        ["openssl", "crl", "-inform", "DER", "-in", str(der_path), "-out", str(pem_path)],
        check=True,
    )
    return pem_path


def _serial(pem: Path) -> int:
    return x509.load_pem_x509_certificate(pem.read_bytes()).serial_number


@pytest.mark.slow
def test_openssl_refuses_a_revoked_leaf_and_a_revoked_intermediate(
    live: LiveServer, tmp_path: Path
) -> None:
    pki = Hierarchy(live, tmp_path)
    revoked_id, revoked_pem = pki.issue("revoked.example.com")
    _, good_pem = pki.issue("good.example.com")
    pki.revoke(revoked_id)
    intermediate_crl = pki.crl(pki.intermediate, "intermediate.crl", _serial(revoked_pem))
    root_crl = pki.crl(pki.root, "root.crl")
    assert pki.verify(good_pem, root_crl, intermediate_crl).returncode == 0
    refused = pki.verify(revoked_pem, root_crl, intermediate_crl)
    assert "certificate revoked" in refused.stdout + refused.stderr

    live.json(
        "POST", f"/api/v1/cas/{pki.intermediate}/revoke", pki.admin, {"reason": "ca_compromise"}
    )
    root_crl = pki.crl(pki.root, "root-after.crl", _serial(pki.intermediate_pem))
    refused = pki.verify(good_pem, root_crl, intermediate_crl)
    assert "certificate revoked" in refused.stdout + refused.stderr


@pytest.mark.slow
def test_openssl_ocsp_says_good_then_revoked(live: LiveServer, tmp_path: Path) -> None:
    pki = Hierarchy(live, tmp_path)
    certificate_id, leaf = pki.issue("ocsp.example.com")
    url = f"{live.base}/ocsp/{pki.intermediate}"
    chain = tmp_path / "chain.pem"
    chain.write_text(pki.root_pem.read_text() + pki.intermediate_pem.read_text())

    def ask() -> str:
        """openssl's answer; asked again after a 503, as a client obeys its Retry-After (a
        loaded server may wait for a storage connection longer than it lets a request)."""
        deadline = time.monotonic() + PUBLISH_WAIT_SECONDS
        while "code=503" in (answer := ask_once()) and time.monotonic() < deadline:
            time.sleep(1)
        return answer

    def ask_once() -> str:
        result = subprocess.run(
            [
                "openssl",
                "ocsp",
                "-issuer",
                str(pki.intermediate_pem),
                "-cert",
                str(leaf),
                "-url",
                url,
                "-CAfile",
                str(chain),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return result.stdout + result.stderr

    first = ask()
    assert "Response verify OK" in first, (first, live.log.read_text()[-3000:])
    assert f"{leaf}: good" in first
    pki.revoke(certificate_id)
    deadline = time.monotonic() + PUBLISH_WAIT_SECONDS
    while f"{leaf}: revoked" not in (answer := ask()):
        assert time.monotonic() < deadline, answer
        time.sleep(0.1)
    assert "Reason: keyCompromise" in answer


@pytest.mark.slow
def test_crl_numbers_keep_increasing_across_restarts(settings: Settings, tmp_path: Path) -> None:
    with LiveServer(settings) as live:
        pki = Hierarchy(live, tmp_path)
        first = x509.load_der_x509_crl(pki.crl(pki.intermediate, "a.crl").read_bytes())
        issuer = pki.intermediate
    with LiveServer(settings) as live:
        deadline = time.monotonic() + PUBLISH_WAIT_SECONDS
        while True:
            status, _, der = live.request("GET", f"/crl/{issuer}.crl")
            number = (
                x509.load_der_x509_crl(der)
                .extensions.get_extension_for_class(x509.CRLNumber)
                .value.crl_number
                if status == 200
                else 0
            )
            first_number = first.extensions.get_extension_for_class(x509.CRLNumber)
            if number > first_number.value.crl_number:
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)


@pytest.mark.slow
def test_a_tls_server_checking_crls_refuses_a_revoked_client_certificate(
    live: LiveServer, tmp_path: Path
) -> None:
    pki = Hierarchy(live, tmp_path)
    server_id, _ = pki.issue("127.0.0.1")
    good = _client(pki, "good@example.com", tmp_path)
    revoked = _client(pki, "revoked@example.com", tmp_path)
    pki.revoke(revoked[0])
    crl = _pem_crl(pki.crl(pki.intermediate, "issuing.crl", _serial(revoked[1])))
    server_files = _nginx_files(pki, server_id, tmp_path / "server")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*server_files, password=PASSWORD)
    context.load_verify_locations(pki.root_pem)
    context.load_verify_locations(pki.intermediate_pem)
    context.load_verify_locations(crl)
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    assert _handshake(context, pki.root_pem, good[2]) == "ok"
    assert "revoked" in _handshake(context, pki.root_pem, revoked[2])


PASSWORD = "correct horse battery"


def _client(pki: Hierarchy, email: str, directory: Path) -> tuple[str, Path, tuple[Path, Path]]:
    issued = pki.live.json(
        "POST",
        f"/api/v1/cas/{pki.intermediate}/certificates",
        pki.operator,
        {
            "type": "client",
            "common_name": email,
            "validity_days": 30,
            "sans": [{"type": "email", "value": email}],
        },
    )
    pem = directory / f"{email}.pem"
    pem.write_text(issued["certificate_pem"])
    return issued["id"], pem, _nginx_files(pki, issued["id"], directory / email)


def _nginx_files(pki: Hierarchy, certificate_id: str, out: Path) -> tuple[Path, Path]:
    status, _, body = pki.live.request(
        "POST",
        f"/api/v1/certificates/{certificate_id}/download",
        pki.operator,
        {"format": "nginx", "password": PASSWORD},
    )
    assert status == 200
    zipfile.ZipFile(io.BytesIO(body)).extractall(out)
    return next(out.glob("*.pem")), next(out.glob("*.key"))


def _handshake(server: ssl.SSLContext, root: Path, client_files: tuple[Path, Path]) -> str:
    """Run one TLS handshake on loopback; "ok" or the server's reason for refusing."""
    client = ssl.create_default_context(cafile=str(root))
    client.load_cert_chain(*client_files, password=PASSWORD)
    listener = socket.create_server(("127.0.0.1", 0))
    outcome: dict[str, str] = {}

    def accept() -> None:
        connection, _ = listener.accept()
        try:
            with server.wrap_socket(connection, server_side=True) as tls:
                tls.sendall(b"ok")
                outcome["server"] = "ok"
        except ssl.SSLError as error:
            outcome["server"] = str(error)

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        with (
            socket.create_connection(listener.getsockname()) as raw,
            client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.recv(2)
    except (ssl.SSLError, OSError):
        pass  # the server's side says why
    thread.join(10)
    listener.close()
    return outcome.get("server", "no answer")
