"""Renewing a CA's service period over HTTP: it never outlives the CA's certificate, an
expired CA is refused with advice, and a refused renewal records nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

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
            "subject": {"common_name": "Short-lived CA"},
            "validity_years": 1,
            "service_days": service_days,
        },
    )
    ca_id = created.get_json()["id"]
    enabled = api.call("POST", f"/api/v1/cas/{ca_id}/enable")
    assert enabled.status_code == 200, enabled.get_json()
    ca: dict[str, Any] = enabled.get_json()
    return ca


def _time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _head(api: ApiClient) -> int:
    head: int = api.app.extensions["pca"].service.recorder.max_notification_id()
    return head


def test_a_service_longer_than_the_certificate_ends_with_it(api: ApiClient) -> None:
    ca = _intermediate(api, service_days=1000)
    assert ca["service_until"] == ca["not_after"]


def test_renewal_never_runs_past_the_ca_certificate(api: ApiClient) -> None:
    ca = _intermediate(api, service_days=300)
    left = (_time(ca["not_after"]) - _time(ca["service_until"])).days
    head = _head(api)
    refused = api.call("POST", f"/api/v1/cas/{ca['id']}/renew", json={"service_days": left + 1})
    assert (refused.status_code, refused.get_json()["field"]) == (409, "service_days")
    assert f"ask for at most {left} days" in refused.get_json()["detail"]
    assert _head(api) == head

    renewed = api.call("POST", f"/api/v1/cas/{ca['id']}/renew", json={"service_days": left})
    assert renewed.status_code == 200, renewed.get_json()
    assert _time(renewed.get_json()["service_until"]) <= _time(ca["not_after"])


def test_an_expired_ca_is_not_renewed_and_nothing_is_recorded(
    api: ApiClient, clock: SettableClock
) -> None:
    ca = _intermediate(api, service_days=300)
    clock.now = _time(ca["not_after"]) + dt.timedelta(days=1)
    head = _head(api)
    refused = api.call("POST", f"/api/v1/cas/{ca['id']}/renew", json={"service_days": 30})
    assert refused.status_code == 409
    assert "expired on" in refused.get_json()["detail"]
    assert "Create and enable a new CA" in refused.get_json()["detail"]
    assert _head(api) == head
    shown = api.call("GET", f"/api/v1/cas/{ca['id']}").get_json()
    assert (shown["status"], shown["service_until"]) == ("expired", ca["service_until"])
