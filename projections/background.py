"""Background jobs that one process of a deployment runs at a time, each under its lease.

A :class:`LeasedJob` is a daemon thread: while it holds its lease it runs its step every
``interval``; while another process holds the lease it stands by and
retries, like the read-model runner. Each job has its own thread and lease, so a slow step of
one (an audit checkpoint walking a long log) never delays another (the CRL publisher).

A step that did something (returned a true value) is followed by a whole ``interval``, so
a job acts at most once per interval; a step that found nothing to do is followed by a
wait that :meth:`LeasedJob.wake` cuts short (after ``WAKE_GAP`` at least), so news is acted
on at once when the job has been idle.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from domain.adapters.settings import Settings
from domain.model.errors import LogTamperedError
from projections.errors import RunnerActiveError
from projections.readmodels.lease import acquire_lease

logger = logging.getLogger(__name__)
STANDBY_RETRY = 2.0
WAKE_GAP = 0.05
"""Seconds between two steps that found nothing, however often the job is woken: it bounds
the looks of a job woken after every batch the read models apply (a storm of revocations)."""


class LeasedJob:
    """Runs ``step`` every ``interval`` seconds while holding the lease ``purpose``."""

    def __init__(
        self,
        settings: Settings,
        purpose: str,
        step: Callable[[], object],
        interval: float,
        standby_retry: float = STANDBY_RETRY,
    ) -> None:
        self._settings = settings
        self._purpose = purpose
        self._step = step
        self._interval = interval
        self._standby_retry = standby_retry
        self._stop = threading.Event()
        self._wakeup = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pca-{purpose}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Step now if the last step found nothing to do (see the module's docstring)."""
        self._wakeup.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wakeup.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with acquire_lease(self._settings, self._purpose):
                    self._step_until_stopped()
            except RunnerActiveError:
                logger.debug("another process holds %s; standing by", self._purpose)
            except LogTamperedError as error:  # stays so until a restore: no stack each time
                logger.error("%s refused: %s", self._purpose, error.detail)
            except Exception:
                logger.exception("%s failed; retrying", self._purpose)
            self._stop.wait(self._standby_retry)

    def _step_until_stopped(self) -> None:
        while not self._stop.is_set():
            self._wakeup.clear()  # before the step: a wake-up during it is not lost
            if self._step():
                self._stop.wait(self._interval)
            elif not self._stop.wait(min(WAKE_GAP, self._interval)):
                self._wakeup.wait(max(self._interval - WAKE_GAP, 0.0))
