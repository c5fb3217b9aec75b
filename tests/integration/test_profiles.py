"""Certificate profiles over HTTP: each rule refuses with a 422 that names the rule, the
value and what the profile allows, stores nothing; what a profile allows is issued as it
says (key usages, fixed subject fields, default validity) and records the profile."""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from domain.adapters.settings import Settings
from domain.application.service import PrivateCA
from domain.model.tokens import Role
from projections.audit.reports import ReportFormat, ReportKind, ReportParameters, write_report
from tests.api_client import ApiClient
from tests.builders import enabled_intermediate, enabled_root, issuance_events_after

PROFILES = "/api/v1/cas/{}/profiles"
ISSUE = "/api/v1/cas/{}/certificates"

WEB = {
    "types": ["server"],
    "dns": {"allow": ["*.svc.example", "api.example"], "deny": ["*.secret.svc.example"]},
    "allow_wildcards": False,
    "ip": {"allow": ["10.1.0.0/16"], "deny": ["10.1.9.0/24"]},
    "common_name": {"allow": ["*.svc.example", "api.example"]},
    "key_algorithms": ["EC_P256", "RSA_2048"],
    "max_validity_days": 90,
    "default_validity_days": 30,
    "subject_fields": ["organizational_unit"],
    "fixed_subject": {"organization": "Example Corp", "country": "de"},
}
PEOPLE = {
    "types": ["client"],
    "email": {"allow": ["example.com", "*.example.com"], "deny": ["ex.example.com"]},
    "uri": {"allow": ["urn:example:team:"]},
    "common_name": {},
    "extended_key_usage": ["client_auth", "email_protection"],
    "key_usage": ["digital_signature", "content_commitment"],
    "include_crl": False,
}


def _p384_csr() -> str:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "a.svc.example")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA384())
    return csr.public_bytes(Encoding.PEM).decode()


def _server(name: str = "a.svc.example", **extra: Any) -> dict[str, Any]:
    return {"type": "server", "common_name": name, "profile": "web", **extra}


def _client(name: str = "dev", **extra: Any) -> dict[str, Any]:
    return {
        "type": "client",
        "common_name": name,
        "validity_days": 30,
        "profile": "people",
        **extra,
    }


def _with_profiles(api: ApiClient) -> str:
    """An intermediate with the profiles "web" and "people"."""
    service: PrivateCA = api.app.extensions["pca"].service
    ca = str(enabled_intermediate(service, enabled_root(service, quota=20), remaining=20))
    for name, policy in (("web", WEB), ("people", PEOPLE)):
        response = api.call("POST", PROFILES.format(ca), json={"name": name, "policy": policy})
        assert response.status_code == 201, response.get_json()
    return ca


@pytest.fixture
def ca_id(api: ApiClient) -> str:
    """An intermediate with the profiles "web" and "people", on SQLite and PostgreSQL."""
    return _with_profiles(api)


@pytest.fixture
def sqlite_ca_id(sqlite_api: ApiClient) -> str:
    """The same on SQLite alone, for the tables of rules (no rule depends on the store)."""
    return _with_profiles(sqlite_api)


REFUSALS = [
    pytest.param(
        _server("x.corp.example"),
        "common_name",
        '"x.corp.example" is outside the allowed common names of profile "web": allowed are'
        ' "*.svc.example", "api.example".',
        id="allow-list",
    ),
    pytest.param(
        _server(sans=[{"type": "dns", "value": "*.corp.example"}]),
        "sans[0].value",
        "wildcard",
        id="wildcard",
    ),
    pytest.param(
        _server(sans=[{"type": "dns", "value": "db.corp.example"}]),
        "sans[0].value",
        '"db.corp.example" is outside the allowed DNS names of profile "web": allowed are'
        ' "*.svc.example", "api.example".',
        id="dns-allow",
    ),
    pytest.param(
        _server(sans=[{"type": "dns", "value": "k.secret.svc.example"}]),
        "sans[0].value",
        '"k.secret.svc.example" is denied by profile "web", which excludes DNS names matching'
        ' "*.secret.svc.example".',
        id="dns-deny",
    ),
    pytest.param(
        _server(sans=[{"type": "ip", "value": "10.2.0.1"}]),
        "sans[0].value",
        '"10.2.0.1" is outside the allowed IP addresses of profile "web": allowed are'
        ' "10.1.0.0/16".',
        id="ip-network",
    ),
    pytest.param(
        _server(sans=[{"type": "ip", "value": "10.1.9.7"}]),
        "sans[0].value",
        "excludes IP addresses matching",
        id="ip-deny",
    ),
    pytest.param(
        _client(sans=[{"type": "email", "value": "eve@evil.example"}]),
        "sans[0].value",
        '"eve@evil.example" is outside the allowed e-mail domains of profile "people"',
        id="email-domain",
    ),
    pytest.param(
        _client(sans=[{"type": "email", "value": "eve@ex.example.com"}]),
        "sans[0].value",
        "is denied by profile",
        id="email-deny",
    ),
    pytest.param(
        _client(sans=[{"type": "uri", "value": "urn:example:ops:x"}]),
        "sans[0].value",
        'allowed are "urn:example:team:"',
        id="uri-prefix",
    ),
    pytest.param(
        _server(key_algorithm="EC_P384"),
        "key_algorithm",
        '"EC_P384" is outside the allowed key algorithms of profile "web": allowed are'
        ' "EC_P256", "RSA_2048".',
        id="key-algorithm",
    ),
    pytest.param(
        _server(csr=_p384_csr()),
        "csr",
        "allowed key algorithms",
        id="key-algorithm-of-csr",
    ),
    pytest.param(_server(validity_days=91), "validity_days", "at most 90 days", id="validity"),
    pytest.param(
        _server(type="client", sans=[{"type": "email", "value": "a@example.com"}]),
        "type",
        '"client" is outside the allowed certificate types of profile "web"',
        id="type",
    ),
    pytest.param(
        _server(subject={"organization": "Other Corp"}),
        "subject.organization",
        "fixes",
        id="fixed-subject",
    ),
    pytest.param(
        _server(subject={"locality": "Berlin"}),
        "subject.locality",
        "may not be set",
        id="subject-field",
    ),
]


@pytest.mark.parametrize(("body", "field", "detail"), REFUSALS)
def test_a_request_outside_its_profile_is_refused_naming_the_rule_and_nothing_is_stored(
    sqlite_api: ApiClient, sqlite_ca_id: str, body: dict[str, Any], field: str, detail: str
) -> None:
    api, ca_id = sqlite_api, sqlite_ca_id
    service: PrivateCA = api.app.extensions["pca"].service
    head = service.recorder.max_notification_id() or 0
    response = api.call("POST", ISSUE.format(ca_id), role=Role.OPERATOR, json=body)
    problem = response.get_json()
    assert response.status_code == 422, problem
    assert response.mimetype == "application/problem+json"
    assert problem["field"] == field
    assert detail in problem["detail"]
    assert issuance_events_after(service, head) == []
    assert api.call("GET", f"/api/v1/cas/{ca_id}").get_json()["quota"]["remaining"] == 20


def test_a_profile_shapes_what_it_allows(api: ApiClient, ca_id: str) -> None:
    """Default validity, fixed subject fields and the profile's name and version."""
    body = _server("api.example", subject={"organizational_unit": "Web"})
    response = api.call("POST", ISSUE.format(ca_id), role=Role.OPERATOR, json=body)
    shown = response.get_json()
    assert response.status_code == 201, shown
    assert (shown["profile"], shown["profile_version"]) == ("web", 1)
    certificate = x509.load_pem_x509_certificate(shown["certificate_pem"].encode())
    subject = certificate.subject
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Example Corp"
    assert subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "DE"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "Web"
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert dt.timedelta(days=30) <= lifetime <= dt.timedelta(days=30, minutes=2)
    fetched = api.call("GET", f"/api/v1/certificates/{shown['id']}").get_json()
    assert fetched["profile"] == "web"


def test_a_profile_sets_key_usage_extended_key_usage_and_crl_address(
    api: ApiClient, ca_id: str
) -> None:
    body = _client(sans=[{"type": "email", "value": "dev@team.example.com"}], include_crl=True)
    response = api.call("POST", ISSUE.format(ca_id), role=Role.OPERATOR, json=body)
    assert response.status_code == 201, response.get_json()
    pem = response.get_json()["certificate_pem"].encode()
    extensions = x509.load_pem_x509_certificate(pem).extensions
    ekus = extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(ekus) == [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.EMAIL_PROTECTION]
    usage = extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature
    assert usage.content_commitment
    assert not usage.key_encipherment
    with pytest.raises(x509.ExtensionNotFound):  # the profile leaves the CRL address out
        extensions.get_extension_for_class(x509.CRLDistributionPoints)


def test_requests_without_a_profile_keep_todays_rules(api: ApiClient, ca_id: str) -> None:
    body = {"type": "server", "common_name": "db.corp.example", "validity_days": 400}
    response = api.call("POST", ISSUE.format(ca_id), role=Role.OPERATOR, json=body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["profile"] == "default"
    listed = api.call("GET", PROFILES.format(ca_id), role=Role.AUDITOR).get_json()["items"]
    assert [item["name"] for item in listed] == ["default", "people", "web"]


def test_an_updated_profile_applies_to_later_requests_and_a_retired_one_to_none(
    api: ApiClient, ca_id: str
) -> None:
    narrower = {**WEB, "dns": {"allow": ["api.example"]}, "common_name": {}}
    updated = api.call("PUT", f"{PROFILES.format(ca_id)}/web", json={"policy": narrower})
    assert updated.get_json()["version"] == 2
    refused = api.call("POST", ISSUE.format(ca_id), role=Role.OPERATOR, json=_server())
    assert refused.status_code == 422
    assert 'allowed are "api.example"' in refused.get_json()["detail"]
    issued = api.call("POST", ISSUE.format(ca_id), role=Role.OPERATOR, json=_server("api.example"))
    assert issued.get_json()["profile_version"] == 2
    retired = api.call("POST", f"{PROFILES.format(ca_id)}/web/retire")
    assert retired.get_json()["retired"] is True
    late = api.call("POST", ISSUE.format(ca_id), role=Role.OPERATOR, json=_server("api.example"))
    assert late.status_code == 409
    assert "retired" in late.get_json()["detail"]


def test_a_batch_item_outside_its_profile_fails_alone(api: ApiClient, ca_id: str) -> None:
    items = [_server("api.example"), _server("db.corp.example")]
    response = api.call(
        "POST", f"{ISSUE.format(ca_id)}:batch", role=Role.OPERATOR, json={"items": items}
    )
    results = response.get_json()["results"]
    assert [result["status"] for result in results] == [201, 422]
    assert "outside the allowed common names" in results[1]["problem"]["detail"]


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"ip": {"allow": ["10.1.0.0/33"]}}, "policy.ip.allow[0]"),
        ({"dns": {"deny": ["bad name"]}}, "policy.dns.deny[0]"),
        ({"uri": {"allow": ["example.org/"]}}, "policy.uri.allow[0]"),
        ({"max_validity_days": 10, "default_validity_days": 20}, "policy.default_validity_days"),
        ({"fixed_subject": {"country": "XX"}}, "policy.fixed_subject.country"),
    ],
)
def test_a_bad_policy_is_refused_naming_its_field(
    sqlite_api: ApiClient, sqlite_ca_id: str, policy: dict[str, Any], field: str
) -> None:
    api, ca_id = sqlite_api, sqlite_ca_id
    response = api.call("POST", PROFILES.format(ca_id), json={"name": "bad", "policy": policy})
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["field"] == field
    names = [p["name"] for p in api.call("GET", PROFILES.format(ca_id)).get_json()["items"]]
    assert "bad" not in names


def test_the_issuance_report_names_each_certificates_profile(
    api: ApiClient, ca_id: str, settings: Settings
) -> None:
    issued = api.call("POST", ISSUE.format(ca_id), role=Role.OPERATOR, json=_server())
    out = io.BytesIO()
    write_report(settings, ReportKind.ISSUANCE, ReportFormat.JSON, ReportParameters(), out)
    rows = {row["certificate_id"]: row for row in json.loads(out.getvalue())}
    row = rows[issued.get_json()["id"]]
    assert (row["profile"], row["profile_version"]) == ("web", 1)


def _csr_for(common_name: str, *dns_names: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    if dns_names:
        names = [x509.DNSName(name) for name in dns_names]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.PEM).decode()


def test_a_profile_may_take_names_from_the_csr(api: ApiClient, ca_id: str) -> None:
    made = api.call(
        "POST", PROFILES.format(ca_id), json={"name": "acme", "policy": {"names_from": "csr"}}
    )
    assert made.get_json()["policy"]["names_from"] == "csr"
    csr = _csr_for("a.svc.example", "a.svc.example", "b.svc.example")
    body = {"type": "server", "common_name": "a.svc.example", "validity_days": 5}
    issue = functools.partial(api.call, "POST", ISSUE.format(ca_id), role=Role.OPERATOR)

    issued = issue(json={**body, "profile": "acme", "csr": csr})
    assert issued.status_code == 201, issued.get_json()
    sans = [san["value"] for san in issued.get_json()["sans"]]
    assert sans == ["a.svc.example", "b.svc.example"]

    other = issue(json={**body, "common_name": "c.svc.example", "profile": "acme", "csr": csr})
    assert (other.status_code, other.get_json()["field"]) == (422, "common_name")
    assert "differs from the CSR's" in other.get_json()["detail"]
    without = issue(json={**body, "profile": "acme"})
    assert (without.status_code, without.get_json()["field"]) == (422, "csr")
    today = issue(json={**body, "csr": csr})  # the default profile: names from the body
    assert [san["value"] for san in today.get_json()["sans"]] == ["a.svc.example"]
