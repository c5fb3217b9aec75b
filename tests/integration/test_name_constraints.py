"""Name constraints on an intermediate: critical in its certificate, enforced by the
service before signing, and by relying parties (openssl) on any certificate under it;
pkilint finds no error in the constrained intermediate or its leaves."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from domain.application.service import PrivateCA
from domain.model.errors import PolicyError
from domain.model.values import SAN, SANType
from tests.api_client import ApiClient
from tests.builders import enabled_root, issuance_events_after
from tests.pki import write_pem

CONSTRAINTS = {
    "permitted": [
        {"type": "dns", "value": "svc.example"},
        {"type": "ip", "value": "10.1.0.0/16"},
        {"type": "email", "value": "example.com"},
        {"type": "uri", "value": ".svc.example"},
    ],
    "excluded": [{"type": "dns", "value": "secret.svc.example"}],
}


def _constrained_intermediate(api: ApiClient) -> str:
    service: PrivateCA = api.app.extensions["pca"].service
    root_id = enabled_root(service, quota=10)
    body = {
        "kind": "intermediate",
        "parent_id": str(root_id),
        "subject": {"common_name": "Constrained Issuing CA", "organization": "Example Corp"},
        "name_constraints": CONSTRAINTS,
    }
    created = api.call("POST", "/api/v1/cas", json=body)
    assert created.status_code == 201, created.get_json()
    ca_id = created.get_json()["id"]
    api.call("POST", f"/api/v1/cas/{ca_id}/enable")
    assigned = api.call(
        "POST",
        f"/api/v1/cas/{root_id}/quota/assignments",
        json={"intermediate_id": ca_id, "remaining": 5},
    )
    assert assigned.status_code == 201
    return str(ca_id)


def _issue(api: ApiClient, ca_id: str, **body: Any) -> Any:
    request = {"type": "server", "validity_days": 30, **body}
    return api.call("POST", f"/api/v1/cas/{ca_id}/certificates", json=request)


def _outside_leaf(service: PrivateCA, ca_id: str, name: str) -> x509.Certificate:
    """A leaf for ``name`` signed with the intermediate's own key, outside the service."""
    ca = service.get_ca(UUID(ca_id))
    ca_der, key_ref = ca.signing_identity()
    issuer = x509.load_der_x509_certificate(ca_der)
    issuer_key = service.keystore.get(key_ref.key_id)
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def _openssl_verify(tmp_path: Path, chain: list[bytes], leaf: bytes) -> str:
    root = tmp_path / "root.pem"
    root.write_bytes(chain[-1])
    untrusted = tmp_path / "untrusted.pem"
    untrusted.write_bytes(b"".join(chain[:-1]))
    target = tmp_path / "leaf.pem"
    target.write_bytes(leaf)
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", root, "-untrusted", untrusted, target],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout + result.stderr


def test_the_constraints_are_critical_in_the_intermediate_certificate(api: ApiClient) -> None:
    ca_id = _constrained_intermediate(api)
    shown = api.call("GET", f"/api/v1/cas/{ca_id}").get_json()
    assert shown["name_constraints"] == CONSTRAINTS
    certificate = x509.load_pem_x509_certificate(shown["certificate_pem"].encode())
    extension = certificate.extensions.get_extension_for_class(x509.NameConstraints)
    assert extension.critical
    assert x509.DNSName("svc.example") in (extension.value.permitted_subtrees or [])
    assert x509.DNSName("secret.svc.example") in (extension.value.excluded_subtrees or [])


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"common_name": "db.corp.example"}, "outside the permitted dns subtrees"),
        ({"common_name": "k.secret.svc.example"}, 'excluded subtree "secret.svc.example"'),
        (
            {"common_name": "a.svc.example", "sans": [{"type": "ip", "value": "10.2.0.1"}]},
            'permitted are "10.1.0.0/16"',
        ),
    ],
)
def test_a_name_outside_the_constraints_is_refused_before_signing(
    sqlite_api: ApiClient, body: dict[str, Any], detail: str
) -> None:
    api = sqlite_api
    ca_id = _constrained_intermediate(api)
    service: PrivateCA = api.app.extensions["pca"].service
    head = service.recorder.max_notification_id() or 0
    refused = _issue(api, ca_id, **body)
    assert refused.status_code == 422, refused.get_json()
    assert detail in refused.get_json()["detail"]
    assert issuance_events_after(service, head) == []


def test_a_profile_may_only_narrow_the_constraints(api: ApiClient) -> None:
    ca_id = _constrained_intermediate(api)
    wider = {"name": "wide", "policy": {"dns": {"allow": ["*.example"]}}}
    refused = api.call("POST", f"/api/v1/cas/{ca_id}/profiles", json=wider)
    assert refused.status_code == 422
    assert refused.get_json()["field"] == "policy.dns.allow[0]"
    narrower = {"name": "web", "policy": {"dns": {"allow": ["*.web.svc.example"]}}}
    assert api.call("POST", f"/api/v1/cas/{ca_id}/profiles", json=narrower).status_code == 201


@pytest.mark.parametrize(
    ("rule", "allow", "refusal"),
    [
        ("email", "*.example.com", "reaches outside the CA's permitted email subtrees"),
        ("email", "example.org", "reaches outside the CA's permitted email subtrees"),
        ("uri", "urn:example:team:", "does not fix a host"),
        ("uri", "https://api.svc.example", "does not fix a host"),
        ("uri", "https://api.other.example/", "reaches outside the CA's permitted uri subtrees"),
        ("email", "example.com", None),
        ("uri", "https://api.svc.example/v1/", None),
    ],
)
def test_a_profile_may_only_narrow_the_email_and_uri_constraints(
    sqlite_api: ApiClient, rule: str, allow: str, refusal: str | None
) -> None:
    ca_id = _constrained_intermediate(sqlite_api)
    body = {"name": "people", "policy": {"types": ["client"], rule: {"allow": [allow]}}}
    answer = sqlite_api.call("POST", f"/api/v1/cas/{ca_id}/profiles", json=body)
    if refusal is None:
        assert answer.status_code == 201, answer.get_json()
        return
    assert answer.status_code == 422, answer.get_json()
    assert answer.get_json()["field"] == f"policy.{rule}.allow[0]"
    assert refusal in answer.get_json()["detail"]


def test_the_acme_question_is_answered_before_any_order(api: ApiClient) -> None:
    ca_id = UUID(_constrained_intermediate(api))
    service: PrivateCA = api.app.extensions["pca"].service
    service.check_identifier(ca_id, "default", SAN(SANType.DNS, "API.svc.example"))
    with pytest.raises(PolicyError, match="outside the permitted dns subtrees"):
        service.check_identifier(ca_id, "default", SAN(SANType.DNS, "api.corp.example"))


@pytest.mark.slow
def test_openssl_refuses_a_leaf_outside_the_constraints_and_accepts_ours(
    sqlite_api: ApiClient, tmp_path: Path
) -> None:
    api = sqlite_api
    ca_id = _constrained_intermediate(api)
    issued = _issue(api, ca_id, common_name="a.svc.example").get_json()
    chain = [block.encode() for block in _pem_blocks(issued["chain_pem"])]
    ours = _openssl_verify(tmp_path, chain, issued["certificate_pem"].encode())
    assert "leaf.pem: OK" in ours

    service: PrivateCA = api.app.extensions["pca"].service
    outside = _outside_leaf(service, ca_id, "evil.corp.example")
    write_pem(tmp_path / "outside.pem", outside)
    theirs = _openssl_verify(tmp_path, chain, (tmp_path / "outside.pem").read_bytes())
    assert "permitted subtree violation" in theirs
    assert "OK" not in theirs.split(":")[-1]


@pytest.mark.slow
def test_pkilint_finds_no_error_in_the_constrained_intermediate_and_its_leaves(
    sqlite_api: ApiClient, tmp_path: Path
) -> None:
    api = sqlite_api
    ca_id = _constrained_intermediate(api)
    server = _issue(api, ca_id, common_name="a.svc.example").get_json()
    client = _issue(
        api,
        ca_id,
        type="client",
        common_name="Dev",
        sans=[{"type": "email", "value": "dev@example.com"}],
    ).get_json()
    intermediate = _pem_blocks(server["chain_pem"])[0]
    for name, pem in (
        ("intermediate", intermediate),
        ("server", server["certificate_pem"]),
        ("client", client["certificate_pem"]),
    ):
        path = tmp_path / f"{name}.pem"
        path.write_text(pem)
        findings = _pkilint(path)
        assert findings == [], (name, findings)


def _pkilint(path: Path) -> list[dict[str, Any]]:
    """pkilint's RFC 5280 findings of severity ERROR or worse."""
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "lint_pkix_cert"),
            "lint",
            "-s",
            "ERROR",
            "-f",
            "JSON",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(result.stdout)
    return [finding for item in report["results"] for finding in item["finding_descriptions"]]


def _pem_blocks(text: str) -> list[str]:
    end = "-----END CERTIFICATE-----"
    return [block + end + "\n" for block in text.split(end) if block.strip()]
