"""Abuse limits over HTTP: the per-token issuance budget answered 429, and failed
authentication logged and slowed (the buckets themselves: tests/unit/test_token_buckets.py)."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask, request
from flask.typing import ResponseReturnValue
from prometheus_client import REGISTRY
from werkzeug.test import TestResponse

from api.brake import EXTENSION as FAILURES_EXTENSION
from api.brake import FailedAuthentications
from api.http.app import create_app
from api.http.auth import require_role
from api.http.headers import SECURITY_HEADERS
from api.http.ratelimit import limit_issuance
from domain.adapters.settings import (
    BURST_ENV,
    RATE_ENV,
    IssuanceLimit,
    Settings,
)
from domain.model.tokens import Role, new_token, token_fingerprint
from tests.api_client import SETUP
from tests.conftest import SettableClock
from tests.unit.test_token_buckets import Ticks

PROBE = "/probe/issue"
WAIT_SECONDS = 60.0  # bounds a wait for something that happens at once


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


@pytest.fixture
def probe_app(sqlite_settings: Settings) -> Iterator[Flask]:
    """The real app, plus a route that spends ``?cost=`` issuances as the issuing routes
    do, with a limit of 2 at once and one every two seconds."""
    settings = dataclasses.replace(sqlite_settings, issuance=IssuanceLimit(rate=0.5, burst=2))
    app = create_app(settings, clock=SettableClock(), run_projections=False)

    def spend() -> ResponseReturnValue:
        limit_issuance(require_role(Role.OPERATOR), int(request.args.get("cost", "1")))
        return {"admitted": True}, 201

    app.add_url_rule(PROBE, "probe", spend, methods=["POST"])
    yield app
    app.extensions["pca"].close()


def _token(app: Flask, role: Role = Role.OPERATOR, name: str = "deployer") -> str:
    token, _ = app.extensions["pca"].service.create_token(SETUP, name, role)
    return str(token)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_issuing_past_the_limit_is_answered_429_saying_when_and_what_to_change(
    probe_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    client = probe_app.test_client()
    token = _token(probe_app)
    throttled_before = _metric("pca_issuance_throttled_total")
    admitted = [client.post(PROBE, headers=_bearer(token)).status_code for _ in range(2)]
    assert admitted == [201, 201]
    refused = client.post(PROBE, headers=_bearer(token))
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert refused.headers["Retry-After"] == "2"
    for name, value in SECURITY_HEADERS.items():
        assert refused.headers[name] == value
    problem = refused.get_json()
    assert problem["title"] == "Too many requests"
    assert (
        "'deployer' may issue 0.5 certificates per second in bursts of up to 2"
        in (problem["detail"])
    )
    assert RATE_ENV in problem["detail"]
    assert BURST_ENV in problem["detail"]
    assert client.post(PROBE, headers=_bearer(token)).status_code == 429
    assert _metric("pca_issuance_throttled_total") == throttled_before + 2
    warnings = [r for r in caplog.records if r.name == "api.http.ratelimit"]
    assert len(warnings) == 1  # once per episode, not once per refused request
    assert "deployer" in warnings[0].getMessage()
    other = _token(probe_app, name="another-deployer")
    assert client.post(PROBE, headers=_bearer(other)).status_code == 201


def test_a_batch_costs_its_item_count(probe_app: Flask) -> None:
    client = probe_app.test_client()
    token = _token(probe_app)
    assert client.post(f"{PROBE}?cost=2", headers=_bearer(token)).status_code == 201
    refused = client.post(f"{PROBE}?cost=2", headers=_bearer(token))
    assert refused.status_code == 429
    assert "this request asks for 2" in refused.get_json()["detail"]
    assert refused.headers["Retry-After"] == "4"


# --- Failed authentication -------------------------------------------------------------------


def test_a_rejected_token_is_logged_by_fingerprint_and_address_and_counted(
    probe_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="api.brake")
    wrong = new_token()
    failures_before = _metric("pca_auth_failures_total")
    response = probe_app.test_client().post(PROBE, headers=_bearer(wrong))
    assert response.status_code == 401
    assert _metric("pca_auth_failures_total") == failures_before + 1
    (line,) = [r.getMessage() for r in caplog.records if r.name == "api.brake"]
    assert token_fingerprint(wrong) in line
    assert "127.0.0.1" in line
    assert wrong not in line
    assert wrong[len("pca_") : len("pca_") + 8] not in line


def _failure(app: Flask, token: str | None = None) -> TestResponse:
    """A request with ``token`` (an unknown one by default)."""
    return app.test_client().post(PROBE, headers=_bearer(token or new_token()))


def test_repeated_failures_from_one_address_are_slowed_down_then_forgiven(
    probe_app: Flask,
) -> None:
    ticks = Ticks()
    pauses: list[float] = []  # what the brake held each answer for, in seconds
    brake = FailedAuthentications(
        free=1, first_delay=0.3, max_delay=0.6, forget_after=60, clock=ticks, sleep=pauses.append
    )
    probe_app.extensions[FAILURES_EXTENSION] = brake
    assert [brake.delay(n) for n in range(1, 6)] == [0, 0.3, 0.6, 0.6, 0.6]
    _failure(probe_app)
    assert pauses == []  # the first is free
    assert _failure(probe_app).status_code == 401
    assert pauses == [0.3]
    _failure(probe_app)
    assert pauses == [0.3, 0.6]
    assert _failure(probe_app, _token(probe_app)).status_code == 201
    assert pauses == [0.3, 0.6]  # a good token from the same address is never held
    ticks.now += 61
    _failure(probe_app)
    assert pauses == [0.3, 0.6]  # forgiven


def test_failures_beyond_the_sleeping_threads_are_answered_429_at_once(probe_app: Flask) -> None:
    """While the only sleeper's place is taken, further failures are refused without
    waiting for it: they are answered before it is let go."""
    sleeping, let_go = threading.Event(), threading.Event()

    def hold(pause: float) -> None:
        assert pause == 1.0
        sleeping.set()
        let_go.wait(WAIT_SECONDS)

    probe_app.extensions[FAILURES_EXTENSION] = FailedAuthentications(
        free=0, first_delay=1.0, max_delay=1.0, max_sleepers=1, sleep=hold
    )
    with ThreadPoolExecutor(4) as pool:
        held = pool.submit(_failure, probe_app)
        assert sleeping.wait(WAIT_SECONDS)
        refused = [pool.submit(_failure, probe_app) for _ in range(3)]
        answers = [future.result(WAIT_SECONDS) for future in refused]
        assert not let_go.is_set()
        let_go.set()
        assert held.result(WAIT_SECONDS).status_code == 401
    for response in answers:
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "1"
        assert "unknown or revoked tokens came from your address" in (response.get_json()["detail"])


def test_a_missing_token_is_not_counted_as_a_failed_attempt(probe_app: Flask) -> None:
    before = _metric("pca_auth_failures_total")
    assert probe_app.test_client().post(PROBE).status_code == 401
    assert _metric("pca_auth_failures_total") == before
