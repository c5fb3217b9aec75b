"""ACME (RFC 8555) over the Flask test client, on SQLite and PostgreSQL: the whole flow
with our own client, and each refusal with its RFC error type."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from flask import Flask

from api.deployment import Deployment
from api.wsgi import create_app
from domain.adapters.settings import AcmeSettings, Settings
from domain.application.acme import AcmeLimits
from domain.model.policy_form import policy_from
from domain.model.tokens import Role
from domain.pki.der import pem
from tests.acme_client import AcmeClient, Answer, ChallengeServer, LoopbackDNS, b64, csr_for
from tests.api_client import ApiClient
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


@contextlib.contextmanager
def opened(
    settings: Settings, clock: SettableClock, loopback: tuple[LoopbackDNS, ChallengeServer]
) -> Iterator[Setup]:
    """A deployment with an ACME directory "corp" on an intermediate with 5 left."""
    dns, web = loopback
    acme_settings = AcmeSettings(http_port=web.port, resolver=("127.0.0.1", dns.port))
    app = create_app(
        dataclasses.replace(settings, acme=acme_settings), clock=clock, run_projections=False
    )
    deployment = app.extensions["pca"]
    try:
        root_id = enabled_root(deployment.service, quota=20)
        ca_id = enabled_intermediate(deployment.service, root_id, remaining=5)
        deployment.acme.create_directory(ADMIN, "corp", ca_id)
        yield Setup(app, root_id, ca_id, dns, web)
    finally:
        deployment.close()


@pytest.fixture
def acme(
    settings: Settings, clock: SettableClock, loopback: tuple[LoopbackDNS, ChallengeServer]
) -> Iterator[Setup]:
    """On SQLite and on PostgreSQL: for what the store decides (nonces, counters, saves)."""
    with opened(settings, clock, loopback) as setup:
        yield setup


@pytest.fixture
def refusing(
    sqlite_settings: Settings, clock: SettableClock, loopback: tuple[LoopbackDNS, ChallengeServer]
) -> Iterator[Setup]:
    """On SQLite only: refusals decided before any storage is asked."""
    with opened(sqlite_settings, clock, loopback) as setup:
        yield setup


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
    final = issued(acme, client, "quota.example.test")
    account = client.post(client.kid or "", None).json()
    listed = client.post(account["orders"], None).json()["orders"]
    assert [final.headers["Location"]] == listed
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


def test_dns01_validates_a_wildcard(refusing: Setup) -> None:
    client = refusing.account()
    order = client.order("*.wild.example.test")
    authz = client.post(order.json()["authorizations"][0], None).json()
    assert [c["type"] for c in authz["challenges"]] == ["dns-01"]
    assert authz["wildcard"] is True
    final = issued(refusing, client, "*.wild.example.test", kind="dns-01")
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


def test_a_made_up_nonce_is_refused_with_badnonce(refusing: Setup) -> None:
    client = refusing.account()
    answer = client.post(client.kid or "", None, nonce="bm90LWEtbm9uY2U")
    assert (answer.status, answer.problem_type) == (400, "badNonce")


def test_a_url_header_for_another_resource_is_refused(refusing: Setup) -> None:
    client = refusing.account()
    answer = client.post(client.kid or "", None, header_url=client.directory["newOrder"])
    assert (answer.status, answer.problem_type) == (401, "unauthorized")


def test_an_account_without_eab_is_refused(refusing: Setup) -> None:
    answer = refusing.client().register()
    assert (answer.status, answer.problem_type) == (400, "externalAccountRequired")


def test_an_eab_with_a_wrong_mac_is_refused_and_stays_usable(refusing: Setup) -> None:
    kid, mac_key = refusing.eab()
    client = refusing.client()
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


def test_an_identifier_outside_the_policy_is_refused_before_any_challenge(refusing: Setup) -> None:
    client = refusing.account()
    answer = client.order("not_a_host!.example.test")
    assert (answer.status, answer.problem_type) == (400, "rejectedIdentifier")
    assert "not_a_host!" in answer.json()["detail"]


def test_a_failed_challenge_makes_the_order_invalid(refusing: Setup) -> None:
    client = refusing.account()
    created = client.order("nobody.example.test")
    order, order_url = created.json(), created.headers["Location"]
    authz = client.post(order["authorizations"][0], None).json()
    http01 = next(c for c in authz["challenges"] if c["type"] == "http-01")
    answer = client.post(http01["url"], {}).json()
    assert answer["status"] == "invalid"
    assert "404" in answer["error"]["detail"]
    assert client.post(order_url, None).json()["status"] == "invalid"


def test_a_csr_that_does_not_match_the_order_is_refused_and_nothing_is_issued(
    refusing: Setup,
) -> None:
    client = refusing.account()
    order = client.order("match.example.test")
    client.answer_challenges(order.json(), "http-01", refusing.web.answers)
    _, csr = csr_for("match.example.test", "extra.example.test")
    answer = client.finalize(order.headers["Location"], csr)
    assert (answer.status, answer.problem_type) == (400, "badCSR")
    assert refusing.app.extensions["pca"].service.get_ca(refusing.ca_id).quota_remaining == 5


def test_quota_exhaustion_is_a_clear_problem(acme: Setup) -> None:
    acme.app.extensions["pca"].service.assign_quota(ADMIN, acme.root_id, acme.ca_id, 0)
    client = acme.account()
    answer = issued(acme, client, "late.example.test")
    assert (answer.status, answer.problem_type) == (403, "rateLimited")
    assert "quota" in answer.json()["detail"]


def test_a_nonce_is_shared_by_every_process_and_survives_a_restart(
    acme: Setup, settings: Settings, clock: SettableClock
) -> None:
    client = acme.account()
    nonce = client.fresh_nonce()
    other = create_app(settings, clock=clock, run_projections=False)  # another worker
    try:
        acme.app = other
        assert client.post(client.kid or "", None, nonce=nonce).status == 200
        replay = client.post(client.kid or "", None, nonce=nonce)
        assert replay.problem_type == "badNonce"
    finally:
        other.extensions["pca"].close()


def test_the_wrong_content_type_is_refused(refusing: Setup) -> None:
    client = refusing.account()
    body = client.signed(client.kid or "", None)
    answer = refusing.transport(
        "POST", client.kid or "", body, {"Content-Type": "application/json"}
    )
    assert (answer.status, answer.problem_type) == (415, "malformed")


def test_a_request_naming_a_jwk_where_a_kid_belongs_is_refused(refusing: Setup) -> None:
    client = refusing.account()
    answer = client.post(client.directory["newOrder"], {"identifiers": []}, use_jwk=True)
    assert (answer.status, answer.problem_type) == (400, "malformed")
    assert "kid" in answer.json()["detail"]


def test_an_unknown_kid_is_refused(refusing: Setup) -> None:
    client = refusing.client()
    client.kid = f"{BASE}/acct/00000000-0000-4000-8000-000000000000"
    answer = client.order("x.example.test")
    assert (answer.status, answer.problem_type) == (400, "accountDoesNotExist")


def test_a_signature_by_another_key_is_refused(refusing: Setup) -> None:
    client = refusing.account()
    impostor = refusing.client()
    impostor.kid = client.kid
    answer = impostor.order("x.example.test")
    assert (answer.status, answer.problem_type) == (400, "malformed")
    assert "signature" in answer.json()["detail"]


def test_renewal_info_suggests_a_window_and_an_order_may_name_what_it_replaces(
    refusing: Setup,
) -> None:
    client = refusing.account()
    chain = client.post(issued(refusing, client, "ari.example.test").json()["certificate"], None)
    leaf = x509.load_pem_x509_certificates(chain.body)[0]
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier is not None
    serial = leaf.serial_number.to_bytes((leaf.serial_number.bit_length() + 8) // 8, "big")
    cert_id = f"{b64(aki.key_identifier)}.{b64(serial)}"
    window = refusing.transport("GET", f"{BASE}/renewal-info/{cert_id}", None, {})
    start = window.json()["suggestedWindow"]["start"]
    assert leaf.not_valid_before_utc.isoformat() < start.replace("Z", "+00:00")
    assert start < window.json()["suggestedWindow"]["end"]
    identifiers = [{"type": "dns", "value": "ari.example.test"}]
    order = client.post(
        client.directory["newOrder"], {"identifiers": identifiers, "replaces": cert_id}
    )
    assert order.json()["replaces"] == cert_id


def test_too_many_orders_are_refused_with_retry_after(
    settings: Settings, clock: SettableClock, loopback: tuple[LoopbackDNS, ChallengeServer]
) -> None:
    limits = AcmeLimits(per_account=100, per_identifier=2, window_seconds=3600)
    limited = dataclasses.replace(settings, acme=AcmeSettings(limits=limits))
    app = create_app(limited, clock=clock, run_projections=False)
    deployment = app.extensions["pca"]
    try:
        ca_id = enabled_intermediate(deployment.service, enabled_root(deployment.service))
        deployment.acme.create_directory(ADMIN, "corp", ca_id)
        setup = Setup(app, ca_id, ca_id, *loopback)
        client = setup.account()
        assert [client.order("busy.example.test").status for _ in range(2)] == [201, 201]
        third = client.order("busy.example.test")
        assert (third.status, third.problem_type) == (429, "rateLimited")
        assert 0 < int(third.headers["Retry-After"]) <= 3600
        assert client.order("calm.example.test").status == 201
    finally:
        deployment.close()


def test_the_issuance_report_names_the_account_that_asked(refusing: Setup) -> None:
    client = refusing.account()
    issued(refusing, client, "audited.example.test")
    api = ApiClient(refusing.app)
    report = api.call("GET", "/api/v1/reports/inventory?format=json", role=Role.AUDITOR)
    rows = [row for row in report.get_json() if row["common_name"] == "audited.example.test"]
    account = (client.kid or "").rsplit("/", 1)[-1]
    assert [row["requested_by"] for row in rows] == [f"acme account {account}"]


def test_operators_open_a_directory_mint_eab_and_see_accounts_and_orders_over_rest(
    acme: Setup,
) -> None:
    api = ApiClient(acme.app)
    body = {"name": "team-b", "ca_id": str(acme.ca_id)}
    created = api.call("POST", "/api/v1/acme/directories", json=body)
    assert created.status_code == 201
    assert created.get_json()["url"].endswith("/acme/team-b/directory")
    again = api.call("POST", "/api/v1/acme/directories", json=body)
    assert again.status_code == 409
    eab = api.call("POST", "/api/v1/acme/directories/team-b/eab").get_json()
    client = AcmeClient(acme.transport, "http://localhost/acme/team-b/directory")
    assert client.register(client.eab(eab["kid"], eab["hmac_key"])).status == 201
    client.order("seen.example.test")
    accounts = api.call("GET", "/api/v1/acme/directories/team-b/accounts", role=Role.AUDITOR)
    (account,) = accounts.get_json()["items"]
    assert (client.kid or "").endswith(account["id"])
    assert account["eab_kid"] == eab["kid"]
    orders = api.call("GET", "/api/v1/acme/directories/team-b/orders", role=Role.AUDITOR)
    assert [(o["account_id"], o["identifiers"]) for o in orders.get_json()["items"]] == [
        (account["id"], ["seen.example.test"])
    ]
    assert (
        api.call("POST", "/api/v1/acme/directories/team-b/eab", role=Role.OPERATOR).status_code
        == 403
    )
    missing = api.call("GET", "/api/v1/acme/directories/nobody/orders", role=Role.AUDITOR)
    assert missing.status_code == 404


def test_an_account_rolls_over_to_a_new_key_and_the_old_one_stops_working(
    acme: Setup,
) -> None:
    client = acme.account()
    old = AcmeClient(acme.transport, f"{BASE}/directory", client.key, client.kid)
    assert client.change_key(ec.generate_private_key(ec.SECP256R1())).status == 200
    assert client.order("rolled.example.test").status == 201
    refused = old.order("rolled.example.test")
    assert (refused.status, refused.problem_type) == (400, "malformed")
    found = client.post(client.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True)
    assert (found.status, found.headers["Location"]) == (200, client.kid)
    taken = acme.account()
    clash = taken.change_key(client.key)
    assert (clash.status, clash.problem_type) == (409, "conflict")


SVC_ONLY = {
    "types": ["server"],
    "dns": {"allow": ["*.svc.example.test"], "wildcards": False},
    "common_name": {"allow": ["*.svc.example.test"]},
    "default_validity_days": 30,
}


def test_a_directory_on_a_profile_offers_only_what_the_profile_allows(refusing: Setup) -> None:
    deployment: Deployment = refusing.app.extensions["pca"]
    policy = policy_from(SVC_ONLY)
    deployment.service.create_profile(ADMIN, refusing.ca_id, "svc", policy)
    deployment.acme.create_directory(ADMIN, "svc", refusing.ca_id, "svc")
    client = AcmeClient(refusing.transport, "http://localhost/acme/svc/directory")
    assert client.register(client.eab(*deployment.acme.create_eab(ADMIN, "svc"))).status == 201

    refused = client.order("db.corp.example.test")
    assert (refused.status, refused.problem_type) == (400, "rejectedIdentifier")
    assert (
        '"db.corp.example.test" is outside the allowed DNS names of profile "svc"'
        in (refused.json()["detail"])
    )
    order = client.order("api.svc.example.test")
    assert order.status == 201, order.body
    client.answer_challenges(order.json(), "http-01", refusing.web.answers)
    final = client.finalize(order.headers["Location"], csr_for("api.svc.example.test")[1])
    assert final.status == 200, final.body
    leaf = x509.load_pem_x509_certificates(client.post(final.json()["certificate"], None).body)[0]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == dt.timedelta(days=30)
    (done,) = deployment.acme.orders("svc")
    assert done.certificate_id is not None
    certificate = deployment.service.get_certificate(done.certificate_id)
    assert (certificate.profile, certificate.profile_version) == ("svc", 1)
