"""Real ACME clients against `pca serve` over loopback: certbot (Debian package) issues
with http-01 (standalone) and dns-01 (manual hooks writing to the local DNS server),
renews and revokes; lego issues with http-01 and EAB. Every chain passes
``openssl verify`` against the root."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from domain.adapters.settings import Settings
from tests.acme_client import LoopbackDNS
from tests.live import LiveServer, free_port

pytestmark = pytest.mark.slow


@dataclass
class Acme:
    server: LiveServer
    dns: LoopbackDNS
    http_port: int
    root_pem: Path
    work: Path
    ca_id: str

    @property
    def directory_url(self) -> str:
        return f"{self.server.base}/acme/corp/directory"

    def eab(self) -> tuple[str, str]:
        row = json.loads(self.server.pca("acme", "eab-create", "corp", "--json"))
        return str(row["kid"]), str(row["hmac_key"])

    def verify(self, cert: Path, chain: Path) -> None:
        done = subprocess.run(
            [
                "openssl",
                "verify",
                "-CAfile",
                str(self.root_pem),
                "-untrusted",
                str(chain),
                str(cert),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Acme]:
    work = tmp_path_factory.mktemp("acme-clients")
    http_port = free_port()
    with LoopbackDNS(work / "dns") as dns:
        os.environ["PCA_ACME_HTTP_PORT"] = str(http_port)
        os.environ["PCA_ACME_RESOLVER"] = f"127.0.0.1:{dns.port}"
        try:
            server = LiveServer(Settings(data_dir=work / "data"))
        finally:
            del os.environ["PCA_ACME_HTTP_PORT"], os.environ["PCA_ACME_RESOLVER"]
        with server:
            admin = server.pca(
                "tokens", "create", "--role", "admin", "--name", "acme-admin"
            ).strip()
            root_id, ca_id = server.hierarchy(admin, "ACME", quota=20)
            root = server.json("GET", f"/api/v1/cas/{root_id}", admin)["certificate_pem"]
            (work / "root.pem").write_text(root)
            server.pca("acme", "create-directory", "corp", "--ca", ca_id)
            yield Acme(server, dns, http_port, work / "root.pem", work, ca_id)


def certbot(acme: Acme, *args: str) -> subprocess.CompletedProcess[str]:
    base = acme.work / "certbot"
    done = subprocess.run(
        [
            "certbot",
            *args,
            "--non-interactive",
            "--config-dir",
            str(base / "config"),
            "--work-dir",
            str(base / "work"),
            "--logs-dir",
            str(base / "logs"),
            "--server",
            acme.directory_url,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr + _log_tail(base / "logs")
    return done


def _log_tail(logs: Path) -> str:
    log = logs / "letsencrypt.log"
    return log.read_text()[-4000:] if log.exists() else ""


def certbot_issue(acme: Acme, name: str, *challenge: str) -> Path:
    kid, hmac_key = acme.eab()
    certbot(
        acme,
        "certonly",
        "--agree-tos",
        "--email",
        "ops@example.com",
        "--eab-kid",
        kid,
        "--eab-hmac-key",
        hmac_key,
        "--cert-name",
        name,
        "-d",
        name,
        *challenge,
    )
    return acme.work / "certbot" / "config" / "live" / name


def test_certbot_issues_with_http01_renews_and_revokes(acme: Acme) -> None:
    live = certbot_issue(
        acme,
        "www.example.test",
        "--standalone",
        "--http-01-address",
        "127.0.0.1",
        "--http-01-port",
        str(acme.http_port),
    )
    acme.verify(live / "cert.pem", live / "chain.pem")
    first = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())

    certbot(
        acme,
        "renew",
        "--force-renewal",
        "--no-random-sleep-on-renew",
        "--cert-name",
        "www.example.test",
    )
    renewed = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    assert renewed.serial_number != first.serial_number
    acme.verify(live / "cert.pem", live / "chain.pem")

    certbot(
        acme,
        "revoke",
        "--cert-path",
        str(live / "cert.pem"),
        "--reason",
        "superseded",
        "--no-delete-after-revoke",
    )
    status = acme.server.json(
        "GET",
        f"/api/v1/cas/{acme.ca_id}/certificates?status=revoked",
        acme.server.pca("tokens", "create", "--role", "auditor", "--name", "a").strip(),
    )
    assert format(renewed.serial_number, "x") in json.dumps(status)


def test_certbot_issues_a_wildcard_with_dns01_through_manual_hooks(acme: Acme) -> None:
    records = acme.dns.record_dir
    hook = f'echo "$CERTBOT_VALIDATION" >> {records}/_acme-challenge.$CERTBOT_DOMAIN'
    live = certbot_issue(
        acme,
        "*.wild.example.test",
        "--manual",
        "--preferred-challenges",
        "dns",
        "--manual-auth-hook",
        hook,
        "--manual-cleanup-hook",
        f"rm -f {records}/_acme-challenge.$CERTBOT_DOMAIN",
    )
    acme.verify(live / "cert.pem", live / "chain.pem")
    leaf = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["*.wild.example.test"]


def test_lego_issues_with_http01_and_eab(acme: Acme) -> None:
    kid, hmac_key = acme.eab()
    base = acme.work / "lego"
    done = subprocess.run(
        [
            "lego",
            "--server",
            acme.directory_url,
            "--email",
            "ops@example.com",
            "--accept-tos",
            "--eab",
            "--kid",
            kid,
            "--hmac",
            hmac_key,
            "--domains",
            "lego.example.test",
            "--http",
            "--http.port",
            f"127.0.0.1:{acme.http_port}",
            "--path",
            str(base),
            "run",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    bundle = base / "certificates" / "lego.example.test.crt"
    acme.verify(bundle, bundle)
