"""Per-token issuance limits, so that a runaway client cannot burn through a CA's quota.

Each API token has a token bucket of ``PCA_ISSUANCE_BURST`` certificates that refills at
``PCA_ISSUANCE_RATE_PER_SECOND``; a request for ``cost`` certificates (1, or the item
count of a batch) is admitted while the bucket holds that many, and answered 429 with
``Retry-After`` otherwise. A batch larger than the whole burst is admitted from a full
bucket and leaves it in debt, so the long-run rate holds and no batch size is impossible.

Defaults: 100 certificates per second, bursts of 1000 (one full batch). That is above the
25-100 IssueCertificate/s per account that AWS Private CA grants (step-ca and Vault have no
per-token limit at all), below what a server issues in batches (about 2.6k EC
certificates/s, docs/BENCHMARKS.md), and a deployment script issuing up to 1000
certificates with one token at once never meets it; the benchmarks, which issue for
minutes, switch it off. A runaway loop is held to 100/s, which the
``pca_issuance_throttled_total`` counter and one log warning per episode make visible
long before a large quota is gone. ``PCA_ISSUANCE_RATE_PER_SECOND=0`` switches it off.

The buckets live in each server process: under ``pca serve --workers N`` a token may
issue up to N times the configured rate. Sharing them through the event store would add a
write, and on SQLite a turn at the one writer lock, to every issuance, which is the path
the service is tuned for; divide the rate by the worker count if it must be exact.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from flask import Flask, Response, after_this_request, current_app, has_request_context
from prometheus_client import Counter

from api.http.errors import HTTPProblemError
from domain.adapters.settings import BURST_ENV, RATE_ENV, IssuanceLimit
from domain.model.tokens import ApiToken

EXTENSION = "pca.issuance_limits"
THROTTLED = Counter("pca_issuance_throttled", "Issuance requests refused by the per-token limit")
logger = logging.getLogger(__name__)


class TooManyRequestsError(HTTPProblemError):
    """429 with ``Retry-After``: raise it from a view, do not catch it."""

    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = max(1, math.ceil(retry_after))
        if has_request_context():
            # The problem+json handler sets no headers of its own; this one joins
            # whichever response the error becomes.
            after_this_request(self._add_retry_after)

    def _add_retry_after(self, response: Response) -> Response:
        response.headers["Retry-After"] = str(self.retry_after)
        return response


@dataclass
class _Bucket:
    level: float
    updated: float
    throttled: bool = False


@dataclass(frozen=True)
class Refusal:
    """A request the bucket cannot admit yet: seconds until it could, and whether it is
    the first refusal since the token's last admitted request."""

    wait: float
    first: bool


class TokenBuckets:
    """One bucket per API token id; thread-safe. Holds one small entry per token that
    issued, and tokens are made by admins, so the table stays small."""

    def __init__(self, limit: IssuanceLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._buckets: dict[UUID, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: UUID, cost: int) -> Refusal | None:
        """Spend ``cost`` from ``key``'s bucket (None), or say how long to wait."""
        if self.limit.unlimited:
            return None
        now = self._clock()
        with self._lock:
            bucket = self._buckets.setdefault(key, _Bucket(self.limit.burst, now))
            bucket.level = min(
                self.limit.burst, bucket.level + (now - bucket.updated) * self.limit.rate
            )
            bucket.updated = now
            needed = min(cost, self.limit.burst)
            if bucket.level >= needed:
                bucket.level -= cost
                bucket.throttled = False
                return None
            refusal = Refusal((needed - bucket.level) / self.limit.rate, not bucket.throttled)
            bucket.throttled = True
            return refusal


def install_issuance_limits(app: Flask, limit: IssuanceLimit) -> None:
    """Give ``app`` its buckets under ``limit``; called once from the app factory."""
    app.extensions[EXTENSION] = TokenBuckets(limit)


def _buckets() -> TokenBuckets:
    found = current_app.extensions[EXTENSION]
    assert isinstance(found, TokenBuckets)
    return found


def limit_issuance(principal: ApiToken, cost: int = 1) -> None:
    """Admit ``cost`` certificates for ``principal``'s token, or raise 429 saying when to
    retry, what the limit is, and which variables change it. Call it before any work."""
    buckets = _buckets()
    refusal = buckets.take(principal.id, cost)
    if refusal is None:
        return
    THROTTLED.inc()
    if refusal.first:
        logger.warning(
            "throttling issuance for token %r: it asks for more than %g certificates/s",
            principal.name,
            buckets.limit.rate,
        )
    raise TooManyRequestsError(_detail(principal, buckets.limit, cost, refusal.wait), refusal.wait)


def _detail(principal: ApiToken, limit: IssuanceLimit, cost: int, wait: float) -> str:
    return (
        f"Token {principal.name!r} may issue {limit.rate:g} certificates per second in bursts "
        f"of up to {limit.burst}, per server process; this request asks for {cost}. Retry in "
        f"{max(1, math.ceil(wait))} s, or have an operator raise {RATE_ENV} or {BURST_ENV}."
    )
