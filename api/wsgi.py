"""The WSGI application `pca serve` runs: the HTTP API with the ACME face beside it.

Faces do not import each other (import-linter's ``faces-independent``), so the two are put
together here, over the one deployment the HTTP app factory opens.
"""

from __future__ import annotations

from flask import Flask

from api.acme.views import blueprint as acme_blueprint
from api.http.app import create_app as create_http_app
from domain.adapters.settings import Settings
from domain.application.service import Clock, utc_now


def create_app(
    settings: Settings | None = None, *, clock: Clock = utc_now, run_projections: bool = True
) -> Flask:
    """The REST API (api.http.app.create_app) and ACME under ``/acme/{directory}/``."""
    app = create_http_app(settings, clock=clock, run_projections=run_projections)
    app.register_blueprint(acme_blueprint)
    return app
