"""The dedicated OCSP responder (`pca ocsp-serve`): a raw ASGI application under uvicorn.

A plain OCSP request (GET /ocsp/<ca_id>/<base64>, POST /ocsp/<ca_id> with a body of known
length) is matched and answered with the functions of :mod:`api.http.ocsp_path`, by the
deployment's :class:`~projections.revocation.ocsp_responder.OCSPResponder`: the bytes and
headers `pca serve` sends. Everything else (``/healthz``, CRLs, a malformed path, a body
over the limit, an answer that raised, such as a storage outage) goes to the Flask app of
:func:`api.http.app.create_responder_app` on a thread, whose handlers answer it as
`pca serve` does. Unknown paths get Flask's 404: nothing but those routes is served.

The deployment is opened at lifespan startup (one per worker process) without background
jobs, and closed at shutdown. ``answer`` runs inline in the event loop: measured in
docs/BENCHMARKS.md, a thread hop cost more than the read it would overlap.
The access log is `pca serve`'s (:class:`api.wsgi_middleware.AccessLog`).

Most plain OCSP requests never reach this app: the server's protocol
(:mod:`api.http.ocsp_protocol`) answers them with this app's deployment. The app answers
the ones it hands on (pipelined behind another request, or waiting on a slow reader), and
sends a request marked :data:`ANSWER_FAILED` straight to Flask.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from a2wsgi import WSGIMiddleware

from api.deployment import EXTENSION, Deployment
from api.http.app import MAX_BODY_BYTES, create_responder_app
from api.http.ocsp_path import (
    FIXED_HEADERS,
    Asked,
    asked_by_get,
    body_length,
    post_target,
    varying_headers,
)
from api.http.views.revocation import OCSP_POST_RULE
from api.wsgi_middleware import AccessLog

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
STDOUT = 1
ANSWER_FAILED = "pca.ocsp.answer_failed"  # ASGI scope extension: the protocol's answer raised


class Serving:
    """What a worker opened at startup: the deployment, Flask for the rest, the log."""

    def __init__(self) -> None:
        app = create_responder_app()
        self.deployment: Deployment = app.extensions[EXTENSION]
        self.access_log = AccessLog(app, STDOUT)
        # a2wsgi types the scope as TypedDicts; this module reads plain mappings
        self.rest: ASGIApp = WSGIMiddleware(self.access_log)  # type: ignore[assignment, arg-type]

    def close(self) -> None:
        try:
            self.deployment.close()
        finally:
            self.access_log.close()


class OCSPResponderApp:
    """The ASGI application: lifespan opens and closes the deployment; HTTP is answered
    as the module docstring says."""

    def __init__(self) -> None:
        self._serving: Serving | None = None

    @property
    def serving(self) -> Serving | None:
        """What this worker opened at startup; None before it, or if it failed."""
        return self._serving

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and self._serving is not None:
            await self._http(self._serving, scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self._serving = Serving()
                except Exception as error:
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._serving is not None:
                    self._serving.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, serving: Serving, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        if ANSWER_FAILED in scope.get("extensions", {}):
            await serving.rest(scope, receive, send)
            return
        asked, receive = await _asked(scope, receive)
        if asked is None:
            await serving.rest(scope, receive, send)
            return
        try:
            body = serving.deployment.ocsp.answer(asked.ca_id, asked.request_der)
        except Exception:  # answered by Flask's handlers, as `pca serve` answers it
            await serving.rest(scope, receive, send)
            return
        varying = varying_headers(body, header(scope["headers"], b"x-request-id"))
        headers = _FIXED_HEADERS + _encoded(varying)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        serving.access_log.record(_environ(scope), "200", varying, time.perf_counter() - started)


def create_app() -> OCSPResponderApp:
    """The application uvicorn runs in each worker (its ``factory``): the deployment of
    the ``PCA_*`` environment is opened at lifespan startup."""
    return OCSPResponderApp()


async def _asked(scope: Scope, receive: Receive) -> tuple[Asked | None, Receive]:
    """The plain OCSP request, if it is one, and how the rest reads the request's body
    (again, if it was read here)."""
    method, path = scope["method"], scope["path"]
    if (asked := asked_by_get(method, path)) is not None:
        return asked, receive
    ca_id = post_target(method, path)
    length = body_length(header(scope["headers"], b"content-length"), MAX_BODY_BYTES)
    if ca_id is None or length is None:
        return None, receive
    body = await _body(receive)
    return Asked(ca_id, body, OCSP_POST_RULE), _replay(body)


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> str:
    """The value of the request header ``name`` (lower case, as uvicorn gives names), or
    "" when there is none."""
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return ""


def _encoded(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode("latin-1")) for name, value in headers]


def header_lines(headers: list[tuple[str, str]]) -> bytes:
    """``headers`` as the lines of an HTTP/1.1 response head, named as uvicorn names them."""
    return encoded_lines(_encoded(headers))


def encoded_lines(headers: list[tuple[bytes, bytes]]) -> bytes:
    """Encoded ``headers`` as the lines of an HTTP/1.1 response head."""
    return b"".join(b"%s: %s\r\n" % pair for pair in headers)


_FIXED_HEADERS = _encoded(FIXED_HEADERS)
FIXED_HEADER_LINES = header_lines(FIXED_HEADERS)


def _environ(scope: Scope) -> dict[str, Any]:
    """The WSGI variables the access log reads, for a request answered here."""
    query = scope["query_string"]
    target = scope["raw_path"] + (b"?" + query if query else b"")
    client = scope.get("client")
    return {
        "REMOTE_ADDR": client[0] if client else "-",
        "REQUEST_METHOD": scope["method"],
        "RAW_URI": target.decode("latin-1"),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
    }
