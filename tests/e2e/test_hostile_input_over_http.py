"""Oversized bodies sent over a real socket to a live `pca serve`: 413, chunked or not."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest

from domain.adapters.settings import Settings
from tests.integration.test_hostile_input import TEN_MB
from tests.live import LiveServer


@pytest.mark.slow
def test_over_real_http_oversized_bodies_are_413_chunked_or_not(sqlite_settings: Settings) -> None:
    """The HTTP server passes chunked bodies through; the limit must hold for them as well."""
    with LiveServer(sqlite_settings, workers=1) as live:
        admin = live.pca("tokens", "create", "--role", "admin", "--name", "hostile").strip()
        before = live.json("GET", "/healthz")["position"]
        head = f"POST /api/v1/cas HTTP/1.1\r\nHost: pca\r\nAuthorization: Bearer {admin}\r\n"
        head += "Content-Type: application/json\r\n"
        declared = _raw_exchange(live.port, head + f"Content-Length: {TEN_MB}\r\n\r\n", b"")
        chunked = _raw_exchange(
            live.port, head + "Transfer-Encoding: chunked\r\n\r\n", b"[" * TEN_MB, chunked=True
        )
        assert live.json("GET", "/healthz")["position"] == before
    for answer in (declared, chunked):
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"application/problem+json" in answer


def _raw_exchange(port: int, head: str, body: bytes, *, chunked: bool = False) -> bytes:
    """Send ``head`` then ``body`` (in chunks) from a thread; the answer the server gives,
    which for a refusal comes before the body is all sent (the send then breaks off)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        sender = threading.Thread(target=_send, args=(connection, head, body, chunked))
        sender.start()
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            received = connection.recv(65536)
            if not received:
                break
            answer += received
        with contextlib.suppress(OSError):  # the server may have closed it after answering
            connection.shutdown(socket.SHUT_RDWR)
        sender.join()
    return answer


def _send(connection: socket.socket, head: str, body: bytes, chunked: bool) -> None:
    piece_size = 64 * 1024
    try:
        connection.sendall(head.encode())
        for start in range(0, len(body), piece_size):
            piece = body[start : start + piece_size]
            connection.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        connection.sendall(b"0\r\n\r\n" if chunked else b"")
    except OSError:
        return  # the server answered and closed: what the test waits for
