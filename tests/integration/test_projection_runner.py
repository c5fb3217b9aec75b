"""Running the read models: catch-up, exact resume after a stop or a kill, rebuild, one
runner at a time, the in-process runner and read-your-writes; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import stat
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from eventsourcing.persistence import Notification, Tracking
from eventsourcing.projection import ProjectionRunner

from domain.adapters.settings import Settings, open_service
from domain.application.service import PrivateCA
from projections.errors import PositionMovedError, RunnerActiveError
from projections.readmodels.decoding import EventApplier
from projections.readmodels.lease import acquire_lease
from projections.readmodels.models import CertificateFilter
from projections.readmodels.projection import EventLog, ReadModelProjection
from projections.readmodels.queries import ReadModels
from projections.readmodels.sql import SEARCH
from projections.readmodels.store import open_event_log, open_view, projection_env, read_models_path
from projections.readmodels.view import PostgresReadModelView, ReadModelView
from projections.readmodels.worker import (
    RunnerHandle,
    Worker,
    catch_up,
    rebuild,
    run_forever,
    run_in_thread,
)
from tests.builders import enabled_intermediate, enabled_root, issue
from tests.conftest import SettableClock, make_settings
from tests.projection_helpers import (
    common_names,
    issue_many,
    list_all,
    read_everything,
    write_history,
)

WAIT_SECONDS = 30.0  # bounds waits for what a runner does within milliseconds


def test_a_rebuild_equals_the_incrementally_built_read_models(
    service: PrivateCA, settings: Settings, clock: SettableClock
) -> None:
    history = write_history(service)
    catch_up(settings, batch_size=3)
    issue_many(service, history.issuing_id, 3, prefix="later")
    catch_up(settings, batch_size=1)
    incremental = read_everything(settings, clock.now)
    calls: list[tuple[int, int]] = []
    processed = rebuild(settings, lambda position, end: calls.append((position, end)))
    assert read_everything(settings, clock.now) == incremental
    with open_event_log(settings) as log:
        assert processed == len(log.recorder.select_notifications(start=None, limit=10_000))
    assert calls[0] == (0, incremental.position)
    assert calls[-1] == (incremental.position, incremental.position)


def test_a_runner_stopped_between_batches_resumes_exactly(
    service: PrivateCA, settings: Settings, clock: SettableClock
) -> None:
    history = write_history(service)
    assert catch_up(settings, batch_size=3, limit=7) == 7
    with ReadModels.open(settings) as read_models:
        assert 0 < read_models.position() < history.last_position
    catch_up(settings, batch_size=3)
    resumed = read_everything(settings, clock.now)
    assert resumed.position == history.last_position
    rebuild(settings)
    assert read_everything(settings, clock.now) == resumed


DEFERRED_INDEXES = {
    "rm_certificates_by_ca",
    "rm_certificates_by_serial",
    "rm_certificates_by_ca_status",
    "rm_certificates_issued_expiry",
    "rm_revocations_by_position",
    SEARCH,  # on SQLite a table (FTS5), on PostgreSQL an index (GIN)
}


def _index_names(view: ReadModelView) -> set[str]:
    if isinstance(view, PostgresReadModelView):
        statement = "SELECT indexname AS name FROM pg_indexes WHERE schemaname = %s"
        rows = view.fetch(statement, (view.datastore.schema,))
    else:
        statement = "SELECT name FROM sqlite_master WHERE type = 'index' OR name = ?"
        rows = view.fetch(statement, (SEARCH,))
    return {row["name"] for row in rows}


def _found_by_text(settings: Settings, now: dt.datetime) -> list[str]:
    with ReadModels.open(settings) as read_models:
        return common_names(read_models, CertificateFilter(text="example.com"), now)


def _found_by_scan(settings: Settings, now: dt.datetime) -> list[str]:
    with ReadModels.open(settings) as read_models:
        listed = list_all(read_models, CertificateFilter(), now)
    return [
        c.common_name
        for c in listed
        if any("example.com" in text for text in (c.common_name, *(s.value for s in c.sans)))
    ]


def test_a_catch_up_from_zero_cut_short_leaves_every_index_to_the_next_open(
    service: PrivateCA, settings: Settings, clock: SettableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_history(service)
    catch_up(settings)
    expected = read_everything(settings, clock.now)
    found = _found_by_text(settings, clock.now)
    during: list[set[str]] = []
    apply = Worker._apply

    def crash_after_two_batches(worker: Worker, batch: Sequence[Notification], at: int) -> None:
        apply(worker, batch, at)
        during.append(_index_names(worker._view))
        if len(during) == 2:
            raise RuntimeError("killed midway")

    with open_view(settings) as view:
        view.reset()
    monkeypatch.setattr(Worker, "_apply", crash_after_two_batches)
    with pytest.raises(RuntimeError, match="killed midway"):
        catch_up(settings, batch_size=10)
    monkeypatch.undo()
    assert not DEFERRED_INDEXES & during[0]  # the bulk load ran without them
    with open_view(settings) as view:
        assert 0 < view.position() < expected.position
        assert _index_names(view) >= DEFERRED_INDEXES
    partial = _found_by_text(settings, clock.now)  # the next open indexed what is there
    assert partial
    assert partial == _found_by_scan(settings, clock.now)
    catch_up(settings)
    assert read_everything(settings, clock.now) == expected
    assert _found_by_text(settings, clock.now) == found
    with open_view(settings) as view:
        assert _index_names(view) >= DEFERRED_INDEXES


def test_a_batch_that_does_not_start_at_the_recorded_position_changes_nothing(
    service: PrivateCA, settings: Settings, clock: SettableClock
) -> None:
    write_history(service)
    catch_up(settings, limit=5)
    before = read_everything(settings, clock.now)
    with open_event_log(settings) as log, open_view(settings) as view:
        notifications = log.recorder.select_notifications(start=1, limit=8)
        with pytest.raises(PositionMovedError):
            ReadModelProjection(view).process_batch(
                notifications, previous=0, applier=EventApplier(log.mapper)
            )
    assert read_everything(settings, clock.now) == before


def test_an_event_already_tracked_is_not_applied_twice(
    service: PrivateCA, settings: Settings, clock: SettableClock
) -> None:
    write_history(service)
    catch_up(settings, limit=5)
    before = read_everything(settings, clock.now)
    with open_event_log(settings) as log, open_view(settings) as view:
        (notification,) = log.recorder.select_notifications(start=5, limit=1)
        event = log.mapper.to_domain_event(notification)
        with pytest.raises(Exception, match="Failed to record tracking"):
            ReadModelProjection(view).process_event(event, Tracking(log.name, notification.id))
    assert read_everything(settings, clock.now) == before


def test_only_one_runner_serves_the_read_models(service: PrivateCA, settings: Settings) -> None:
    first = run_in_thread(settings, standby_retry=0.05)
    try:
        _wait_until(lambda: first.is_serving)
        with pytest.raises(RunnerActiveError, match="stop it first"):
            catch_up(settings)
        with pytest.raises(RunnerActiveError):
            rebuild(settings)
        second = run_in_thread(settings, standby_retry=0.05)
        time.sleep(0.2)
        assert not second.is_serving  # standing by
    finally:
        first.stop()
    try:
        _wait_until(lambda: second.is_serving)  # took over
        ca_id = enabled_intermediate(service, enabled_root(service))
        with ReadModels.open(settings, nudge=second.wake) as read_models:
            assert read_models.wait_for(issue(service, ca_id).position, timeout=WAIT_SECONDS)
    finally:
        second.stop()


def test_the_in_process_runner_catches_up_then_gives_read_your_writes(
    service: PrivateCA, settings: Settings, clock: SettableClock
) -> None:
    history = write_history(service)
    # Stores are opened before the thread that writes them starts, as the app does: two
    # first opens of a new SQLite file race to switch it to WAL.
    runner = RunnerHandle(settings)
    with ReadModels.open(settings, nudge=runner.wake) as read_models:
        runner.start()
        try:
            assert read_models.wait_for(history.last_position, timeout=WAIT_SECONDS)
            issued = issue(service, history.issuing_id)
            assert read_models.wait_for(issued.position, timeout=WAIT_SECONDS)
            page = read_models.list_certificates(
                CertificateFilter(issuer_id=history.issuing_id), clock.now, limit=1
            )
            assert page.items[0].id == issued.certificate.id
        finally:
            runner.stop()


def test_waiting_for_a_position_not_reached_gives_up_at_the_timeout(
    settings: Settings,
) -> None:
    with ReadModels.open(settings) as read_models:
        started = time.monotonic()
        assert not read_models.wait_for(read_models.position() + 1, timeout=0.2)
        assert time.monotonic() - started < 5.0  # gave up, even on a loaded machine
        assert read_models.wait_for(None, timeout=0)
        assert read_models.wait_for(0, timeout=0)


def test_the_standalone_runner_follows_the_log_until_stopped(
    service: PrivateCA, settings: Settings
) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            run_forever(settings, stop, batch_size=2)
        except BaseException as error:
            errors.append(error)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        ca_id = enabled_intermediate(service, enabled_root(service))
        positions = [issue(service, ca_id).position for _ in range(3)]
        with ReadModels.open(settings) as read_models:
            assert read_models.wait_for(positions[-1], timeout=WAIT_SECONDS)
    finally:
        stop.set()
        runner.join(timeout=WAIT_SECONDS)
    assert not runner.is_alive()
    assert errors == []
    with acquire_lease(settings):  # released on the way out
        pass


def test_the_read_model_file_is_private(sqlite_settings: Settings) -> None:
    with ReadModels.open(sqlite_settings):
        mode = stat.S_IMODE(read_models_path(sqlite_settings).stat().st_mode)
    assert mode == 0o600


def test_eventsourcings_projection_runner_keeps_the_same_read_models(
    request: pytest.FixtureRequest, tmp_path: Path, clock: SettableClock
) -> None:
    settings = make_settings("postgres", request, tmp_path / "data")
    service = open_service(settings, clock=clock)
    try:
        history = write_history(service)
        with ProjectionRunner(
            application_class=EventLog,
            projection_class=ReadModelProjection,
            view_class=PostgresReadModelView,
            env=projection_env(settings),
        ) as runner:
            runner.wait(history.last_position, timeout=WAIT_SECONDS)  # caught up
            runner.wait(issue(service, history.issuing_id).position, timeout=WAIT_SECONDS)  # NOTIFY
        by_runner = read_everything(settings, clock.now)
    finally:
        service.close()
        service.keystore.close()
    rebuild(settings)
    assert read_everything(settings, clock.now) == by_runner


def _wait_until(condition: Callable[[], bool], timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_several_processes_may_open_fresh_read_models_at_once(settings: Settings) -> None:
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def open_and_close() -> None:
        start.wait()
        try:
            with open_view(settings) as view:
                assert view.position() == 0
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_and_close) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
