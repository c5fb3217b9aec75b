"""What `pca serve` wraps around the app in each worker: the access log, written in
batches off the request's path (gunicorn's own access log, which writes each line in the
request's thread, is off).

The access log keeps one line per answered request, in the format operators and the tests
read (``pid=<N> rid=ID``: the worker and the request id the answer carried)::

    127.0.0.1 "POST /api/v1/cas/ID/certificates HTTP/1.1" 201 1432 3ms pid=<812> rid=7f0c...

A line is formatted in the request's thread and kept in memory; the lines go to the output
in one ``write`` when they fill a pipe's atomic size (4 KiB, so lines of several processes
sharing a pipe never mix) and at least once a second, and the last ones when the worker
stops. A worker killed with SIGKILL loses the lines of its last second.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

FLUSH_SECONDS = 1.0
BATCH_BYTES = 4096  # PIPE_BUF on Linux: a write of at most this much to a pipe is atomic
_UNPRINTABLE = re.compile(r'[\x00-\x20\x7f-\xff"\\]')

Headers = list[tuple[str, str]]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]


def _escaped(text: str) -> str:
    """``text`` with spaces, quotes and control characters as ``\\xNN``: one field, one line."""
    return _UNPRINTABLE.sub(lambda found: f"\\x{ord(found[0]):02x}", text)


def _header(headers: Headers, name: str) -> str:
    for key, value in headers:
        if key.lower() == name:
            return value
    return "-"


class AccessLog:
    """WSGI middleware: a line per request into file descriptor ``fd``, in batches.

    The time logged is until the answer's status and headers were ready (a streamed body
    may take longer); the size is the answer's Content-Length, or ``-``.
    """

    def __init__(self, app: WSGIApplication, fd: int) -> None:
        self.app = app  # what it wraps, for the worker's close
        self._fd = fd
        self._pid = os.getpid()
        self._lines: list[str] = []
        self._size = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_often, name="access-log", daemon=True)
        self._flusher.start()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        answered: list[tuple[str, Headers]] = []

        def start(status: str, headers: Headers, exc_info: ExcInfo | None = None) -> object:
            answered.append((status, headers))
            return start_response(status, headers, exc_info)

        body = self.app(environ, start)  # type: ignore[arg-type]
        status, headers = answered[-1] if answered else ("500", [])
        self.record(environ, status, headers, time.perf_counter() - started)
        return body

    def record(self, environ: WSGIEnvironment, status: str, headers: Headers, took: float) -> None:
        """Keep the line of a request answered ``status`` with ``headers`` in ``took``
        seconds; ``environ`` holds its WSGI variables (also for a request answered
        outside this middleware, by the OCSP responder's ASGI path)."""
        self._add(self._line(environ, status, headers, took))

    def _line(self, environ: WSGIEnvironment, status: str, headers: Headers, took: float) -> str:
        query = environ.get("QUERY_STRING")
        target = environ.get("RAW_URI")  # gunicorn's: the target as the client sent it
        if target is None:
            target = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
        target = _escaped(target)
        method, protocol = environ.get("REQUEST_METHOD", "-"), environ.get("SERVER_PROTOCOL", "-")
        return (
            f'{environ.get("REMOTE_ADDR", "-")} "{method} {target} {protocol}" '
            f"{status.split(' ', 1)[0]} {_header(headers, 'content-length')} "
            f"{round(took * 1000)}ms pid=<{self._pid}> rid={_header(headers, 'x-request-id')}\n"
        )

    def _add(self, line: str) -> None:
        with self._lock:
            if self._size + len(line) > BATCH_BYTES:
                self._write_locked()
            self._lines.append(line)
            self._size += len(line)

    def _write_locked(self) -> None:
        if self._lines:
            os.write(self._fd, "".join(self._lines).encode("utf-8", "backslashreplace"))
            self._lines.clear()
            self._size = 0

    def flush(self) -> None:
        """Write every line kept so far."""
        with self._lock:
            self._write_locked()

    def _flush_often(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()

    def close(self) -> None:
        """Stop the flusher and write the last lines."""
        self._stop.set()
        self._flusher.join()
        self.flush()
