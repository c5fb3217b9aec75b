"""Bearer-token authentication and role checks, and the brake on failed attempts.

A rejected token is logged with the client address and the token's fingerprint (never the
token), counted in ``pca_auth_failures_total``, and slowed down per client address: after
``free`` failures, each further one is answered only after a delay that doubles from
``first_delay`` up to ``max_delay``; an address is forgotten ``forget_after`` seconds after
its last failure. Tokens carry 256 random bits, so the delay does not stop guessing (nothing
needs to); it makes a misconfigured or hostile client slow, cheap and visible.

A delayed answer holds a worker thread while it sleeps. So that a flood of bad tokens cannot
take every thread from legitimate clients, at most ``max_sleepers`` requests per process
sleep at once; a failure that finds them all busy is answered 429 with ``Retry-After`` at
once. The flood is then answered fast instead of slowly, which costs it nothing extra, but
the threads stay free. Behind a reverse proxy every client has the proxy's address, so one
noisy client slows the others' failures (never their successful requests).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from flask import current_app, request
from prometheus_client import Counter

from api.deployment import services
from api.http.errors import ForbiddenError, UnauthenticatedError
from api.http.ratelimit import TooManyRequestsError
from domain.model.tokens import ApiToken, Role, token_fingerprint

EXTENSION = "pca.failed_authentications"
FAILURES = Counter("pca_auth_failures", "Requests refused for an unknown or revoked token")
logger = logging.getLogger(__name__)


def require_role(required: Role) -> ApiToken:
    """The caller's token record if it allows ``required``; 401 or 403 otherwise."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise UnauthenticatedError(
            "Send a token as 'Authorization: Bearer <token>' (create one with 'pca tokens create')."
        )
    principal = services().service.authenticate(token)
    if principal is None:
        _refuse(token)
    if not principal.role.allows(required):
        raise ForbiddenError(
            f"This needs the {required.value} role; your token {principal.name!r} is "
            f"{principal.role.value}."
        )
    return principal


def _refuse(token: str) -> NoReturn:
    address = request.remote_addr or "unknown"
    brake = failed_authentications()
    failures = brake.record(address)
    FAILURES.inc()
    logger.warning(
        "rejected token %s from %s (failure %d from this address)",
        token_fingerprint(token),
        address,
        failures,
    )
    brake.slow_down(failures)
    raise UnauthenticatedError("The token is unknown or revoked; ask an admin for a new one.")


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

    def slow_down(self, failures: int) -> None:
        """Sleep for the delay ``failures`` earns, or raise 429 if too many already sleep."""
        pause = self.delay(failures)
        if not pause:
            return
        if not self._sleepers.acquire(blocking=False):
            raise TooManyRequestsError(
                "Too many requests with unknown or revoked tokens came from your address; "
                "retry with a valid token (ask an admin for one).",
                pause,
            )
        try:
            self._sleep(pause)
        finally:
            self._sleepers.release()


def failed_authentications() -> FailedAuthentications:
    """The current app's record of failures (made on first use)."""
    found = current_app.extensions.get(EXTENSION)
    if found is None:
        found = current_app.extensions.setdefault(EXTENSION, FailedAuthentications())
    assert isinstance(found, FailedAuthentications)
    return found
