"""A forged history stops the CA: the log is edited behind the service's back (a purchase
of 100 certificates made 900), the service restarts over real SQLite and PostgreSQL, and
every command is refused over HTTP while reads and the audit routes stay open (the same
from the command line: tests/e2e/test_audit_cli.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from api.http.app import create_app
from domain.adapters.settings import Settings
from domain.model.tokens import Role
from tests.api_client import ApiClient
from tests.conftest import SettableClock
from tests.integration.test_api_flow import _intermediate, _issue, _root, settled
from tests.integration.test_audit_chain import RawStore

RESTORE_ADVICE = "Restore the deployment from a backup"


@pytest.fixture
def restarted(settings: Settings, clock: SettableClock) -> Iterator[list[Flask]]:
    """Apps opened by the test (each a restart of the service), closed afterwards."""
    apps: list[Flask] = []
    yield apps
    for app in apps:
        app.extensions["pca"].close()


def _start(apps: list[Flask], settings: Settings, clock: SettableClock) -> Flask:
    app = create_app(settings, clock=clock)
    apps.append(app)
    return app


def _purchase_position(raw: RawStore) -> int:
    rows = raw.run("SELECT {id} FROM {events} WHERE topic LIKE %s", ("%QuotaPurchased",))
    position: int = rows[0][0]
    return position


def _refused(response: Any, position: int) -> None:
    assert response.status_code == 503, response.get_json()
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["title"] == "Log tampered"
    assert f"at position {position}" in problem["detail"]
    assert RESTORE_ADVICE in problem["detail"]


def test_a_forged_quota_purchase_stops_every_command_after_a_restart(
    settings: Settings, clock: SettableClock, restarted: list[Flask]
) -> None:
    api = ApiClient(_start(restarted, settings, clock))
    root_id = _root(api)
    bought = api.call("POST", f"/api/v1/cas/{root_id}/quota/purchases", json={"count": 100})
    assert bought.status_code == 201, bought.get_json()
    ca_id = _intermediate(api, root_id)
    _issue(api, ca_id)
    api.app.extensions["pca"].close()
    restarted.clear()
    raw = RawStore(settings)
    position = _purchase_position(raw)
    state = raw.state(position)
    assert state.count(b'"count":100') == 1
    raw.set_state(position, state.replace(b'"count":100', b'"count":900'))

    api = ApiClient(_start(restarted, settings, clock), api.tokens)
    head = api.app.extensions["pca"].service.recorder.max_notification_id()
    body = {"type": "server", "common_name": "forged.example.com", "validity_days": 30}
    issued = api.call("POST", f"/api/v1/cas/{ca_id}/certificates", role=Role.OPERATOR, json=body)
    _refused(issued, position)
    purchase = {"count": 1}
    _refused(api.call("POST", f"/api/v1/cas/{root_id}/quota/purchases", json=purchase), position)
    _refused(api.call("POST", f"/api/v1/cas/{ca_id}/disable"), position)
    _refused(api.call("GET", "/healthz", role=None), position)
    assert api.app.extensions["pca"].service.recorder.max_notification_id() == head

    caught_up = {"X-Wait-For-Position": str(head)}  # reads go on from the read models
    assert api.call("GET", f"/api/v1/cas/{root_id}", headers=caught_up).status_code == 200
    listed = api.call("GET", f"/api/v1/cas/{ca_id}/certificates", headers=caught_up)
    assert listed.status_code == 200, listed.get_json()
    verified = api.call("GET", "/api/v1/audit/verify", role=Role.AUDITOR)
    assert verified.status_code == 200
    assert (verified.get_json()["ok"], verified.get_json()["first_bad_position"]) == (
        False,
        position,
    )
    history = api.call("GET", "/api/v1/events", role=Role.AUDITOR)
    assert history.status_code == 200
    metrics = api.call("GET", "/metrics", role=Role.AUDITOR).get_data(as_text=True)
    assert "pca_audit_chain_intact 0.0" in metrics
    assert f"pca_audit_chain_first_bad_position {float(position)}" in metrics


def test_an_event_forged_while_the_service_runs_is_caught_by_the_next_command(
    settings: Settings, clock: SettableClock, restarted: list[Flask]
) -> None:
    api = ApiClient(_start(restarted, settings, clock))
    root_id = _root(api)
    settled(api, root_id)  # so the forged event is the log's last, as an attacker's would be
    metrics = api.call("GET", "/metrics", role=Role.AUDITOR).get_data(as_text=True)
    assert "pca_audit_chain_intact 1.0" in metrics
    assert api.call("GET", "/healthz", role=None).status_code == 200
    raw = RawStore(settings)
    forged = raw.forge_copy(raw.positions()[0])  # a copy of CACreated, with no link

    refused = api.call("POST", f"/api/v1/cas/{root_id}/quota/purchases", json={"count": 1})
    _refused(refused, forged)
    assert raw.positions()[-1] == forged  # nothing recorded after the forged event
