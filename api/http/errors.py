"""HTTP-level errors and the one handler map that turns every error into RFC 9457
``application/problem+json``.

    PCAError (domain)            -> 422 / 404 / 409 / 503 / 500 by branch (STATUS_BY_ERROR)
    HTTPProblemError
    ├── MalformedRequestError    the body is not JSON / not UTF-8               (400)
    ├── UnauthenticatedError     no token, or an unknown or revoked one         (401)
    ├── ForbiddenError           the token's role is too weak                   (403)
    └── NotReadyError            the read models have not caught up in time     (503)
    werkzeug HTTPException       404 unknown path, 405, 413 body too large, ...
"""

from __future__ import annotations

import logging
import re

from flask import Flask, Response, g, json, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from domain.model.errors import (
    ConflictError,
    KeyCustodyError,
    LogTamperedError,
    NotFoundError,
    OutOfScopeError,
    PCAError,
    StorageNotDurableError,
    ValidationError,
)

PROBLEM_TYPE_BASE = "https://pca.dev/problems/"
MAX_DETAIL = 4096
MAX_INSTANCE = 2048
MAX_FIELD = 256
logger = logging.getLogger(__name__)

STATUS_BY_ERROR: tuple[tuple[type[PCAError], int], ...] = (
    (ValidationError, 422),
    (OutOfScopeError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (KeyCustodyError, 500),
    (StorageNotDurableError, 500),
    (LogTamperedError, 503),
)
# 5xx errors whose detail is advice for the client rather than an internal matter.
ADVISED: tuple[type[PCAError], ...] = (LogTamperedError,)


class HTTPProblemError(Exception):
    """An error that is about HTTP itself rather than the domain."""

    status = 400
    title = "Bad Request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class MalformedRequestError(HTTPProblemError):
    status = 400
    title = "Malformed request"


class UnauthenticatedError(HTTPProblemError):
    status = 401
    title = "Unauthenticated"


class ForbiddenError(HTTPProblemError):
    status = 403
    title = "Forbidden"


class NotReadyError(HTTPProblemError):
    status = 503
    title = "Not ready"


def problem(status: int, title: str, detail: str, field: str | None = None) -> Response:
    """An ``application/problem+json`` response, within the published Problem schema even
    when the detail, the path or the field echo a client's overlong input."""
    body: dict[str, object] = {
        "type": problem_type(title),
        "title": title,
        "status": status,
        "detail": _clip(detail, MAX_DETAIL),
        "instance": _clip(request.path, MAX_INSTANCE),
    }
    if field:
        body["field"] = _clip(field, MAX_FIELD)
    if "request_id" in g:
        body["request_id"] = g.request_id
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="pca"'
    if status == 503:
        response.headers["Retry-After"] = "1"
    return response


def problem_type(title: str) -> str:
    """The problem's ``type`` URI: its title as a slug ("SAN" -> .../san)."""
    return PROBLEM_TYPE_BASE + "-".join(re.findall(r"[a-z0-9]+", title.lower()))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def item_problem(error: PCAError) -> dict[str, object]:
    """The problem details of a 4xx domain error, for one item of a batch answer."""
    status = _domain_status(error)
    title = _title(error, status)
    body: dict[str, object] = {
        "type": problem_type(title),
        "title": title,
        "status": status,
        "detail": error.detail,
    }
    if error.field:
        body["field"] = error.field
    return body


def _domain_status(error: PCAError) -> int:
    for error_class, status in STATUS_BY_ERROR:
        if isinstance(error, error_class):
            return status
    return 500


# A word of a class name: an acronym (the "CSR" of CSRError), or a capitalised word.
_NAME_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z][a-z0-9]*|[a-z0-9]+")


def _title(error: PCAError, status: int) -> str:
    """The class name in words, acronyms kept whole: ``CAStateError`` -> "CA state"."""
    if status >= 500 and not isinstance(error, ADVISED):
        return "Internal error"
    words = _NAME_WORD.findall(type(error).__name__.removesuffix("Error")) or ["Error"]
    return " ".join([words[0], *(w if w.isupper() else w.lower() for w in words[1:])])


def register_error_handlers(app: Flask) -> None:
    """Every error leaves as problem+json; details of 5xx errors stay in the log."""

    @app.errorhandler(PCAError)
    def domain_error(error: PCAError) -> Response:
        status = _domain_status(error)
        if status >= 500 and not isinstance(error, ADVISED):
            logger.error("request failed: %s", type(error).__name__)
            return problem(
                status,
                "Internal error",
                "The service could not complete the "
                "request; the operators have the details in the log.",
            )
        return problem(status, _title(error, status), error.detail, error.field)

    @app.errorhandler(HTTPProblemError)
    def http_problem(error: HTTPProblemError) -> Response:
        return problem(error.status, error.title, error.detail)

    @app.errorhandler(HTTPException)
    def http_exception(error: HTTPException) -> Response:
        status = error.code or 500
        response = problem(status, error.name, _http_detail(status, error))
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            # RFC 9110: a 405 names the methods the resource does support.
            response.headers["Allow"] = ", ".join(sorted(error.valid_methods))
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        logger.exception("unexpected error", exc_info=error)
        return problem(
            500,
            "Internal error",
            "Something unexpected failed; the operators have the details in the log.",
        )


def _http_detail(status: int, error: HTTPException) -> str:
    if status == 413:
        limit = request.max_content_length or 0
        return f"The request body is too large; this request is limited to {limit:,} bytes."
    if status == 404:
        return f"There is nothing at {request.path}; see /openapi.json for the routes."
    if status == 405:
        return f"{request.method} is not allowed on {request.path}; see /openapi.json."
    return error.description or error.name
