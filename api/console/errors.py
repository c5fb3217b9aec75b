"""How the console answers what goes wrong: as pages, not problem+json.

SignInRequiredError     no live session              -> 303 to the sign-in page
ConsoleForbiddenError   role too weak, forged form   -> 403 page saying why
PCAError (domain)       a refused command or query   -> the form again, the error
                                                        beside its field (or a page)
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

from flask import g, make_response, redirect, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from api.console.routing import FormPage, blueprint, render
from api.console.session import ConsoleForbiddenError, SignInRequiredError
from api.statuses import domain_status, shown_to_client
from domain.model.errors import PCAError

TITLES = {404: "Not found", 409: "Conflict"}
FORM_ERROR = "_form"  # the key of an error that names no field
HIDDEN_DETAIL = "The service could not complete this; the operators have the details in the log."
logger = logging.getLogger(__name__)


def field_errors(error: PCAError) -> dict[str, str]:
    """The error keyed by the form field it names (``FORM_ERROR`` when it names none)."""
    return {error.field or FORM_ERROR: error.detail}


@blueprint.errorhandler(SignInRequiredError)
def _sign_in_first(_: SignInRequiredError) -> ResponseReturnValue:
    target = url_for("console.sign_in_form")
    if request.method == "GET":
        target += "?" + urlencode({"next": request.full_path.rstrip("?")})
    return redirect(target, 303)


@blueprint.errorhandler(ConsoleForbiddenError)
def _forbidden(error: ConsoleForbiddenError) -> ResponseReturnValue:
    return render("error.html", 403, title="Not allowed", detail=error.detail)


@blueprint.errorhandler(PCAError)
def _refused(error: PCAError) -> ResponseReturnValue:
    status = domain_status(error)
    if not shown_to_client(error):
        logger.error("console request failed: %s", type(error).__name__)
        return render("error.html", status, title="Internal error", detail=HIDDEN_DETAIL)
    form = g.get("console_form")
    if isinstance(form, FormPage):
        return render(form.template, status, errors=field_errors(error), **form.context)
    return render("error.html", status, title=TITLES.get(status, "Refused"), detail=error.detail)


@blueprint.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    page = make_response(
        render("error.html", status, title=error.name, detail=error.description or "")
    )
    for name, value in error.get_headers():  # Retry-After of a 429, Allow of a 405
        if name.lower() != "content-type":
            page.headers[name] = value
    return page
