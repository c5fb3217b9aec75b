"""Prometheus metrics at /metrics.

Request counters and latencies are per process; under ``pca serve`` the workers share them
through prometheus_client's multiprocess directory (``PROMETHEUS_MULTIPROC_DIR``, set by
``pca serve`` before any worker imports this module). Business figures (certificates
issued and revoked, projection lag) are read from the stores at scrape time, so they are
the same whichever worker answers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

REQUESTS = Counter("pca_http_requests", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "pca_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class StoreCollector(Collector):
    """Figures read from the event store at scrape time via ``read`` (name -> value)."""

    def __init__(self, read: Callable[[], dict[str, tuple[str, float]]]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        for name, (help_text, value) in self._read().items():
            yield GaugeMetricFamily(name, help_text, value=value)


def registry_with(store: Collector) -> CollectorRegistry:
    """The registry /metrics renders: request metrics of all workers plus ``store``."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(REQUESTS)
        registry.register(LATENCY)
    registry.register(store)
    return registry


def render(registry: CollectorRegistry) -> Response:
    """The Prometheus text exposition of ``registry``."""
    return Response(generate_latest(registry), mimetype="text/plain", content_type=CONTENT_TYPE)


def instrument(app: Flask) -> None:
    """Count and time every request by route template (never by raw path)."""

    @app.before_request
    def start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def observe(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        elapsed = time.perf_counter() - g.get("metrics_started", time.perf_counter())
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        LATENCY.labels(request.method, route).observe(elapsed)
        return response
