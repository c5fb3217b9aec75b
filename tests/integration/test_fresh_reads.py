"""Lists include every write acknowledged before them, unless the client prefers speed.

The apps here run no projection runner, so the read models move only when the test
catches them up: what a list shows then depends on the freshness rule alone, not on how
fast a runner happens to be. Over several live workers: tests/e2e/test_fresh_reads.py.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from uuid import UUID

import pytest
from flask import Flask

import api.deployment
from api.cli.commands import Session
from api.cli.main import main
from api.cli.runners import fresh_read_models
from api.http.app import create_app
from domain.adapters.settings import Settings, open_service
from domain.application.service import PrivateCA
from domain.model.tokens import Role
from projections.errors import ReadModelsBehindError
from projections.readmodels import worker
from projections.readmodels.lease import acquire_lease
from projections.readmodels.queries import ReadModels
from projections.readmodels.wakeup import WAKE_FIFO, wake_runner
from projections.readmodels.worker import RunnerHandle, catch_up, nudger
from tests.api_client import ApiClient
from tests.builders import ADMIN, enabled_intermediate, enabled_root, issue, root_profile
from tests.conftest import SettableClock

SHORT_WAIT = 0.05
EVENTUAL = {"Prefer": "consistency=eventual"}


@pytest.fixture
def quiet_app(
    settings: Settings, clock: SettableClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    """An app without a runner, whose freshness wait gives up quickly."""
    monkeypatch.setattr(api.deployment, "FRESHNESS_WAIT_SECONDS", SHORT_WAIT)
    app = create_app(settings, clock=clock, run_projections=False)
    yield app
    app.extensions["pca"].close()


def _service(app: Flask) -> PrivateCA:
    service: PrivateCA = app.extensions["pca"].service
    return service


def _issued_behind_the_lists(app: Flask, settings: Settings) -> tuple[UUID, UUID]:
    """An intermediate the read models know, and a certificate they do not yet."""
    service = _service(app)
    ca_id = enabled_intermediate(service, enabled_root(service))
    catch_up(settings)
    return ca_id, issue(service, ca_id).certificate.id


def _ids(api: ApiClient, ca_id: UUID, headers: dict[str, str]) -> list[str]:
    response = api.call("GET", f"/api/v1/cas/{ca_id}/certificates", Role.AUDITOR, headers=headers)
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


def test_a_list_waits_for_every_acknowledged_write(quiet_app: Flask, settings: Settings) -> None:
    api = ApiClient(quiet_app)
    ca_id, certificate_id = _issued_behind_the_lists(quiet_app, settings)
    behind = api.call("GET", f"/api/v1/cas/{ca_id}/certificates", Role.AUDITOR)
    assert behind.status_code == 503
    assert behind.headers["Retry-After"] == "1"
    catch_up(settings)
    assert _ids(api, ca_id, {}) == [str(certificate_id)]


def test_a_client_that_prefers_speed_reads_the_lists_as_they_are(
    quiet_app: Flask, settings: Settings
) -> None:
    api = ApiClient(quiet_app)
    ca_id, _ = _issued_behind_the_lists(quiet_app, settings)
    response = api.call("GET", f"/api/v1/cas/{ca_id}/certificates", Role.AUDITOR, headers=EVENTUAL)
    assert response.get_json()["items"] == []
    assert response.headers["Preference-Applied"] == "consistency=eventual"
    cas = api.call("GET", "/api/v1/cas", Role.AUDITOR, headers=EVENTUAL)
    assert cas.status_code == 200


def test_a_position_asked_for_is_waited_for_even_by_an_eventual_client(
    quiet_app: Flask, settings: Settings
) -> None:
    api = ApiClient(quiet_app)
    ca_id, _ = _issued_behind_the_lists(quiet_app, settings)
    head = str(_service(quiet_app).recorder.max_notification_id())
    headers = {**EVENTUAL, "X-Wait-For-Position": head}
    behind = api.call("GET", f"/api/v1/cas/{ca_id}/certificates", Role.AUDITOR, headers=headers)
    assert behind.status_code == 503


@pytest.mark.parametrize(
    ("prefer", "applied"),
    [
        ("consistency=strong", "consistency=strong"),
        ('respond-async, wait=10, Consistency="Eventual"; x=1', "consistency=eventual"),
        ("consistency=whenever", None),
        ("respond-async", None),
    ],
)
def test_only_a_known_consistency_preference_is_applied_and_echoed(
    api: ApiClient, prefer: str, applied: str | None
) -> None:
    response = api.call("GET", "/api/v1/cas", Role.AUDITOR, headers={"Prefer": prefer})
    assert response.status_code == 200
    assert response.headers.get("Preference-Applied") == applied


def test_the_openapi_document_offers_the_preference_on_every_list(api: ApiClient) -> None:
    paths = api.document["paths"]
    reads = [paths["/api/v1/cas"]["get"], paths["/api/v1/cas/{ca_id}/certificates"]["get"]]
    for operation in reads:
        assert "Prefer" in [parameter["name"] for parameter in operation["parameters"]]
        assert "Preference-Applied" in operation["responses"]["200"]["headers"]
    command = paths["/api/v1/cas/{ca_id}/certificates"]["post"]
    assert "Prefer" not in [parameter["name"] for parameter in command["parameters"]]


def test_the_cli_lists_only_once_the_read_models_include_every_write(
    sqlite_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(api.deployment, "FRESHNESS_WAIT_SECONDS", SHORT_WAIT)
    monkeypatch.setenv("PCA_DATA_DIR", str(sqlite_settings.data_dir))
    monkeypatch.setenv("PCA_PUBLIC_URL", sqlite_settings.public_url)
    with closing(api.deployment.Deployment.open(sqlite_settings)) as deployment:
        session = Session(deployment, ADMIN)
        root_id = enabled_root(deployment.service)
        with acquire_lease(sqlite_settings):  # a runner elsewhere that does not keep up
            assert main(["ca", "list"]) == 2
            with pytest.raises(ReadModelsBehindError):
                fresh_read_models(session)
        listed = fresh_read_models(session).list_cas(deployment.service.clock())
    assert "have not caught up" in capsys.readouterr().err
    assert [view.id for view in listed] == [root_id]


def test_a_waiting_query_wakes_the_runner_of_another_process_on_sqlite(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "SQLITE_IDLE_WAIT", 60.0)  # its own polls would come too late
    service = open_service(sqlite_settings)
    runner = RunnerHandle(sqlite_settings)
    elsewhere = nudger(sqlite_settings, None)  # what a process without the runner calls
    with closing(service), ReadModels.open(sqlite_settings, nudge=elsewhere) as read_models:
        runner.start()
        try:
            deadline = time.monotonic() + 10
            while not runner.is_serving and time.monotonic() < deadline:
                time.sleep(0.01)
            position = service.create_root(ADMIN, root_profile()).position
            assert read_models.wait_for(position, timeout=5)
        finally:
            runner.stop()
            service.keystore.close()


def test_waking_a_runner_that_is_not_there_does_nothing(tmp_path: Path) -> None:
    fifo = tmp_path / WAKE_FIFO
    wake_runner(fifo)  # no runner ever listened
    os.mkfifo(fifo, 0o600)
    wake_runner(fifo)  # one listened once, and is gone
    assert stat.S_ISFIFO(fifo.stat().st_mode)
