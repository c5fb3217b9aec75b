"""A projection worker process killed between batches resumes exactly where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from domain.adapters.settings import Settings
from domain.application.service import PrivateCA
from projections.readmodels.queries import ReadModels
from projections.readmodels.worker import (
    catch_up,
    rebuild,
)
from tests.conftest import SettableClock
from tests.projection_helpers import read_everything, worker_env, write_history

_KILLABLE_WORKER = """
import sys, time
from domain.adapters.settings import Settings
from projections.readmodels.worker import catch_up

pause_at = int(sys.argv[1])

def progress(position: int, end: int) -> None:
    if position >= pause_at:
        print(position, flush=True)
        time.sleep(600)  # the test kills us here, between two batches

catch_up(Settings.from_env(), progress=progress, batch_size=4)
"""


@pytest.mark.slow
def test_a_worker_killed_between_batches_resumes_exactly(
    service: PrivateCA, settings: Settings, clock: SettableClock
) -> None:
    history = write_history(service)
    worker = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE_WORKER, "10"],
        env=worker_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    paused_at = worker.stdout.readline()
    os.kill(worker.pid, signal.SIGKILL)
    _, errors = worker.communicate(timeout=30)
    assert paused_at, errors
    with ReadModels.open(settings) as read_models:
        assert read_models.position() == int(paused_at) < history.last_position
    catch_up(settings)
    resumed = read_everything(settings, clock.now)
    rebuild(settings)
    assert read_everything(settings, clock.now) == resumed
    assert resumed.position == history.last_position
