"""Crash safety: SIGKILLed API workers, projection runners and whole servers lose nothing a
client was told was done, and a PostgreSQL restart costs clients 503s, never a 500 or a
hang, after which the service heals by itself.

The kill tests run real `pca serve` processes (and `pca projections run` apart) under
sustained issuance and revocation over HTTP, kill them at random moments, restart them, and
then check the event log, the read models and the served CRLs against what the clients got.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from cryptography import x509
from eventsourcing.persistence import OperationalError as StoreOperationalError
from eventsourcing.utils import get_topic

from api.http.app import create_app
from api.http.outage import is_storage_outage
from domain.adapters.settings import EVENTS_FILE, SQLITE_LOCK_TIMEOUT_S, Settings, open_service
from domain.application.service import PrivateCA
from domain.model.certificate import Certificate
from domain.model.errors import NotFoundError
from domain.model.tokens import Role
from domain.model.values import CertificateStatus, RevocationReason
from projections.readmodels.queries import ReadModels
from projections.readmodels.sql import CAS
from projections.readmodels.store import read_models_path
from projections.readmodels.worker import catch_up, rebuild
from projections.revocation.crlstore import BASE, DELTA, CRLStore, open_crl_store
from projections.revocation.publisher import CRLPublisher
from tests.builders import (
    ADMIN,
    OPERATOR,
    enabled_intermediate,
    enabled_root,
    issue,
    server_request,
)
from tests.conftest import make_settings
from tests.crash import (
    CrashableServer,
    Hierarchy,
    Ledger,
    Load,
    ProjectionProcess,
    request,
    served_serials,
    set_up_hierarchy,
)
from tests.live import free_port
from tests.pgserver import PostgresServer, create_schema
from tests.polling import until
from tests.projection_helpers import read_everything

LOAD_SECONDS = 16.0
CATCH_UP_SECONDS = 60.0
RECOVERY_SECONDS = 60.0  # psycopg_pool retries a lost server with backoff 1, 2, 4... s
HANG_SECONDS = 20.0  # a client waiting longer than this counts as hung


def _settings(store: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return make_settings(store, request, tmp_path / "data")


@contextlib.contextmanager
def _opened(settings: Settings) -> Iterator[PrivateCA]:
    service = open_service(settings)
    try:
        yield service
    finally:
        service.close()
        service.keystore.close()


def _until(condition: Callable[[], bool], seconds: float) -> bool:
    """Whether ``condition`` came true within ``seconds``, polling."""
    return until(condition, seconds, every=0.2)


# --- SIGKILL under load ---------------------------------------------------------------------


class Chaos:
    """Kills at random moments while the load runs, and restarts what a supervisor would."""

    def __init__(
        self, server: CrashableServer, runner: ProjectionProcess | None, rng: random.Random
    ) -> None:
        self.server = server
        self.runner = runner
        self.rng = rng
        self.log: list[str] = []

    def run(self, load: Load) -> None:
        steps = [self.kill_worker, self.kill_runner, self.kill_worker, self.kill_everything]
        steps += [self.kill_worker, self.kill_runner]
        started = time.monotonic()
        for step in steps:
            time.sleep(self.rng.uniform(1.0, 2.0))
            step()
            if self.runner is not None:
                self.runner.supervise()
        acknowledged = load.acknowledged()
        remaining = LOAD_SECONDS - (time.monotonic() - started)
        # Some work must be acknowledged after the last kill, whatever the machine's pace
        # (a worker killed last boots again first, slowly on a loaded machine).
        assert _until(lambda: load.acknowledged() > acknowledged, max(remaining, CATCH_UP_SECONDS))

    def kill_worker(self) -> None:
        workers = self.server.worker_pids()
        if workers:
            victim = self.rng.choice(workers)
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
            self.log.append(f"SIGKILL worker {victim}")

    def kill_runner(self) -> None:
        if self.runner is None:
            self.kill_worker()  # the embedded layout runs the projection in the workers
            return
        self.runner.kill()
        self.log.append("SIGKILL pca projections run")

    def kill_everything(self) -> None:
        self.server.kill()
        if self.runner is not None:
            self.runner.kill()
        self.log.append("SIGKILL the whole server")
        self.server.start()


@pytest.mark.slow
@pytest.mark.parametrize(("store", "layout"), [("sqlite", "embedded"), ("postgres", "apart")])
def test_sigkilled_processes_lose_nothing_a_client_was_told_was_done(
    store: str, layout: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    settings = _settings(store, request, tmp_path)
    seed = random.randrange(2**32)  # noqa: S311  # timing, not secrets
    with CrashableServer(settings, api_only=layout == "apart") as server:
        runner = ProjectionProcess(server) if layout == "apart" else None
        try:
            server.start()
            if runner is not None:
                runner.start()
            hierarchy = set_up_hierarchy(server)
            chaos = Chaos(server, runner, random.Random(seed))  # noqa: S311
            with Load(server.base, hierarchy) as load:
                chaos.run(load)
            context = f"seed {seed}, {chaos.log}, answers {dict(load.ledger.statuses)}"
            assert not load.ledger.unexpected, (context, load.ledger.unexpected[:5])
            assert load.ledger.revoked, context
            _assert_projections_catch_up(settings, runner)
            _assert_served_crls_list(load.ledger, server, hierarchy)
        finally:
            if runner is not None:
                runner.stop()
    _assert_event_log_holds(load.ledger, settings)
    _assert_cas_replay(settings, hierarchy)
    _assert_read_models_equal_a_rebuild(settings)


def _assert_projections_catch_up(settings: Settings, runner: ProjectionProcess | None) -> None:
    """The read models reach the end of the log (a restarted runner resumes)."""
    with _opened(settings) as service, ReadModels.open(settings) as read_models:

        def caught_up() -> bool:
            if runner is not None:
                runner.supervise()
            head = service.recorder.max_notification_id() or 0
            return read_models.position() >= head

        assert _until(caught_up, CATCH_UP_SECONDS), "the read models stopped following the log"


def _assert_served_crls_list(ledger: Ledger, server: CrashableServer, hierarchy: Hierarchy) -> None:
    """The CRL at each certificate's distribution point (with its delta) lists every
    acknowledged revocation of that CA, signed by the CA."""
    urls = {issued.ca_id: issued.crl_url for issued in ledger.issued.values()}
    for ca_id, expected in ledger.revoked_serials().items():
        assert ca_id in hierarchy.intermediate_ids
        der = request(server.base, "GET", f"/ca/{ca_id}.crt").body
        missing = _missing_from_crl(urls[ca_id], x509.load_der_x509_certificate(der), expected)
        assert not missing, f"the CRL of {ca_id} misses {len(missing)} of {len(expected)}"


def _missing_from_crl(url: str, issuer: x509.Certificate, expected: set[int]) -> set[int]:
    """The serials in ``expected`` that the CRL at ``url`` still lacks after the publisher
    had time to catch up."""
    missing = set(expected)

    def complete() -> bool:
        missing.difference_update(served_serials(url, issuer) or set())
        return not missing

    _until(complete, CATCH_UP_SECONDS)
    return missing


def _assert_event_log_holds(ledger: Ledger, settings: Settings) -> None:
    """Every acknowledged certificate and revocation is in the log; no serial twice."""
    with _opened(settings) as service:
        missing = []
        for issued in ledger.issued.values():
            try:
                certificate = service.get_certificate(UUID(issued.id))
            except NotFoundError as error:  # reported with the others below
                missing.append(f"{issued.id}: {error}")
                continue
            assert certificate.serial_number == issued.serial_number
            if issued.id in ledger.revoked:
                assert certificate.status is CertificateStatus.REVOKED, issued.id
        assert not missing, f"{len(missing)} acknowledged certificates are not in the log"
        serials = _issued_serials(service)
    assert len(serials) == len(set(serials)), "a serial number was issued twice"
    assert {int(issued.serial_number, 16) for issued in ledger.issued.values()} <= set(serials)


def _assert_cas_replay(settings: Settings, hierarchy: Hierarchy) -> None:
    """Every CA loads from its events alone, in a process with nothing cached: a save
    that failed mid-way left no gap in a CA's versions."""
    with _opened(settings) as service:
        for ca_id in (hierarchy.root_id, *hierarchy.intermediate_ids):
            service.get_ca(UUID(ca_id))


def _issued_serials(service: PrivateCA) -> list[int]:
    """The serial of every CertificateIssued event in the log, in log order."""
    topic = get_topic(Certificate.CertificateIssued)
    serials: list[int] = []
    position = 0
    while True:
        batch = service.recorder.select_notifications(
            position, 1000, topics=[topic], inclusive_of_start=False
        )
        if not batch:
            return serials
        for notification in batch:
            event = service.mapper.to_domain_event(notification)
            assert isinstance(event, Certificate.CertificateIssued)
            serials.append(int(event.serial_number, 16))
        position = batch[-1].id


def _assert_read_models_equal_a_rebuild(settings: Settings) -> None:
    """What the killed and restarted runners built equals a replay from scratch, both at
    the same head of the log.

    The incremental read models are first brought to the head, as the next start would:
    a stop that came to SIGKILL (the harness's, after its grace) may leave them behind,
    and that is no loss (tests/test_graceful_stop.py holds a graceful stop to the head).
    """
    now = dt.datetime.now(dt.UTC)
    catch_up(settings)
    incremental = read_everything(settings, now)
    with _opened(settings) as service:
        assert incremental.position == service.recorder.max_notification_id()
    rebuild(settings)
    assert read_everything(settings, now) == incremental


# --- PostgreSQL restart -------------------------------------------------------------------


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, since the test restarts it."""
    with PostgresServer.start(tmp_path / "pg") as server:
        yield server


@pytest.mark.slow
def test_a_postgresql_restart_costs_clients_503s_and_the_service_heals_itself(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    url = own_postgres.url
    settings = Settings(
        data_dir=tmp_path / "data", database_url=url, database_schema=create_schema(url)
    )
    with CrashableServer(settings) as server:
        server.start()
        hierarchy = set_up_hierarchy(server)
        with Load(server.base, hierarchy) as load:
            assert _until(lambda: load.acknowledged() > 0, CATCH_UP_SECONDS)
            own_postgres.stop_server()
            time.sleep(5)  # the outage lasts a while, and someone has noticed it
            assert _until(lambda: _answered_since(load.ledger, 0.0, 503), RECOVERY_SECONDS)
            own_postgres.start_server()
            restarted = time.monotonic()
            # A revocation acknowledged after the restart must reach the CRL: the read-model
            # runner and the publisher came back too.
            assert _until(lambda: _answered_since(load.ledger, restarted, 200), RECOVERY_SECONDS), (
                f"no revocation succeeded after PostgreSQL came back: {dict(load.ledger.statuses)}"
            )
            time.sleep(2)
        ledger = load.ledger
        assert not ledger.unexpected, (dict(ledger.statuses), ledger.unexpected[:5])
        assert set(ledger.statuses) <= {200, 201, 503}, dict(ledger.statuses)
        assert ledger.statuses[503], "nobody noticed PostgreSQL going away"
        assert ledger.slowest < HANG_SECONDS, f"a client waited {ledger.slowest:.1f} s"
        _assert_projections_catch_up(settings, None)
        _assert_served_crls_list(ledger, server, hierarchy)
    _assert_event_log_holds(ledger, settings)
    _assert_cas_replay(settings, hierarchy)


def _answered_since(ledger: Ledger, moment: float, wanted: int) -> bool:
    """Whether a request sent after ``moment`` was answered ``wanted``."""
    with ledger.lock:
        return any(status == wanted and sent >= moment for sent, _, status in ledger.timeline)


def test_a_revocation_whose_crl_failed_to_store_is_served_on_the_next_round(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The publisher's connection to the CRL table drops right after it signed a delta
    (a PostgreSQL restart or failover): the next round still serves the revocation."""
    settings = _settings("postgres", request, tmp_path)
    with _opened(settings) as service, ReadModels.open(settings) as read_models:
        root_id = enabled_root(service, quota=5)
        ca_id = enabled_intermediate(service, root_id, remaining=5)
        certificate = issue(service, ca_id, server_request("www.example.com")).certificate
        crls = open_crl_store(settings)
        try:
            publisher = CRLPublisher(service, read_models, crls)
            catch_up(settings)
            publisher.publish(ca_id)
            service.revoke_certificate(OPERATOR, certificate.id, RevocationReason.KEY_COMPROMISE)
            catch_up(settings)
            _drop_crl_store_connection(settings)
            with pytest.raises(psycopg.OperationalError):
                publisher.publish(ca_id)
            publisher.publish(ca_id)
            served = _stored_serials(crls, ca_id)
        finally:
            crls.close()
    assert int(certificate.serial_number, 16) in served


def _drop_crl_store_connection(settings: Settings) -> None:
    """End the server session that last wrote this schema's CRL table, as a restart would."""
    assert settings.database_url is not None
    pattern = f'%"{settings.database_schema}"."pca_crls"%'
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        ended = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE %s AND pid <> pg_backend_pid()",
            (pattern,),
        ).fetchall()
    assert ended == [(True,)]


def _stored_serials(crls: CRLStore, ca_id: UUID) -> set[int]:
    """The serials on the base and delta CRL ``crls`` serves for ``ca_id``."""
    serials: set[int] = set()
    for kind in (BASE, DELTA):
        stored = crls.get(ca_id, kind)
        assert stored is not None
        serials |= {entry.serial_number for entry in x509.load_der_x509_crl(stored.der)}
    return serials


# --- SQLite locked, storage errors -----------------------------------------------------------


@pytest.mark.slow
def test_sqlite_locked_past_the_busy_timeout_answers_503_then_serves_again(
    sqlite_settings: Settings,
) -> None:
    with CrashableServer(sqlite_settings) as server:
        server.start()
        hierarchy = set_up_hierarchy(server, intermediates=1)
        path = f"/api/v1/cas/{hierarchy.intermediate_ids[0]}/certificates"
        body = {
            "type": "server",
            "common_name": "locked.example.com",
            "sans": [{"type": "dns", "value": "locked.example.com"}],
            "validity_days": 30,
        }
        holder = sqlite3.connect(sqlite_settings.data_dir / EVENTS_FILE, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another writer that does not let go
            answer = request(server.base, "POST", path, hierarchy.operator, body)
        finally:
            holder.close()
        assert answer.status == 503, answer.body[:300]
        assert answer.headers["Retry-After"] == "1"
        assert answer.headers["Content-Type"] == "application/problem+json"
        assert answer.json()["title"] == "Storage unavailable"
        assert SQLITE_LOCK_TIMEOUT_S <= answer.seconds < HANG_SECONDS
        after = request(server.base, "POST", path, hierarchy.operator, body)
        assert after.status == 201, after.body[:300]
    # The failed save left nothing behind that breaks the CA's history.
    _assert_cas_replay(sqlite_settings, hierarchy)


def _sqlite_error(statement: str, database: Path) -> sqlite3.OperationalError:
    with contextlib.closing(sqlite3.connect(database, timeout=0)) as connection:
        try:
            connection.execute(statement)
        except sqlite3.OperationalError as error:
            return error
    raise AssertionError(f"{statement} succeeded")


def _disk_full_error(database: Path) -> sqlite3.OperationalError:
    """SQLite's own "database or disk is full", from a file capped at a few pages."""
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as connection:
        connection.execute("CREATE TABLE filler (x)")
        connection.execute("PRAGMA max_page_count = 3")
        try:
            connection.execute("INSERT INTO filler VALUES (zeroblob(100000))")
        except sqlite3.OperationalError as error:
            return error
    raise AssertionError("the capped database took 100 kB")


def _wrapped(error: Exception) -> StoreOperationalError:
    """``error`` as eventsourcing's recorders raise it."""
    try:
        raise StoreOperationalError(str(error)) from error
    except StoreOperationalError as wrapped:
        return wrapped


def test_only_storage_that_cannot_answer_counts_as_an_outage(tmp_path: Path) -> None:
    database = tmp_path / "outage.db"
    with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as holder:
        holder.execute("CREATE TABLE t (x)")
        holder.execute("BEGIN EXCLUSIVE")
        locked = _sqlite_error("SELECT * FROM t", database)
    misspelt = _sqlite_error("SELECT * FROM no_such_table", database)
    full = _disk_full_error(tmp_path / "full.db")
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(f"postgresql://pca@127.0.0.1:{free_port()}/pca", connect_timeout=2)

    assert "locked" in str(locked)
    assert "full" in str(full)
    for outage in (locked, full, refused.value, _wrapped(locked), _wrapped(refused.value)):
        assert is_storage_outage(outage), outage
    for bug in (misspelt, _wrapped(misspelt), ValueError("not storage")):
        assert not is_storage_outage(bug), bug


def test_a_read_model_table_gone_missing_is_a_500_not_a_retry_forever_503(
    sqlite_settings: Settings,
) -> None:
    """SQLite reports a missing table with the exception class of a lock; clients must not
    be told to retry what no retry will fix."""
    app = create_app(sqlite_settings, run_projections=False)
    try:
        token, _ = app.extensions["pca"].service.create_token(ADMIN, "auditor", Role.AUDITOR)
        catch_up(sqlite_settings)  # so the list does not wait for the token's event
        with contextlib.closing(sqlite3.connect(read_models_path(sqlite_settings))) as db:
            db.execute(f"DROP TABLE {CAS}")
        answer = app.test_client().get("/api/v1/cas", headers={"Authorization": f"Bearer {token}"})
    finally:
        app.extensions["pca"].close()
    assert answer.status_code == 500
    assert answer.content_type == "application/problem+json"
    assert "Retry-After" not in answer.headers
