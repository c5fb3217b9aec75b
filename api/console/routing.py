"""The console's blueprint and the decorator every page is declared with.

``page`` checks the session, the role and (for a POST) the CSRF token before the view
runs. A view that shows a form names it with :func:`form_page`: a domain error raised by
the application call is then answered with that form again, the user's values kept and
the error shown beside the field it names (``errors.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, g, render_template, request, url_for
from flask.typing import ResponseReturnValue

from api.console.session import CSRF_FIELD, require
from domain.model.tokens import Role

View = Callable[..., ResponseReturnValue]
blueprint = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)


@dataclass(frozen=True)
class FormPage:
    """The page to show again, with errors, when a form's command is refused."""

    template: str
    context: Mapping[str, Any] = field(default_factory=dict)


def page(rule: str, *, role: Role, methods: tuple[str, ...] = ("GET",)) -> Callable[[View], View]:
    """Register the decorated view on ``rule`` for callers whose role allows ``role``."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def run(**path: Any) -> ResponseReturnValue:
            require(role)
            return view(**path)

        blueprint.add_url_rule(rule, view.__name__, run, methods=list(methods))
        return run

    return decorate


def form_page(template: str, **context: Any) -> None:
    """Name the form this request answers with again if its command is refused."""
    g.console_form = FormPage(template, context)


def render(template: str, status: int = 200, **context: Any) -> ResponseReturnValue:
    """``template`` with what every page shows: who is signed in, the CSRF token, the
    form's values and its errors (none unless given)."""
    context.setdefault("values", request.form)
    context.setdefault("errors", {})
    return (
        render_template(
            f"console/{template}",
            principal=g.get("principal"),
            csrf_field=CSRF_FIELD,
            csrf_token=g.get("csrf", ""),
            **context,
        ),
        status,
    )


def page_url(endpoint: str, query: Mapping[str, str], **changes: Any) -> str:
    """The URL of ``endpoint`` with the filters of ``query`` and ``changes`` (a cursor)."""
    values: dict[str, Any] = {**query, **changes}
    return url_for(endpoint, **values)
