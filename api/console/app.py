"""Registers the console on the API's Flask app."""

from __future__ import annotations

from flask import Flask, Response

from api.console import errors as _errors  # noqa: F401 - registers the console's error pages
from api.console.routing import blueprint
from api.console.views import access, audit, cas, certificates, overview  # noqa: F401 - pages

# Scripts and styles only from the console's own static files: nothing inline, nothing
# from elsewhere, forms posted only here, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def register_console(app: Flask) -> None:
    """Serve the console at ``/console`` on ``app``."""
    app.register_blueprint(blueprint)


@blueprint.after_request
def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    # The API's no-referrer makes browsers send "Origin: null" with every form, which
    # the Origin check (api.console.session) must refuse; same-origin keeps the origin
    # for the console's own forms and still tells other sites nothing.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response
