"""Signing in and out."""

from __future__ import annotations

from flask import redirect, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from api.console.routing import blueprint, form_page, page, render
from api.console.session import check_origin, clear_cookie, set_cookie, sign_in, sign_out
from domain.model.tokens import Role


def _next() -> str:
    """Where to go after signing in: a console path given as ``next``, else the overview."""
    target = request.values.get("next", "")
    if target.startswith("/console/") and not target.startswith("//"):
        return target
    return url_for("console.overview")


@blueprint.get("/sign-in")
def sign_in_form() -> ResponseReturnValue:
    return render("sign_in.html", next=_next())


@blueprint.post("/sign-in")
def sign_in_submit() -> ResponseReturnValue:
    check_origin()
    form_page("sign_in.html", next=_next())
    session_id = sign_in(request.form.get("token", ""))
    response: Response = redirect(_next(), 303)
    return set_cookie(response, session_id)


@page("/sign-out", role=Role.AUDITOR, methods=("POST",))
def sign_out_submit() -> ResponseReturnValue:
    sign_out()
    response: Response = redirect(url_for("console.sign_in_form"), 303)
    return clear_cookie(response)
