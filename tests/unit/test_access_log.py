"""The access log `pca serve` wraps around the app: gunicorn's line format, in batches."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from wsgiref.types import StartResponse, WSGIEnvironment

import pytest

from api import wsgi_middleware
from api.wsgi_middleware import AccessLog


def _app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    del environ
    start_response("201 CREATED", [("Content-Length", "5"), ("X-Request-Id", "rid-1")])
    return [b"hello"]


def _start(
    status: str, headers: list[tuple[str, str]], exc_info: object = None
) -> Callable[[bytes], object]:
    del status, headers, exc_info
    return lambda data: None


def _environ(**extra: str) -> WSGIEnvironment:
    return {
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/cas",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        **extra,
    }


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    try:
        yield read, write
    finally:
        os.close(read)
        os.close(write)


def test_a_line_per_request_written_when_the_log_closes(pipe: tuple[int, int]) -> None:
    read, write = pipe
    log = AccessLog(_app, write)
    assert list(log(_environ(RAW_URI="/api/v1/cas?x=1"), _start)) == [b"hello"]
    log.close()
    line = os.read(read, 4096).decode()
    assert line.startswith('127.0.0.1 "POST /api/v1/cas?x=1 HTTP/1.1" 201 5 ')
    assert line.endswith(f"ms pid=<{os.getpid()}> rid=rid-1\n")


def test_a_hostile_target_stays_one_field_on_one_line(pipe: tuple[int, int]) -> None:
    read, write = pipe
    log = AccessLog(_app, write)
    log(_environ(PATH_INFO='/a b"\n\x00'), _start)
    log.close()
    (line,) = os.read(read, 4096).decode().splitlines()
    assert '"POST /a\\x20b\\x22\\x0a\\x00 HTTP/1.1"' in line


def test_lines_go_out_in_batches_no_larger_than_a_pipes_atomic_write(
    pipe: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    read, write = pipe
    monkeypatch.setattr(wsgi_middleware, "FLUSH_SECONDS", 3600.0)
    writes: list[int] = []
    real_write = os.write

    def counting_write(fd: int, data: bytes) -> int:
        writes.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", counting_write)
    log = AccessLog(_app, write)
    for _ in range(100):
        log(_environ(), _start)
    assert writes, "a full batch is written without waiting for the flusher"
    log.close()
    assert all(size <= wsgi_middleware.BATCH_BYTES for size in writes)
    assert os.read(read, 65536).decode().count("\n") == 100
