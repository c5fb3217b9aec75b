"""A commit whose reply is lost: PostgreSQL committed the save, the connection broke before
the service heard so, and eventsourcing tried the insert again. The service must see its
own events in the store and report the change as done, once, not as a conflict (which
answered a client 409 for the revocation it had just made). A TCP proxy between the
service and PostgreSQL cuts the connection after passing a COMMIT on."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from threading import Event
from urllib.parse import urlsplit, urlunsplit

import pytest

from domain.adapters.settings import Settings, open_service
from domain.audit.verify import AuditLog
from domain.model.values import CertificateStatus, RevocationReason
from tests.builders import OPERATOR, enabled_intermediate, enabled_root, issue

_COMMIT_DONE = b"C\x00\x00\x00\x0bCOMMIT\x00"  # PostgreSQL's CommandComplete for a COMMIT
_CHUNK = 65536


class CommitCutter:
    """A proxy to PostgreSQL that, once armed, passes the next COMMIT on, then closes the
    client's side at once and PostgreSQL's side when the commit is done."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._armed = Event()
        self.cut = Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        self._armed.set()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            cutting = Event()
            threading.Thread(target=self._to_server, args=(client, server, cutting)).start()
            threading.Thread(target=self._to_client, args=(server, client, cutting)).start()

    def _to_server(self, client: socket.socket, server: socket.socket, cut: Event) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(_CHUNK):
                if self._armed.is_set() and b"COMMIT" in data:
                    self._armed.clear()
                    cut.set()
                    client.shutdown(socket.SHUT_RDWR)  # the client hears nothing more
                server.sendall(data)
            server.shutdown(socket.SHUT_WR)

    def _to_client(self, server: socket.socket, client: socket.socket, cut: Event) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(_CHUNK):
                if not cut.is_set():
                    client.sendall(data)
                elif _COMMIT_DONE in data:
                    self.cut.set()
                    break
        client.close()
        server.close()


@pytest.fixture
def cutter(postgres_url: str) -> Iterator[CommitCutter]:
    address = urlsplit(postgres_url)
    proxy = CommitCutter((address.hostname or "127.0.0.1", address.port or 5432))
    yield proxy
    proxy.close()


def test_a_revocation_whose_commit_reply_was_lost_is_done_once(
    cutter: CommitCutter, postgres_url: str, pg_schema: str, tmp_path: Path
) -> None:
    address = urlsplit(postgres_url)
    netloc = address.netloc.rsplit(":", 1)[0] + f":{cutter.port}"
    through_proxy = urlunsplit(address._replace(netloc=netloc))
    settings = Settings(
        data_dir=tmp_path / "data", database_url=through_proxy, database_schema=pg_schema
    )
    service = open_service(settings)
    try:
        ca_id = enabled_intermediate(service, enabled_root(service))
        certificate = issue(service, ca_id).certificate
        cutter.arm()
        service.revoke_certificate(OPERATOR, certificate.id, RevocationReason.KEY_COMPROMISE)
        assert cutter.cut.is_set()  # the commit was done, and its reply never arrived
        assert service.get_certificate(certificate.id).status is CertificateStatus.REVOKED
        revocations = [
            notification
            for notification in service.recorder.select_notifications(start=1, limit=1000)
            if notification.topic.endswith("Revoked")
        ]
        assert len(revocations) == 1
        assert AuditLog.of(service).verify().chain_ok
    finally:
        service.close()
        service.keystore.close()
