"""The brake on failed token sign-ins, for every face that takes a token: the API's bearer
tokens and the console's sign-in form.

A refused token is logged with the client address and the token's fingerprint (never the
token), counted in ``pca_auth_failures_total``, and slowed down per client address: after
``free`` failures, each further one is answered only after a delay that doubles from
``first_delay`` up to ``max_delay``; an address is forgotten ``forget_after`` seconds after
its last failure. Tokens carry 256 random bits, so the delay does not stop guessing (nothing
needs to); it makes a misconfigured or hostile client slow, cheap and visible.

A delayed answer holds a worker thread while it sleeps. So that a flood of bad tokens cannot
take every thread from legitimate clients, at most ``max_sleepers`` requests per process
sleep at once; a failure that finds them all busy is answered at once with 429 and
``Retry-After`` (each face says it in its own form). The flood is then answered fast instead
of slowly, which costs it nothing extra, but the threads stay free. Behind a reverse proxy
every client has the proxy's address, so one noisy client slows the others' failures (never
their successful requests).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app
from prometheus_client import Counter

from domain.model.tokens import token_fingerprint

EXTENSION = "pca.failed_authentications"
FAILURES = Counter("pca_auth_failures", "Requests refused for an unknown or revoked token")
logger = logging.getLogger(__name__)


def refuse_token(token: str, address: str | None, face: str) -> float | None:
    """Count and log a refused ``token`` from ``address`` and hold the answer as long as
    the brake says; the seconds the client should wait before it tries again when the
    answer could not even be held (too many held already), else None."""
    address = address or "unknown"
    brake = failed_authentications()
    failures = brake.record(address)
    FAILURES.inc()
    logger.warning(
        "%s: rejected token %s from %s (failure %d from this address)",
        face,
        token_fingerprint(token),
        address,
        failures,
    )
    return brake.slow_down(failures)


@dataclass
class _Failures:
    count: int
    last: float


class FailedAuthentications:
    """Failures per client address (the ``max_addresses`` most recent) and the delay the
    next one costs. Thread-safe; one per app, hence per process."""

    def __init__(
        self,
        *,
        free: int = 5,
        first_delay: float = 0.1,
        max_delay: float = 2.0,
        forget_after: float = 300.0,
        max_sleepers: int = 2,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.free = free
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.forget_after = forget_after
        self.max_addresses = max_addresses
        self._clock = clock
        self._sleep = sleep
        self._sleepers = threading.BoundedSemaphore(max_sleepers)
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, address: str) -> int:
        """Count a failure from ``address``; how many it has had lately, this one included."""
        now = self._clock()
        with self._lock:
            seen = self._failures.pop(address, None)
            if seen is None or now - seen.last > self.forget_after:
                seen = _Failures(0, now)
            seen.count += 1
            seen.last = now
            self._failures[address] = seen
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)
            return seen.count

    def delay(self, failures: int) -> float:
        """Seconds to hold the answer to the ``failures``-th failure."""
        if failures <= self.free:
            return 0.0
        return min(self.max_delay, self.first_delay * 2.0 ** (failures - self.free - 1))

    def slow_down(self, failures: int) -> float | None:
        """Sleep for the delay ``failures`` earns; if too many already sleep, do not, and
        return that delay for the client to wait instead (None once slept or free)."""
        pause = self.delay(failures)
        if not pause:
            return None
        if not self._sleepers.acquire(blocking=False):
            return pause
        try:
            self._sleep(pause)
        finally:
            self._sleepers.release()
        return None


def failed_authentications() -> FailedAuthentications:
    """The current app's record of failures (made on first use)."""
    found = current_app.extensions.get(EXTENSION)
    if found is None:
        found = current_app.extensions.setdefault(EXTENSION, FailedAuthentications())
    assert isinstance(found, FailedAuthentications)
    return found
