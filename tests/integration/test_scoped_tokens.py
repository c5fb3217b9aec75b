"""Tokens limited to some CAs and profiles: made over HTTP and the CLI's service call,
listed with their scope, and refused with 403 naming the scope outside it."""

from __future__ import annotations

from typing import Any

import pytest

from domain.application.service import PrivateCA
from domain.model.policy import IssuancePolicy
from domain.model.tokens import Role
from tests.api_client import ApiClient
from tests.builders import ADMIN, enabled_intermediate, enabled_root, issuance_events_after

TOKENS = "/api/v1/tokens"


@pytest.fixture
def cas(api: ApiClient) -> tuple[str, str]:
    """Two intermediates; the first has a profile "web"."""
    service: PrivateCA = api.app.extensions["pca"].service
    root_id = enabled_root(service, quota=10)
    first = enabled_intermediate(service, root_id, remaining=5)
    second = enabled_intermediate(service, root_id, remaining=5)
    service.create_profile(ADMIN, first, "web", IssuancePolicy())
    return str(first), str(second)


def _scoped(api: ApiClient, **scope: Any) -> dict[str, Any]:
    body = {"name": "team-web", "role": "operator", **scope}
    response = api.call("POST", TOKENS, json=body)
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def _issue(api: ApiClient, token: str, ca_id: str, **extra: Any) -> Any:
    body = {"type": "server", "common_name": "a.example", "validity_days": 5, **extra}
    return api.client.post(
        f"/api/v1/cas/{ca_id}/certificates",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


def test_a_scoped_token_issues_inside_its_scope_only(api: ApiClient, cas: tuple[str, str]) -> None:
    first, second = cas
    token = _scoped(api, ca_ids=[first], profiles=["web"])["token"]
    service: PrivateCA = api.app.extensions["pca"].service
    head = service.recorder.max_notification_id() or 0

    other_ca = _issue(api, token, second, profile="web")
    assert other_ca.status_code == 403
    assert other_ca.mimetype == "application/problem+json"
    assert f'limited to CAs {first} and profiles "web"' in other_ca.get_json()["detail"]
    default = _issue(api, token, first)
    assert default.status_code == 403
    assert default.get_json()["field"] == "profile"
    assert 'profile "default" is outside it' in default.get_json()["detail"]
    assert issuance_events_after(service, head) == []

    issued = _issue(api, token, first, profile="web")
    assert issued.status_code == 201, issued.get_json()
    assert issued.get_json()["profile"] == "web"


def test_a_scoped_token_cannot_revoke_certificates_of_other_cas(
    api: ApiClient, cas: tuple[str, str]
) -> None:
    first, second = cas
    elsewhere = api.call(
        "POST",
        f"/api/v1/cas/{second}/certificates",
        role=Role.OPERATOR,
        json={"type": "server", "common_name": "b.example", "validity_days": 5},
    ).get_json()
    token = _scoped(api, ca_ids=[first])["token"]
    refused = api.client.post(
        f"/api/v1/certificates/{elsewhere['id']}/revoke",
        json={},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 403
    assert refused.get_json()["field"] == "ca_id"


def test_tokens_are_listed_with_their_scope(api: ApiClient, cas: tuple[str, str]) -> None:
    first, _ = cas
    made = _scoped(api, ca_ids=[first], profiles=["web"])
    listed = api.call("GET", TOKENS).get_json()["items"]
    shown = next(item for item in listed if item["id"] == made["id"])
    assert (shown["cas"], shown["profiles"]) == ([first], ["web"])
    assert made["token"] not in str(listed)
    unscoped = next(item for item in listed if item["name"] == "test-operator")
    assert (unscoped["cas"], unscoped["profiles"]) == ([], [])


def test_a_scope_names_existing_cas(api: ApiClient) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    body = {"name": "x", "role": "operator", "ca_ids": [unknown]}
    response = api.call("POST", TOKENS, json=body)
    assert response.status_code == 404
    assert response.get_json()["field"] == "ca_ids"
