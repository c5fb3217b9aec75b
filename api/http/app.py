"""The Flask application factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Blueprint, Flask, Response, g, request

from api.console.app import register_console
from api.deployment import EXTENSION, Deployment
from api.http.errors import register_error_handlers
from api.http.headers import SECURITY_HEADERS, request_id
from api.http.metrics import StoreCollector, instrument, registry_with
from api.http.ocsp_path import OCSPPath
from api.http.outage import register_outage_handler
from api.http.ratelimit import install_issuance_limits
from api.http.routing import Routes
from api.http.views import acme as views_acme
from api.http.views import audit as views_audit
from api.http.views import cas as views_cas
from api.http.views import certificates as views_certificates
from api.http.views import profiles as views_profiles
from api.http.views import public as views_public
from api.http.views import reports as views_reports
from api.http.views import revocation as views_revocation
from api.http.views import tokens as views_tokens
from api.http.views.public import store_figures
from domain.adapters.settings import Settings
from domain.application.service import Clock, utc_now

T = TypeVar("T")
MAX_BODY_BYTES = 1024 * 1024
ALL_ROUTES: tuple[Routes, ...] = (
    views_cas.routes,
    views_certificates.issuing_routes,
    views_certificates.routes,
    views_public.routes,
    views_public.health_routes,
    views_revocation.routes,
    views_audit.routes,
    views_reports.routes,
    views_profiles.routes,
    views_tokens.routes,
    views_acme.routes,
)
BLUEPRINTS: tuple[Blueprint, ...] = tuple(routes.blueprint for routes in ALL_ROUTES)
RESPONDER_BLUEPRINTS = (views_revocation.blueprint, views_public.health)


def create_app(
    settings: Settings | None = None, *, clock: Clock = utc_now, run_projections: bool = True
) -> Flask:
    """An app serving the API on the deployment ``settings`` describe (the ``PCA_*``
    environment's by default); ``app.extensions["pca"].close()`` closes it.

    With ``run_projections`` the app keeps the read models up to date and publishes CRLs
    and audit checkpoints on threads; among several processes one holds each lease and
    the others stand by.
    """
    deployment = _opened(settings, clock=clock, run_projections=run_projections)
    app = _app_over(deployment, BLUEPRINTS)
    app.extensions["pca.routes"] = ALL_ROUTES
    app.extensions["pca.metrics"] = registry_with(StoreCollector(_in_app(app, store_figures)))
    register_console(app)
    install_issuance_limits(app, deployment.settings.issuance)
    # Plain OCSP requests are answered before Flask's stack (see api/http/ocsp_path.py).
    app.wsgi_app = OCSPPath(  # type: ignore[method-assign]
        app.wsgi_app, deployment.ocsp.answer, MAX_BODY_BYTES
    )
    return app


def create_responder_app(settings: Settings | None = None) -> Flask:
    """An app serving only OCSP, CRLs and ``/healthz`` (the read-only routes of a
    dedicated OCSP responder, ``pca ocsp-serve``, whose ASGI layer answers plain OCSP
    before it), on a deployment opened without background jobs;
    ``app.extensions["pca"].close()`` closes it."""
    return _app_over(_opened(settings), RESPONDER_BLUEPRINTS)


def _opened(
    settings: Settings | None, *, clock: Clock = utc_now, run_projections: bool = False
) -> Deployment:
    settings = settings or Settings.from_env()
    deployment = Deployment.open(
        settings, run_projections=run_projections, publish=run_projections, clock=clock
    )
    # Verify the whole audit chain before serving, so a forged log is refused from the
    # first request (and the cost is paid at start, not by the first command).
    deployment.service.integrity.refresh()
    return deployment


def _app_over(deployment: Deployment, blueprints: tuple[Blueprint, ...]) -> Flask:
    """A Flask app answering ``blueprints`` on ``deployment``, with the error handlers,
    request ids, security headers and metrics every route gets."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION] = deployment
    instrument(app)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    register_outage_handler(app)
    app.before_request(_assign_request_id)
    app.after_request(_decorate_response)
    return app


def _in_app(app: Flask, read: Callable[[], T]) -> Callable[[], T]:
    """``read`` run inside ``app``'s context (a scrape may come from any thread)."""

    def run() -> T:
        with app.app_context():
            return read()

    return run


def _assign_request_id() -> None:
    g.request_id = request_id(request.headers.get("X-Request-Id", ""))


def _decorate_response(response: Response) -> Response:
    response.headers["X-Request-Id"] = g.get("request_id", "")
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    return response
