"""A graceful stop (SIGTERM, as a process supervisor sends it) of `pca serve` or of
`pca projections run` stops the background writers first, then lets the read models catch
up to the head of the log, then exits: nothing the service wrote is left unprojected.

The CRL publisher is made to write all the time (a base CRL that is due again within a
fraction of a second), so that the stop always meets a writer mid-stride.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from api.deployment import EXTENSION, Deployment
from api.http.app import create_app
from domain.adapters.settings import Settings, open_service
from projections.readmodels import worker
from projections.readmodels.queries import ReadModels
from tests.builders import enabled_intermediate, enabled_root
from tests.conftest import make_settings
from tests.crash import CrashableServer, ProjectionProcess, set_up_hierarchy
from tests.polling import until

# A CRL valid for 0.36 s is re-based every 0.18 s, and the publisher looks every 20 ms.
BUSY_PUBLISHER = {"PCA_CRL_VALIDITY_HOURS": "0.0001", "PCA_CRL_DEBOUNCE_MS": "20"}
STOP_SECONDS = 30.0  # gunicorn's own grace is 10 s; then it kills its workers
WAIT_SECONDS = 60.0


def _log_head(settings: Settings) -> int:
    service = open_service(settings)
    try:
        return service.recorder.max_notification_id() or 0
    finally:
        service.close()
        service.keystore.close()


def _read_models_position(settings: Settings) -> int:
    with ReadModels.open(settings) as read_models:
        return read_models.position()


def _until(condition: Callable[[], bool], seconds: float = WAIT_SECONDS) -> bool:
    return until(condition, seconds, every=0.1)


def _wait_for_the_publisher_to_write(settings: Settings) -> None:
    """Return once the log has grown by a few CRLs on its own: the writer is busy."""
    start = _log_head(settings)
    assert _until(lambda: _log_head(settings) >= start + 6), "the publisher wrote nothing"


def _terminate(process: CrashableServer | ProjectionProcess) -> int:
    """SIGTERM to the process and its children, as a supervisor stops a service; its exit
    status, which must come without a SIGKILL from here."""
    assert process.process is not None
    os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"no exit {STOP_SECONDS} s after SIGTERM:\n{process.tail()}") from None


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_graceful_stop_of_pca_serve_leaves_the_read_models_at_the_logs_head(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    settings = make_settings(store, request, tmp_path / "data")
    with CrashableServer(settings, workers=2) as server:
        server.env.update(BUSY_PUBLISHER)
        server.start()
        set_up_hierarchy(server, intermediates=4)
        _wait_for_the_publisher_to_write(settings)
        assert _terminate(server) == 0, server.tail()
    head = _log_head(settings)
    assert _read_models_position(settings) == head, server.tail()


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_a_graceful_stop_of_pca_projections_run_leaves_the_read_models_at_the_logs_head(
    store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    settings = make_settings(store, request, tmp_path / "data")
    with CrashableServer(settings, api_only=True) as server:
        server.env.update(BUSY_PUBLISHER)
        server.start()
        with ProjectionProcess(server) as runner:
            runner.start()
            set_up_hierarchy(server, intermediates=4)
            _wait_for_the_publisher_to_write(settings)
            assert _terminate(runner) == 0, runner.tail()
        head = _log_head(settings)
        assert _read_models_position(settings) == head, runner.tail()


def test_closing_an_apps_services_projects_the_publishers_last_crls(
    sqlite_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In one process, with a runner that looks at the log only when woken, so that what
    the publisher writes stays unprojected until the close: stopping the publisher first
    and catching up last is what brings the read models to the head."""
    monkeypatch.setattr(worker, "SQLITE_IDLE_WAIT", 600.0)
    for name, value in BUSY_PUBLISHER.items():
        monkeypatch.setenv(name, value)
    app = create_app(sqlite_settings)
    services = app.extensions[EXTENSION]
    assert isinstance(services, Deployment)
    try:
        service = services.service
        enabled_intermediate(service, enabled_root(service))
        set_up = service.recorder.max_notification_id()
        assert services.read_models.wait_for(set_up, 10)  # wakes the runner: CAs to publish
        assert _until(lambda: (service.recorder.max_notification_id() or 0) >= (set_up or 0) + 6)
        assert services.read_models.position() < (service.recorder.max_notification_id() or 0)
    finally:
        services.close()
    assert _read_models_position(sqlite_settings) == _log_head(sqlite_settings)
