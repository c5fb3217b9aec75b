"""`pca ocsp-serve`'s HTTP protocol: uvicorn's httptools protocol, answering a plain OCSP
request itself when nothing else is under way on its connection.

An OCSP answer kept by the responder costs a few tens of microseconds; the ASGI layer
around it (a task, the request-response cycle, two messages and two socket writes) cost
about as much again, and on PostgreSQL that kept the responder under half of the bare
`respond()` rate (docs/BENCHMARKS.md, issue 22). So once the request is complete, a plain
OCSP request (GET /ocsp/<ca_id>/<base64>, POST /ocsp/<ca_id> with a body of known length,
no ``Expect``) on an idle, writable connection is answered here, by the deployment the
ASGI app (:class:`~api.http.ocsp_asgi.OCSPResponderApp`) opened, with the bytes and
headers that app sends, in one write, and logged by its access log.

Everything else goes the way uvicorn takes every request: to the ASGI app, which also
answers an OCSP request that arrived while another was under way (pipelined), and hands
the rest to Flask. A request whose answer raised (a storage outage) is handed on marked
:data:`~api.http.ocsp_asgi.ANSWER_FAILED`, so that Flask's handlers answer it as
`pca serve` does. uvicorn keeps everything about the connection: keep-alive and its
timeout, pipelining, write flow control, invalid requests, graceful shutdown.

The protocol overrides four of the parser's callbacks of uvicorn's ``HttpToolsProtocol``
and reads its per-connection state (``cycle``, ``flow``, ``headers``, ``url``): the
version range in pyproject.toml is the one tests/e2e/test_ocsp_responder.py and
tests/integration/test_ocsp_protocol.py pass on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote
from uuid import UUID

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.http.app import MAX_BODY_BYTES
from api.http.ocsp_asgi import (
    ANSWER_FAILED,
    FIXED_HEADER_LINES,
    OCSPResponderApp,
    Serving,
    encoded_lines,
    header,
    header_lines,
)
from api.http.ocsp_path import Asked, asked_by_get, body_length, post_target, varying_headers
from api.http.views.revocation import OCSP_POST_RULE

_STATUS_AND_FIXED = b"HTTP/1.1 200 OK\r\n" + FIXED_HEADER_LINES


@dataclass
class _Plain:
    """A plain OCSP request being read: what it asks (a GET's, known from its path) or
    the CA a POST names, whose body is still arriving."""

    started: float
    asked: Asked | None
    post_to: UUID | None = None
    body: bytearray = field(default_factory=bytearray)

    def request(self) -> Asked:
        if self.asked is not None:
            return self.asked
        assert self.post_to is not None
        return Asked(self.post_to, bytes(self.body), OCSP_POST_RULE)


class OCSPProtocol(HttpToolsProtocol):
    """The HTTP/1.1 protocol of `pca ocsp-serve` (uvicorn's ``http`` setting)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._responder = _responder_app(self.app)
        self._plain: _Plain | None = None
        self._stopping = False

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: a plain request being read is answered, then the
        connection closed, as uvicorn finishes a request under way."""
        if self._plain is None:
            super().shutdown()
        else:
            self._stopping = True

    def on_headers_complete(self) -> None:
        self._plain = self._plain_request()
        if self._plain is None:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._plain is None:
            super().on_body(body)
        elif self._plain.asked is None:  # a GET's body, if any, is not read: as Flask
            self._plain.body += body

    def on_message_complete(self) -> None:
        plain, self._plain = self._plain, None
        serving = self._responder.serving if self._responder is not None else None
        if plain is None or serving is None:
            super().on_message_complete()
            return
        asked = plain.request()
        try:
            body = serving.deployment.ocsp.answer(asked.ca_id, asked.request_der)
        except Exception:
            self._hand_on(plain)
            return
        self._send(serving, plain, body)

    def _plain_request(self) -> _Plain | None:
        """The plain OCSP request whose headers were just read, if this protocol answers
        it: nothing under way on the connection, the transport writable."""
        if not self._idle():
            return None
        method = self.parser.get_method()
        if method == b"GET":
            asked = _asked_by_get(self.url)
            return None if asked is None else _Plain(time.perf_counter(), asked)
        path = _path(self.url)
        ca_id = None if path is None else post_target(method.decode("ascii"), path)
        length = body_length(header(self.headers, b"content-length"), MAX_BODY_BYTES)
        if ca_id is None or length is None or header(self.headers, b"transfer-encoding"):
            return None
        return _Plain(time.perf_counter(), None, ca_id)

    def _idle(self) -> bool:
        """Whether a request may be answered here: the app is the responder, no response
        is under way, the client reads what it is sent, and asks for nothing special."""
        busy = self.cycle is not None and not self.cycle.response_complete
        special = self.expect_100_continue or self.parser.should_upgrade()
        blocked = busy or special or self.flow.write_paused
        return self._responder is not None and not blocked

    def _send(self, serving: Serving, plain: _Plain, body: bytes) -> None:
        """Write the answer in one piece, log it, and go on as uvicorn goes on after a
        response: close, start the next pipelined request, or wait for one."""
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        keep_alive = keep_alive and not self._stopping
        varying = varying_headers(body, header(self.headers, b"x-request-id"))
        self.transport.write(
            b"".join(
                (
                    _STATUS_AND_FIXED,
                    encoded_lines(self.server_state.default_headers),
                    header_lines(varying),
                    b"" if keep_alive else b"connection: close\r\n",
                    b"\r\n",
                    body,
                )
            )
        )
        took = time.perf_counter() - plain.started
        serving.access_log.record(self._environ(), "200", varying, took)
        if not keep_alive:
            self.transport.close()
        self.on_response_complete()

    def _hand_on(self, plain: _Plain) -> None:
        """Give a request whose answer raised to the ASGI app, marked so that it goes
        straight to Flask, as uvicorn would have given it."""
        self.scope["extensions"] = {ANSWER_FAILED: {}}
        super().on_headers_complete()
        if plain.body:
            super().on_body(bytes(plain.body))
        super().on_message_complete()

    def _environ(self) -> dict[str, Any]:
        """The WSGI variables the access log reads."""
        return {
            "REMOTE_ADDR": self.client[0] if self.client else "-",
            "REQUEST_METHOD": self.parser.get_method().decode("ascii"),
            "RAW_URI": self.url.decode("latin-1"),
            "SERVER_PROTOCOL": f"HTTP/{self.parser.get_http_version()}",
        }


# What a GET of a request target asks, decoded once per target: a relying party asks
# about the same certificates again and again, by the same URL. Emptied when full.
_ASKED_BY_TARGET: dict[bytes, Asked | None] = {}
_TARGETS_KEPT = 4096


def _asked_by_get(target: bytes) -> Asked | None:
    """The request of a plain OCSP GET of ``target``; None for any other GET."""
    if target in _ASKED_BY_TARGET:
        return _ASKED_BY_TARGET[target]
    path = _path(target)
    asked = None if path is None else asked_by_get("GET", path)
    if len(_ASKED_BY_TARGET) >= _TARGETS_KEPT:
        _ASKED_BY_TARGET.clear()
    _ASKED_BY_TARGET[target] = asked
    return asked


def _path(url: bytes) -> str | None:
    """The decoded path of a request target, as uvicorn puts it in the ASGI scope; None
    for a target uvicorn would refuse."""
    try:
        path = httptools.parse_url(url).path.decode("ascii")
    except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
        return None
    return unquote(path) if "%" in path else path


def _responder_app(app: Any) -> OCSPResponderApp | None:
    """The OCSP responder app inside whatever uvicorn wrapped it in (its message logger
    at trace level); None for any other app, whose requests all go to it."""
    while not isinstance(app, OCSPResponderApp):
        app = getattr(app, "app", None)
        if app is None:
            return None
    return app
