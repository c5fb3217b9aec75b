"""OCSP in front of Flask: the two OCSP routes answered straight from the WSGI environ.

An OCSP answer kept by the responder costs two indexed reads; Flask's request context,
routing, hooks and response object cost several times that. So the OCSP requests that
need nothing else (POST /ocsp/<ca_id> with a body of known length, GET
/ocsp/<ca_id>/<base64>) are answered here, with what the views in
:mod:`api.http.views.revocation` answer: the same body, OCSP headers, security headers,
X-Request-Id and request metrics. Anything else, and any request whose answer raises (a
storage outage), goes to Flask, whose handlers answer it as they answer every route.
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
class _Asked:
    ca_id: UUID
    request_der: bytes
    rule: str


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
        headers = {
            **ocsp_headers(),
            **SECURITY_HEADERS,
            "Content-Length": str(len(body)),
            "X-Request-Id": request_id(environ.get("HTTP_X_REQUEST_ID", "")),
        }
        start_response("200 OK", list(headers.items()))
        method = environ["REQUEST_METHOD"]
        REQUESTS.labels(method, asked.rule, "200").inc()
        LATENCY.labels(method, asked.rule).observe(time.perf_counter() - started)
        return [body]

    def _asked(self, environ: dict[str, Any]) -> _Asked | None:
        """The CA and request of a plain OCSP request (its body read, and put back for
        Flask in case the answer fails); None for anything else."""
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        if method == "GET" and (found := _GET.fullmatch(path)) and path.isascii():
            return _Asked(UUID(found[1]), request_in_path(found[2]), OCSP_GET_RULE)
        if method != "POST" or not (found := _POST.fullmatch(path)):
            return None
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit() or int(length) > self._max_body:
            return None  # Flask refuses it, or reads a chunked body
        body = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(body)
        return _Asked(UUID(found[1]), body, OCSP_POST_RULE)
