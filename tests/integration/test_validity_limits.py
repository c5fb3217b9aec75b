"""Validity near the end of a CA's service period, over HTTP: the refusal says when the
service ends and what to ask for instead, and an explicit not_after is accepted within the
same limits."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cryptography import x509

from domain.model.tokens import Role
from tests.api_client import ApiClient
from tests.conftest import SettableClock
from tests.integration.test_api_flow import _root


def _intermediate(api: ApiClient, service_days: int) -> dict[str, Any]:
    root_id = _root(api)
    created = api.call(
        "POST",
        "/api/v1/cas",
        json={
            "kind": "intermediate",
            "parent_id": root_id,
            "subject": {"common_name": f"{service_days}-day CA"},
            "service_days": service_days,
        },
    )
    ca_id = created.get_json()["id"]
    api.call("POST", f"/api/v1/cas/{ca_id}/enable")
    api.call(
        "POST",
        f"/api/v1/cas/{root_id}/quota/assignments",
        json={"intermediate_id": ca_id, "remaining": 5},
    )
    ca: dict[str, Any] = api.call("GET", f"/api/v1/cas/{ca_id}").get_json()
    return ca


def _issue(api: ApiClient, ca_id: str, **validity: Any) -> Any:
    body = {"type": "server", "common_name": "edge.example.com", **validity}
    return api.call("POST", f"/api/v1/cas/{ca_id}/certificates", role=Role.OPERATOR, json=body)


def test_a_one_day_service_says_when_it_ends_and_takes_an_explicit_end(
    api: ApiClient, clock: SettableClock
) -> None:
    ca = _intermediate(api, service_days=1)
    clock.advance(seconds=5)
    refused = _issue(api, ca["id"], validity_days=1)
    assert refused.status_code == 409  # the request is fine; the CA's period is too short
    problem = refused.get_json()
    assert problem["field"] == "validity_days"
    ends = ca["service_until"].replace("Z", "+00:00")
    assert f"after the CA's service period ends on {ends}" in problem["detail"]
    assert f"ask for not_after no later than {ends}" in problem["detail"]
    assert "renew the CA's service period" in problem["detail"]
    assert "at most 0" not in problem["detail"]

    end = dt.datetime.fromisoformat(ends) - dt.timedelta(hours=1)
    issued = _issue(api, ca["id"], not_after=end.isoformat())
    assert issued.status_code == 201, issued.get_json()
    certificate = x509.load_pem_x509_certificate(issued.get_json()["certificate_pem"].encode())
    assert certificate.not_valid_after_utc == end

    too_late = _issue(api, ca["id"], not_after=(end + dt.timedelta(hours=2)).isoformat())
    assert (too_late.status_code, too_late.get_json()["field"]) == (409, "not_after")


def test_a_thirty_day_service_offers_the_days_left_or_its_end(
    api: ApiClient, clock: SettableClock
) -> None:
    ca = _intermediate(api, service_days=30)
    clock.advance(seconds=5)
    refused = _issue(api, ca["id"], validity_days=30).get_json()
    ends = ca["service_until"].replace("Z", "+00:00")
    assert (
        f"ask for validity_days of at most 29 or not_after no later than {ends}"
        in refused["detail"]
    )
    assert _issue(api, ca["id"], not_after=ca["service_until"]).status_code == 201
    assert _issue(api, ca["id"], validity_days=29).status_code == 201


def test_validity_days_and_not_after_are_one_or_the_other(api: ApiClient) -> None:
    ca = _intermediate(api, service_days=30)
    both = _issue(api, ca["id"], validity_days=2, not_after="2099-01-01T00:00:00Z")
    neither = _issue(api, ca["id"])
    past = _issue(api, ca["id"], not_after="2001-01-01T00:00:00Z")
    for refused, field in ((both, "not_after"), (neither, "validity_days")):
        assert (refused.status_code, refused.get_json()["field"]) == (422, field)
    assert (past.status_code, past.get_json()["field"]) == (409, "not_after")
