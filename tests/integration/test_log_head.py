"""PostgreSQL: the log's head is read on a connection kept for it (domain/adapters/log_head.py).

What a user would notice if it went wrong: an OCSP answer kept past a revocation another
process committed, a head read that fails after the server ended that connection, or a
connection left open after the service closed."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from cryptography.x509 import ocsp as x509_ocsp

from domain.adapters import log_head
from domain.adapters.recorders import PostgresChainedRecorder
from domain.adapters.settings import OCSPSettings, Settings, open_service
from domain.application.service import PrivateCA
from domain.model.values import RevocationReason
from projections.readmodels.queries import ReadModels
from projections.revocation.ocsp_responder import OCSPResponder
from tests.builders import OPERATOR, enabled_intermediate, enabled_root, issue
from tests.conftest import make_settings
from tests.integration.test_ocsp_precomputed import ocsp_request
from tests.polling import until


@pytest.fixture
def pg_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return make_settings("postgres", request, tmp_path / "data")


@pytest.fixture
def writer(pg_settings: Settings) -> Iterator[PrivateCA]:
    """Another process's service on the same log."""
    yield from _opened(pg_settings)


@pytest.fixture
def reader(pg_settings: Settings, writer: PrivateCA) -> Iterator[PrivateCA]:
    yield from _opened(pg_settings)


def _opened(settings: Settings) -> Iterator[PrivateCA]:
    service = open_service(settings)
    yield service
    service.close()
    service.keystore.close()


def _head_backends(settings: Settings) -> list[int]:
    """The server processes of the head connections to ``settings``' schema."""
    assert settings.database_url is not None
    name = log_head.application_name(settings.database_schema)
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (name,)
        ).fetchall()
    return [pid for (pid,) in rows]


def _committed_head(settings: Settings, writer: PrivateCA) -> int:
    """The head as a connection of the test's own sees it."""
    assert settings.database_url is not None
    statement = _recorder(writer).max_notification_id_statement
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        row = connection.execute(statement).fetchone()
    assert row is not None
    return int(row[0])


def _recorder(service: PrivateCA) -> PostgresChainedRecorder:
    assert isinstance(service.recorder, PostgresChainedRecorder)
    return service.recorder


def _status(responder: OCSPResponder, ca_id: UUID, request_der: bytes) -> x509_ocsp.OCSPCertStatus:
    answer = x509_ocsp.load_der_ocsp_response(responder.answer(ca_id, request_der))
    return answer.certificate_status


def test_a_kept_answer_follows_a_revocation_committed_by_another_process(
    pg_settings: Settings, writer: PrivateCA, reader: PrivateCA
) -> None:
    ca_id = enabled_intermediate(writer, enabled_root(writer))
    issued = issue(writer, ca_id).certificate
    request_der = ocsp_request(writer, ca_id, issued.certificate_der, nonce=False)
    with ReadModels.open(pg_settings) as read_models:
        responder = OCSPResponder(reader, read_models, OCSPSettings(validity=dt.timedelta(hours=1)))
        assert _status(responder, ca_id, request_der) is x509_ocsp.OCSPCertStatus.GOOD
        assert _status(responder, ca_id, request_der) is x509_ocsp.OCSPCertStatus.GOOD  # kept
        assert len(_head_backends(pg_settings)) == 1  # the reader's; the writer read none

        writer.revoke_certificate(OPERATOR, issued.id, RevocationReason.KEY_COMPROMISE)

        assert _status(responder, ca_id, request_der) is x509_ocsp.OCSPCertStatus.REVOKED
    reader.close()
    assert _head_backends(pg_settings) == []


def test_a_head_connection_the_server_ended_is_read_around_then_opened_again(
    pg_settings: Settings, writer: PrivateCA, reader: PrivateCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log_head, "RETRY_SECONDS", 0.2)
    enabled_root(writer)
    assert reader.recorder.max_notification_id() == _committed_head(pg_settings, writer)
    [first] = _head_backends(pg_settings)
    assert pg_settings.database_url is not None
    with psycopg.connect(pg_settings.database_url, autocommit=True) as connection:
        connection.execute("SELECT pg_terminate_backend(%s)", (first,))
    assert until(lambda: _head_backends(pg_settings) == [], 5, 0.02)

    enabled_root(writer)
    assert reader.recorder.max_notification_id() == _committed_head(pg_settings, writer)
    time.sleep(0.3)
    assert reader.recorder.max_notification_id() == _committed_head(pg_settings, writer)
    [second] = _head_backends(pg_settings)
    assert second != first


def test_threads_reading_at_once_never_see_a_head_older_than_a_commit(
    pg_settings: Settings, writer: PrivateCA, reader: PrivateCA
) -> None:
    ca_id = enabled_intermediate(writer, enabled_root(writer))
    stale: list[tuple[int, int | None]] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            committed = _committed_head(pg_settings, writer)
            seen = reader.recorder.max_notification_id()
            if seen is None or seen < committed:
                stale.append((committed, seen))

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(10):
            issue(writer, ca_id)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert stale == []
    assert len(_head_backends(pg_settings)) == 1
