"""OCSP in front of Flask: the two OCSP routes answered straight from the WSGI environ.

An OCSP answer kept by the responder costs two indexed reads; Flask's request context,
routing, hooks and response object cost several times that. So the OCSP requests that
need nothing else (POST /ocsp/<ca_id> with a body of known length, GET
/ocsp/<ca_id>/<base64>) are answered here, with what the views in
:mod:`api.http.views.revocation` answer: the same body, OCSP headers, security headers,
X-Request-Id and request metrics. Anything else, and any request whose answer raises (a
storage outage), goes to Flask, whose handlers answer it as they answer every route.
The dedicated responder (:mod:`api.http.ocsp_asgi`) matches and answers with the same
functions.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from api.http.headers import SECURITY_HEADERS, request_id
from api.http.metrics import LATENCY, REQUESTS
from api.http.views.revocation import OCSP_GET_RULE, OCSP_POST_RULE, ocsp_headers, request_in_path

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Answer = Callable[[UUID, bytes], bytes]

_UUID = "[A-Fa-f0-9]{8}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{4}-[A-Fa-f0-9]{12}"
_POST = re.compile(f"/ocsp/({_UUID})")
_GET = re.compile(f"/ocsp/({_UUID})/(.+)", re.DOTALL)


@dataclass(frozen=True)
class Asked:
    """A plain OCSP request: the CA it names, its DER and the route it came by."""

    ca_id: UUID
    request_der: bytes
    rule: str


def asked_by_get(method: str, path: str) -> Asked | None:
    """The request of a plain OCSP GET; None for anything else."""
    if method == "GET" and (found := _GET.fullmatch(path)) and path.isascii():
        return Asked(UUID(found[1]), request_in_path(found[2]), OCSP_GET_RULE)
    return None


def post_target(method: str, path: str) -> UUID | None:
    """The CA an OCSP POST names; None for any other request."""
    if method != "POST" or not (found := _POST.fullmatch(path)):
        return None
    return UUID(found[1])


def body_length(given: str, max_body: int) -> int | None:
    """The Content-Length of a body the fast paths read; None when there is none, or it
    is over ``max_body`` (Flask refuses it, or reads a chunked body)."""
    if not given.isdigit() or int(given) > max_body:
        return None
    return int(given)


def varying_headers(body: bytes, given_request_id: str) -> list[tuple[str, str]]:
    """The headers of an OCSP answer ``body`` that vary from one answer to the next (the
    access log reads them)."""
    return [("Content-Length", str(len(body))), ("X-Request-Id", request_id(given_request_id))]


# The headers every OCSP answer carries first, as the views send them.
FIXED_HEADERS = list({**ocsp_headers(), **SECURITY_HEADERS}.items())


def answer_headers(body: bytes, given_request_id: str) -> list[tuple[str, str]]:
    """The headers of an OCSP answer ``body``, as the views send them."""
    return FIXED_HEADERS + varying_headers(body, given_request_id)


def observe(method: str, rule: str, started: float) -> None:
    """Count and time an answered OCSP request, as Flask's hooks count every route."""
    REQUESTS.labels(method, rule, "200").inc()
    LATENCY.labels(method, rule).observe(time.perf_counter() - started)


class OCSPPath:
    """WSGI middleware answering plain OCSP requests with ``answer`` before ``app``."""

    def __init__(self, app: WSGIApp, answer: Answer, max_body: int) -> None:
        self._app = app
        self._answer = answer
        self._max_body = max_body

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        asked = self._asked(environ)
        if asked is None:
            return self._app(environ, start_response)
        try:
            body = self._answer(asked.ca_id, asked.request_der)
        except Exception:
            return self._app(environ, start_response)
        start_response("200 OK", answer_headers(body, environ.get("HTTP_X_REQUEST_ID", "")))
        observe(environ["REQUEST_METHOD"], asked.rule, started)
        return [body]

    def _asked(self, environ: dict[str, Any]) -> Asked | None:
        """The CA and request of a plain OCSP request (its body read, and put back for
        Flask in case the answer fails); None for anything else."""
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if (asked := asked_by_get(method, path)) is not None:
            return asked
        ca_id = post_target(method, path)
        length = body_length(environ.get("CONTENT_LENGTH", ""), self._max_body)
        if ca_id is None or length is None:
            return None
        body = environ["wsgi.input"].read(length)
        environ["wsgi.input"] = io.BytesIO(body)
        return Asked(ca_id, body, OCSP_POST_RULE)
