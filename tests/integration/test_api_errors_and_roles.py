"""Access rules on every route, and problem+json errors that say what to change."""

from __future__ import annotations

import time
import uuid

import pytest

import domain.application.tokens
from api.http.app import ALL_ROUTES
from api.http.errors import item_problem
from api.http.openapi import openapi_path
from domain.adapters.settings import Settings, open_service
from domain.application.service import PrivateCA
from domain.model.errors import (
    CAStateError,
    CSRError,
    IdempotencyKeyReusedError,
    PCAError,
    SANError,
    ValidationError,
)
from domain.model.tokens import Role
from tests.api_client import SETUP, ApiClient
from tests.conftest import SettableClock

ROOT = {"kind": "root", "subject": {"common_name": "Errors Root"}}


def _sample_path(rule: str) -> str:
    return (
        openapi_path(rule)
        .replace("{ca_id}", str(uuid.uuid4()))
        .replace("{kind}", "inventory")
        .replace("{certificate_id}", str(uuid.uuid4()))
        .replace("{generation}", "1")
    )


def test_every_flask_route_is_a_declared_operation_with_an_access_rule(api: ApiClient) -> None:
    declared = {
        f"{routes.blueprint.name}.{op.operation_id}"
        for routes in ALL_ROUTES
        for op in routes.operations
    }
    served = {
        rule.endpoint
        for rule in api.app.url_map.iter_rules()
        if rule.endpoint != "static" and not rule.endpoint.startswith("console.")
    }  # the console's pages have their own access rules (tests/integration/test_console.py)
    assert served == declared


@pytest.mark.parametrize(
    ("method", "rule", "required"),
    [
        (op.method, op.rule, op.role)
        for routes in ALL_ROUTES
        for op in routes.operations
        if op.role is not None
    ],
)
def test_protected_routes_refuse_missing_tokens_and_weaker_roles(
    api: ApiClient, method: str, rule: str, required: Role
) -> None:
    path = _sample_path(rule)
    missing = api.call(method, path, role=None)
    assert missing.status_code == 401
    assert missing.mimetype == "application/problem+json"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    bogus = api.client.open(path, method=method, headers={"Authorization": "Bearer pca_nope"})
    assert bogus.status_code == 401
    for weaker in (role for role in Role if not role.allows(required)):
        assert api.call(method, path, role=weaker).status_code == 403


def test_a_revoked_token_is_refused(api: ApiClient) -> None:
    service = api.app.extensions["pca"].service
    token = api.tokens[Role.AUDITOR]
    record = service.authenticate(token)
    assert record is not None
    api.call("GET", "/api/v1/cas/" + str(uuid.uuid4()), role=Role.AUDITOR)
    service.revoke_token(SETUP, record.id)
    assert api.call("GET", "/healthz", role=None).status_code == 200
    assert api.call("GET", f"/api/v1/cas/{uuid.uuid4()}", role=Role.AUDITOR).status_code == 401


def test_a_token_with_a_lifetime_is_refused_once_it_expires(
    api: ApiClient, clock: SettableClock
) -> None:
    service = api.app.extensions["pca"].service
    token, _ = service.create_token(SETUP, "short-lived", Role.AUDITOR, valid_days=1)
    headers = {"Authorization": f"Bearer {token}"}
    assert api.call("GET", "/api/v1/cas", role=None, headers=headers).status_code == 200
    clock.advance(days=1, seconds=1)  # checked on every request, cached record or not
    refused = api.call("GET", "/api/v1/cas", role=None, headers=headers)
    assert refused.status_code == 401
    assert api.call("GET", "/api/v1/cas", role=Role.AUDITOR).status_code == 200  # no expiry
    with pytest.raises(ValidationError, match="valid_days"):
        service.create_token(SETUP, "forever-ish", Role.AUDITOR, valid_days=100_000)


def test_malformed_json_is_a_400_problem(api: ApiClient) -> None:
    response = api.call(
        "POST", "/api/v1/cas", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert "not valid JSON" in response.get_json()["detail"]


def test_deeply_nested_json_is_refused_cleanly(api: ApiClient) -> None:
    body = "[" * 100_000 + "]" * 100_000
    response = api.call(
        "POST", "/api/v1/cas", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_invalid_utf8_is_refused(api: ApiClient) -> None:
    response = api.call(
        "POST",
        "/api/v1/cas",
        data=b'{"kind": "\xff"}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400


def test_an_oversized_body_is_a_413(api: ApiClient) -> None:
    response = api.call(
        "POST",
        "/api/v1/cas",
        data="x" * (2 * 1024 * 1024),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({**ROOT, "colour": "red"}, "colour", "not a known field"),
        ({"subject": {"common_name": "x"}}, "kind", "is required"),
        ({**ROOT, "validity_years": "ten"}, "validity_years", "integer"),
        ({**ROOT, "validity_years": 10**30}, "validity_years", "huge"),
        ({**ROOT, "validity_years": True}, "validity_years", "integer"),
        ({**ROOT, "key_algorithm": "DSA"}, "key_algorithm", "must be one of"),
        ({**ROOT, "subject": {"common_name": "x", "country": "Germany"}}, "subject.country", "2"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(
    api: ApiClient, body: dict[str, object], field: str, words: str
) -> None:
    response = api.call("POST", "/api/v1/cas", json=body)
    problem = response.get_json()
    assert response.status_code == 422
    assert problem["field"] == field
    assert words in problem["detail"]


def test_conflicts_are_409_with_advice(api: ApiClient) -> None:
    root_id = api.call("POST", "/api/v1/cas", json=ROOT).get_json()["id"]
    response = api.call(
        "POST",
        "/api/v1/cas",
        json={"kind": "intermediate", "parent_id": root_id, "subject": {"common_name": "I"}},
    )
    assert response.status_code == 409
    assert "enable it first" in response.get_json()["detail"]


def test_unknown_ids_and_paths_are_404_problems(api: ApiClient) -> None:
    assert api.call("GET", f"/api/v1/cas/{uuid.uuid4()}").status_code == 404
    response = api.client.get("/nowhere")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_the_wrong_method_is_a_405_problem_naming_the_allowed_ones(api: ApiClient) -> None:
    response = api.client.put("/healthz")
    assert response.status_code == 405
    assert response.mimetype == "application/problem+json"
    assert response.headers["Allow"] == "GET, HEAD, OPTIONS"
    trace = api.client.open(f"/api/v1/cas/{uuid.uuid4()}/enable", method="TRACE")
    assert (trace.status_code, trace.headers["Allow"]) == (405, "OPTIONS, POST")


@pytest.mark.parametrize(
    ("body", "field", "detail"),
    [
        ({"count": 1000.0}, None, None),  # an integer to JSON Schema, so accepted
        ({"count": 2.5}, "count", "count must be an integer from 1 to 10000000."),
        ({"count": 0}, "count", "count must be from 1 to 10000000; got 0."),
    ],
)
def test_integers_may_come_with_a_zero_fraction_and_errors_state_the_range(
    api: ApiClient, body: dict[str, object], field: str | None, detail: str | None
) -> None:
    root_id = api.call("POST", "/api/v1/cas", json=ROOT).get_json()["id"]
    response = api.call("POST", f"/api/v1/cas/{root_id}/quota/purchases", json=body)
    if field is None:
        assert response.status_code < 300, response.get_json()
        return
    assert response.status_code == 422
    assert (response.get_json()["field"], response.get_json()["detail"]) == (field, detail)


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/api/v1/events?limit=100000", "limit must be from 1 to 1000; got 100000."),
        ("/api/v1/events?limit=0", "limit must be from 1 to 1000; got 0."),
        ("/api/v1/events?limit=ten", "limit must be a whole number from 1 to 1000; got 'ten'."),
    ],
)
def test_numeric_query_values_are_refused_with_their_range(
    api: ApiClient, path: str, detail: str
) -> None:
    response = api.call("GET", path, role=Role.AUDITOR)
    assert (response.status_code, response.get_json()["detail"]) == (422, detail)


def test_a_long_text_is_refused_with_its_longest_length(api: ApiClient) -> None:
    subject = {"common_name": "x", "locality": "L" * 129}
    response = api.call("POST", "/api/v1/cas", json={**ROOT, "subject": subject})
    assert response.get_json()["detail"] == (
        "subject.locality must be at most 128 characters long."
    )


@pytest.mark.parametrize(
    ("error", "title", "slug"),
    [
        (SANError("bad SAN"), "SAN", "san"),
        (CSRError("bad CSR"), "CSR", "csr"),
        (CAStateError("bad state"), "CA state", "ca-state"),
        (IdempotencyKeyReusedError("reused"), "Idempotency key reused", "idempotency-key-reused"),
    ],
)
def test_problem_titles_and_types_read_as_words(error: PCAError, title: str, slug: str) -> None:
    problem = item_problem(error)
    assert (problem["title"], problem["type"]) == (title, f"https://pca.dev/problems/{slug}")


def test_invalid_input_stores_nothing(api: ApiClient) -> None:
    service = api.app.extensions["pca"].service
    before = service.recorder.max_notification_id()
    api.call("POST", "/api/v1/cas", json={**ROOT, "subject": {"common_name": ""}})
    api.call("POST", "/api/v1/cas", json={**ROOT, "validity_years": 0})
    assert service.recorder.max_notification_id() == before


def test_a_busy_token_revoked_by_another_process_is_refused_once_its_record_ages(
    service: PrivateCA, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cached record's age counts from its load: constant use must not keep it alive."""
    monkeypatch.setattr(domain.application.tokens, "TOKEN_CACHE_SECONDS", 0.3)
    token, outcome = service.create_token(SETUP, "busy", Role.OPERATOR)
    other = open_service(settings)  # another worker process on the same store
    try:
        assert service.authenticate(token) is not None
        other.revoke_token(SETUP, outcome.id)
        deadline = time.monotonic() + 30  # a bound; the record ages in 0.3 s
        while service.authenticate(token) is not None and time.monotonic() < deadline:
            time.sleep(0.05)  # in use all along, as a busy client would keep it
        assert service.authenticate(token) is None
        assert time.monotonic() < deadline
    finally:
        other.close()
        other.keystore.close()
