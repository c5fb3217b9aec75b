"""ACME (RFC 8555) over the Flask test client, on SQLite and PostgreSQL: the whole flow
with our own client, and each refusal with its RFC error type."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask

from api.deployment import Deployment
from api.wsgi import create_app
from domain.adapters.settings import AcmeSettings, Settings
from domain.pki.der import pem
from tests.acme_client import AcmeClient, Answer, ChallengeServer, LoopbackDNS, b64, csr_for
from tests.builders import ADMIN, enabled_intermediate, enabled_root
from tests.conftest import SettableClock

BASE = "http://localhost/acme/corp"


@pytest.fixture
def loopback(tmp_path: Path) -> Iterator[tuple[LoopbackDNS, ChallengeServer]]:
    with LoopbackDNS(tmp_path / "dns") as dns, ChallengeServer() as web:
        yield dns, web


@dataclasses.dataclass
class Setup:
    app: Flask
    root_id: UUID
    ca_id: UUID
    dns: LoopbackDNS
    web: ChallengeServer

    def transport(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> Answer:
        response = self.app.test_client().open(url, method=method, data=body, headers=headers)
        return Answer(response.status_code, dict(response.headers), response.get_data())

    def client(self) -> AcmeClient:
        return AcmeClient(self.transport, f"{BASE}/directory")

    def eab(self) -> tuple[str, str]:
        deployment: Deployment = self.app.extensions["pca"]
        return deployment.acme.create_eab(ADMIN, "corp")

    def account(self) -> AcmeClient:
        client = self.client()
        client_eab = client.eab(*self.eab())
        assert client.register(client_eab).status == 201
        return client


@pytest.fixture
def acme(
    settings: Settings, clock: SettableClock, loopback: tuple[LoopbackDNS, ChallengeServer]
) -> Iterator[Setup]:
    dns, web = loopback
    acme_settings = AcmeSettings(http_port=web.port, resolver=("127.0.0.1", dns.port))
    app = create_app(dataclasses.replace(settings, acme=acme_settings), clock=clock)
    deployment = app.extensions["pca"]
    root_id = enabled_root(deployment.service, quota=20)
    ca_id = enabled_intermediate(deployment.service, root_id, remaining=5)
    deployment.acme.create_directory(ADMIN, "corp", ca_id)
    yield Setup(app, root_id, ca_id, dns, web)
    deployment.close()


def issued(setup: Setup, client: AcmeClient, *names: str, kind: str = "http-01") -> Answer:
    order = client.order(*names)
    assert order.status == 201, order.body
    answers = setup.web.answers if kind == "http-01" else setup.dns.records
    client.answer_challenges(order.json(), kind, answers)
    _, csr = csr_for(*names)
    return client.finalize(order.headers["Location"], csr)


def test_an_account_with_eab_orders_validates_and_gets_a_chain_openssl_verifies(
    acme: Setup, tmp_path: Path
) -> None:
    client = acme.account()
    final = issued(acme, client, "www.example.test", "api.example.test")
    assert final.status == 200
    assert final.json()["status"] == "valid"
    chain = client.post(final.json()["certificate"], None)
    assert chain.headers["Content-Type"] == "application/pem-certificate-chain"
    leaf = x509.load_pem_x509_certificates(chain.body)[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(names.get_values_for_type(x509.DNSName)) == [
        "api.example.test",
        "www.example.test",
    ]
    root_der = acme.app.extensions["pca"].service.chain_der(acme.ca_id)[-1]
    (tmp_path / "root.pem").write_text(pem(root_der))
    (tmp_path / "chain.pem").write_bytes(chain.body)
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-CAfile",
            str(tmp_path / "root.pem"),
            "-untrusted",
            str(tmp_path / "chain.pem"),
            str(tmp_path / "chain.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_issuing_through_acme_is_an_event_of_the_account_and_spends_quota(acme: Setup) -> None:
    client = acme.account()
    issued(acme, client, "quota.example.test")
    service = acme.app.extensions["pca"].service
    assert service.get_ca(acme.ca_id).quota_remaining == 4
    account_id = client.kid.rsplit("/", 1)[-1] if client.kid else ""
    actors = {
        getattr(event, "actor", None)
        for notification in service.recorder.select_notifications(start=1, limit=1000)
        for event in [service.mapper.to_domain_event(notification)]
        if type(event).__name__
        in {"CertificateIssued", "QuotaSpent", "OrderCreated", "ChallengeValidated"}
    }
    assert actors == {f"acme account {account_id}"}


def test_dns01_validates_a_wildcard(acme: Setup) -> None:
    client = acme.account()
    order = client.order("*.wild.example.test")
    authz = client.post(order.json()["authorizations"][0], None).json()
    assert [c["type"] for c in authz["challenges"]] == ["dns-01"]
    assert authz["wildcard"] is True
    final = issued(acme, client, "*.wild.example.test", kind="dns-01")
    assert final.json()["status"] == "valid"


def test_the_account_revokes_its_certificate_and_a_second_revocation_is_refused(
    acme: Setup,
) -> None:
    client = acme.account()
    chain = client.post(issued(acme, client, "gone.example.test").json()["certificate"], None)
    der = x509.load_pem_x509_certificates(chain.body)[0].public_bytes(Encoding.DER)
    payload: dict[str, Any] = {"certificate": b64(der), "reason": 4}
    assert client.post(client.directory["revokeCert"], payload).status == 200
    again = client.post(client.directory["revokeCert"], payload)
    assert (again.status, again.problem_type) == (400, "alreadyRevoked")


# --- refusals ---------------------------------------------------------------------------


def test_a_reused_nonce_is_refused_with_badnonce(acme: Setup) -> None:
    client = acme.account()
    nonce = client.fresh_nonce()
    assert client.post(client.kid or "", None, nonce=nonce).status == 200
    replay = client.post(client.kid or "", None, nonce=nonce)
    assert (replay.status, replay.problem_type) == (400, "badNonce")
    assert replay.headers["Replay-Nonce"]


def test_a_made_up_nonce_is_refused_with_badnonce(acme: Setup) -> None:
    client = acme.account()
    answer = client.post(client.kid or "", None, nonce="bm90LWEtbm9uY2U")
    assert (answer.status, answer.problem_type) == (400, "badNonce")


def test_a_url_header_for_another_resource_is_refused(acme: Setup) -> None:
    client = acme.account()
    answer = client.post(client.kid or "", None, header_url=client.directory["newOrder"])
    assert (answer.status, answer.problem_type) == (401, "unauthorized")


def test_an_account_without_eab_is_refused(acme: Setup) -> None:
    answer = acme.client().register()
    assert (answer.status, answer.problem_type) == (400, "externalAccountRequired")


def test_an_eab_with_a_wrong_mac_is_refused_and_stays_usable(acme: Setup) -> None:
    kid, mac_key = acme.eab()
    client = acme.client()
    wrong = client.register(client.eab(kid, mac_key[::-1]))
    assert (wrong.status, wrong.problem_type) == (400, "unauthorized")
    assert client.register(client.eab(kid, mac_key)).status == 201


def test_an_eab_binds_one_account_only(acme: Setup) -> None:
    kid, mac_key = acme.eab()
    first = acme.client()
    assert first.register(first.eab(kid, mac_key)).status == 201
    second = acme.client()
    answer = second.register(second.eab(kid, mac_key))
    assert (answer.status, answer.problem_type) == (400, "unauthorized")


def test_an_identifier_outside_the_policy_is_refused_before_any_challenge(acme: Setup) -> None:
    client = acme.account()
    answer = client.order("not_a_host!.example.test")
    assert (answer.status, answer.problem_type) == (400, "rejectedIdentifier")
    assert "not_a_host!" in answer.json()["detail"]


def test_a_failed_challenge_makes_the_order_invalid(acme: Setup) -> None:
    client = acme.account()
    created = client.order("nobody.example.test")
    order, order_url = created.json(), created.headers["Location"]
    authz = client.post(order["authorizations"][0], None).json()
    http01 = next(c for c in authz["challenges"] if c["type"] == "http-01")
    answer = client.post(http01["url"], {}).json()
    assert answer["status"] == "invalid"
    assert "404" in answer["error"]["detail"]
    assert client.post(order_url, None).json()["status"] == "invalid"


def test_a_csr_that_does_not_match_the_order_is_refused_and_nothing_is_issued(
    acme: Setup,
) -> None:
    client = acme.account()
    order = client.order("match.example.test")
    client.answer_challenges(order.json(), "http-01", acme.web.answers)
    _, csr = csr_for("match.example.test", "extra.example.test")
    answer = client.finalize(order.headers["Location"], csr)
    assert (answer.status, answer.problem_type) == (400, "badCSR")
    assert acme.app.extensions["pca"].service.get_ca(acme.ca_id).quota_remaining == 5


def test_quota_exhaustion_is_a_clear_problem(acme: Setup) -> None:
    acme.app.extensions["pca"].service.assign_quota(ADMIN, acme.root_id, acme.ca_id, 0)
    client = acme.account()
    answer = issued(acme, client, "late.example.test")
    assert (answer.status, answer.problem_type) == (403, "rateLimited")
    assert "quota" in answer.json()["detail"]
