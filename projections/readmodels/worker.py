"""Running the projection: follow the log, catch up, rebuild.

Entry points (the ``pca`` command line wires the first and last):

- :func:`run_forever` for ``pca projections run``: a worker process apart from the API.
- :func:`run_in_thread` for the embedded default: the API process follows the log itself.
- :func:`catch_up`: process what the log holds now, then return.
- :func:`rebuild` for ``pca projections rebuild``: drop the read models and replay the log.
- :func:`catch_up_to_head`: the last step of a graceful stop, after the writers stopped.

Each holds the runner lease (:mod:`projections.readmodels.lease`) while it writes, and each resumes
from the position recorded with the read models, so a restart, even after ``kill -9``,
continues exactly after the last committed batch.

The log is read in batches with :class:`PollingSubscription` (eventsourcing's SQLite
recorder has no subscriptions); on PostgreSQL a ``LISTEN`` on the event store's channel
wakes the poller as soon as events are committed, on SQLite a query waiting in any process
wakes it through a FIFO (:mod:`projections.readmodels.wakeup`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import TracebackType
from typing import Self

from eventsourcing.persistence import ApplicationRecorder, Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier

from domain.adapters.resources import Closeable
from domain.adapters.settings import Settings
from projections.errors import RunnerActiveError
from projections.readmodels.decoding import EventApplier
from projections.readmodels.lease import acquire_lease
from projections.readmodels.projection import ReadModelProjection
from projections.readmodels.store import open_event_log, open_view
from projections.readmodels.wakeup import WAKE_FIFO, FifoListener, wake_runner

Progress = Callable[[int, int], None]
"""Called as ``progress(position, end)`` after each batch: log positions, not counts."""
Applied = Callable[[Sequence[Notification]], None]
"""Called with each batch the runner has committed to the read models."""

DEFAULT_BATCH_SIZE = 500
CATCH_UP_BATCH_SIZE = 5000
"""Events per transaction of a catch-up or rebuild: fewer commits (and, on SQLite, fewer
and larger text-index segments) made it 1.3-1.6x faster than batches of 500 at 50k."""
SQLITE_IDLE_WAIT = 0.05  # seconds between polls of an idle SQLite log
POSTGRES_IDLE_WAIT = 1.0  # NOTIFY wakes the poller; this only bounds a missed one
STANDBY_RETRY = 5.0  # seconds between attempts of a runner waiting for the lease
FINAL_CATCH_UP_SECONDS = 5.0  # a graceful stop's last catch-up; gunicorn kills at 10 s
_FINAL_POLL = 0.1  # seconds between looks while another runner holds the lease
_NOTIFY_TIMEOUT = 0.5

logger = logging.getLogger(__name__)


class PollingSubscription(Iterator[Sequence[Notification]]):
    """Batches of notifications that follow position ``after`` in ``recorder``'s log.

    Blocks while nothing new is there, polling every ``idle_wait`` seconds; :meth:`wake`
    cuts a wait short. Iteration ends once ``stop`` is set.
    """

    def __init__(
        self,
        recorder: ApplicationRecorder,
        after: int,
        stop: threading.Event,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        idle_wait: float = SQLITE_IDLE_WAIT,
    ) -> None:
        self.position = after
        self._recorder = recorder
        self._stop = stop
        self._batch_size = batch_size
        self._idle_wait = idle_wait
        self._wakeup = threading.Event()

    def wake(self) -> None:
        """Look at the log now rather than at the next poll."""
        self._wakeup.set()

    def __next__(self) -> Sequence[Notification]:
        while not self._stop.is_set():
            batch = self._recorder.select_notifications(
                start=self.position, limit=self._batch_size, inclusive_of_start=False
            )
            if batch:
                self.position = batch[-1].id
                return batch
            self._wakeup.wait(self._idle_wait)
            self._wakeup.clear()
        raise StopIteration


class Worker(Closeable):
    """The projection wired to the log and the read models of one ``Settings``."""

    def __init__(self, settings: Settings, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self._log = open_event_log(settings)
        self._view = open_view(settings)
        self._projection = ReadModelProjection(self._view)
        self._applier = EventApplier(self._log.mapper)
        self._batch_size = batch_size
        self._idle_wait = POSTGRES_IDLE_WAIT if settings.uses_postgres else SQLITE_IDLE_WAIT
        self._fifo = _wake_fifo(settings)

    def close(self) -> None:
        self._view.close()
        self._log.close()

    def reset(self) -> None:
        """Empty the read models and forget their position."""
        self._view.reset()

    def analyze(self) -> None:
        """Refresh the planner's statistics, which fresh tables lack."""
        self._view.analyze()

    def head(self) -> int:
        """The position of the last event in the log (0 while it is empty)."""
        return self._log.recorder.max_notification_id() or 0

    def position(self) -> int:
        """The position up to which the read models are complete."""
        return self._view.position()

    def catch_up(self, progress: Progress | None = None, limit: int | None = None) -> int:
        """Apply the log up to its current end (at most ``limit`` events); the count.

        From position 0 without a limit (a first catch-up, a rebuild) it is a bulk load
        (:meth:`ReadModelView.bulk_load`): the indexes are built once at the end rather
        than row by row, as 1M certificates dirtied a page per row of each index keyed by
        a random value.
        """
        self._adopt_schema()
        bulk = limit is None and self._view.position() == 0
        with self._view.bulk_load() if bulk else nullcontext():
            return self._apply_log(progress, limit)

    def _apply_log(self, progress: Progress | None, limit: int | None) -> int:
        end = self._log.recorder.max_notification_id() or 0
        position = self._view.position()
        processed = 0
        if progress is not None:
            progress(position, end)
        while position < end and (limit is None or processed < limit):
            size = self._batch_size if limit is None else min(self._batch_size, limit - processed)
            batch = self._log.recorder.select_notifications(
                start=position, limit=size, inclusive_of_start=False
            )
            if not batch:
                break
            self._apply(batch, position)
            position = batch[-1].id
            processed += len(batch)
            if progress is not None:
                progress(position, max(end, position))
        return processed

    def follow(
        self,
        stop: threading.Event,
        on_subscribed: Callable[[PollingSubscription], None],
        on_applied: Applied = lambda _: None,
    ) -> None:
        """Apply the log as it grows until ``stop`` is set, calling ``on_applied`` with
        each batch once it is committed."""
        self._adopt_schema()
        subscription = PollingSubscription(
            self._log.recorder,
            self._view.position(),
            stop,
            batch_size=self._batch_size,
            idle_wait=self._idle_wait,
        )
        on_subscribed(subscription)
        logger.info("read models follow the log from position %d", subscription.position)
        fifo: AbstractContextManager[object] = (
            nullcontext() if self._fifo is None else FifoListener(self._fifo, subscription.wake)
        )
        with _NotifyListener(self._log.recorder, subscription.wake), fifo:
            previous = subscription.position
            for batch in subscription:
                self._apply(batch, previous)
                previous = batch[-1].id
                on_applied(batch)

    def _adopt_schema(self) -> None:
        dropped = self._view.adopt_schema()
        if dropped:
            logger.warning(
                "the read models (at position %d) were laid out by another release; "
                "projecting the log again from the start",
                dropped,
            )

    def _apply(self, batch: Sequence[Notification], previous: int) -> None:
        self._projection.process_batch(batch, previous, self._applier)


class _NotifyListener:
    """On PostgreSQL, calls ``wake`` whenever the event store announces new events."""

    def __init__(self, recorder: ApplicationRecorder, wake: Callable[[], None]) -> None:
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        if isinstance(recorder, PostgresApplicationRecorder):
            self._thread = threading.Thread(
                target=self._listen,
                args=(recorder, wake),
                name="pca-readmodels-listen",
                daemon=True,
            )

    def __enter__(self) -> Self:
        if self._thread is not None:
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _listen(self, recorder: PostgresApplicationRecorder, wake: Callable[[], None]) -> None:
        try:
            with recorder.datastore.get_connection() as connection:
                connection.execute(SQL("LISTEN {0}").format(Identifier(recorder.channel_name)))
                while not self._done.is_set():
                    for _ in connection.notifies(timeout=_NOTIFY_TIMEOUT, stop_after=1):
                        wake()
        except Exception:
            # Polling still finds new events, only later; say why wake-ups stopped.
            logger.exception("LISTEN for new events failed; falling back to polling")


def catch_up(
    settings: Settings,
    *,
    progress: Progress | None = None,
    batch_size: int = CATCH_UP_BATCH_SIZE,
    limit: int | None = None,
) -> int:
    """Bring the read models up to the end of the log as it is now; return the number of
    events processed (at most ``limit``). Raises RunnerActiveError while a runner is active.
    """
    with acquire_lease(settings), Worker(settings, batch_size=batch_size) as worker:
        return worker.catch_up(progress, limit)


def catch_up_to_head(settings: Settings, *, timeout: float = FINAL_CATCH_UP_SECONDS) -> int:
    """Bring the read models to the head of the log as it is now; return their position.

    The last step of a graceful stop, called once this process's writers (the CRL
    publisher, and the runner's own thread) have stopped, so that no event this process
    wrote is left for the next start to project. While another runner holds the lease (a
    sibling process, still following or stopping too), waits for it to pass the head or
    to let go, then catches up itself. Gives up after ``timeout`` seconds with a warning:
    the next runner resumes from where the read models are, and read-your-writes waits.
    """
    deadline = time.monotonic() + timeout
    with Worker(settings) as worker:
        head = worker.head()
        while worker.position() < head and time.monotonic() < deadline:
            try:
                with acquire_lease(settings):
                    while worker.position() < head and time.monotonic() < deadline:
                        if not worker.catch_up(limit=DEFAULT_BATCH_SIZE):
                            break
            except RunnerActiveError:  # its holder follows the log, or lets go soon
                time.sleep(_FINAL_POLL)
        position = worker.position()
    if position < head:
        logger.warning(
            "the read models stop at position %d of %d; the next runner resumes there",
            position,
            head,
        )
    return position


def rebuild(settings: Settings, progress: Progress | None = None) -> int:
    """Drop the read models and rebuild them from the start of the log; return the number
    of events processed. ``progress(position, end)`` follows each batch.

    Needs the runner stopped (RunnerActiveError otherwise): stop ``pca projections run``,
    or the API when it runs the projection in-process. Queries during a rebuild see the
    read models as far as it has come (:meth:`ReadModels.position` says how far). The
    planner's statistics are refreshed at the end.
    """
    with acquire_lease(settings), Worker(settings, batch_size=CATCH_UP_BATCH_SIZE) as worker:
        worker.reset()
        processed = worker.catch_up(progress)
        worker.analyze()
        return processed


def run_forever(
    settings: Settings, stop: threading.Event, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> None:
    """Keep the read models up to date until ``stop`` is set (``pca projections run``);
    returns within a second of it.

    Raises RunnerActiveError at once if another runner serves these read models; any
    other error ends the run too, for the process supervisor to restart it, and the
    restart resumes after the last committed batch.
    """
    with acquire_lease(settings), Worker(settings, batch_size=batch_size) as worker:
        worker.follow(stop, lambda _: None)


class RunnerHandle:
    """A projection runner on a thread of this process (see :func:`run_in_thread`)."""

    def __init__(self, settings: Settings, *, standby_retry: float = STANDBY_RETRY) -> None:
        self._settings = settings
        self._standby_retry = standby_retry
        self._on_applied: Applied = lambda _: None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._subscription: PollingSubscription | None = None
        self._thread = threading.Thread(target=self._serve, name="pca-readmodels", daemon=True)

    def start(self, on_applied: Applied | None = None) -> None:
        """Follow the log on the runner's thread, calling ``on_applied`` (on that thread)
        with each batch it commits: the CRL publisher is woken by revocations there."""
        if on_applied is not None:
            self._on_applied = on_applied
        self._thread.start()

    @property
    def is_serving(self) -> bool:
        """True while this runner holds the lease and follows the log."""
        return self._subscription is not None

    def wake(self) -> None:
        """Look at the log now (after a command) rather than at the next poll."""
        with self._lock:
            if self._subscription is not None:
                self._subscription.wake()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop after the batch in progress, wait for the thread to end, then bring the read
        models to the log's head (:func:`catch_up_to_head`): stop this process's other
        writers first, so that their last events are projected too."""
        self._stop.set()
        self.wake()
        self._thread.join(timeout)
        try:
            catch_up_to_head(self._settings)
        except Exception:  # storage gone: the next runner resumes where the models are
            logger.exception("the read models' last catch-up failed")

    def _serve(self) -> None:
        standing_by = False
        while not self._stop.is_set():
            try:
                with acquire_lease(self._settings), Worker(self._settings) as worker:
                    standing_by = False
                    worker.follow(self._stop, self._subscribed, self._on_applied)
            except RunnerActiveError:
                if not standing_by:  # said once, not at every retry
                    logger.info("another runner serves the read models; standing by")
                standing_by = True
            except Exception:
                logger.exception("the read-model runner failed; retrying")
            finally:
                self._subscribed(None)
            self._stop.wait(self._standby_retry)

    def _subscribed(self, subscription: PollingSubscription | None) -> None:
        with self._lock:
            self._subscription = subscription


def nudger(settings: Settings, runner: RunnerHandle | None) -> Callable[[], None] | None:
    """What a query waiting for a position calls so the runner looks at the log now: this
    process's ``runner``, and on SQLite the runner of any process, through its FIFO (on
    PostgreSQL each commit's NOTIFY has already woken it)."""
    fifo = _wake_fifo(settings)
    if fifo is None:
        return runner.wake if runner is not None else None

    def nudge() -> None:
        if runner is not None and runner.is_serving:
            runner.wake()
        else:
            wake_runner(fifo)

    return nudge


def _wake_fifo(settings: Settings) -> Path | None:
    return None if settings.uses_postgres else settings.data_dir / WAKE_FIFO


def run_in_thread(settings: Settings, *, standby_retry: float = STANDBY_RETRY) -> RunnerHandle:
    """Start following the log on a daemon thread of this process; ``stop()`` ends it.

    For the embedded default, so one command serves the API and keeps its read models.
    If another runner holds the lease (a ``pca projections run`` process, or a sibling
    API process), this one stands by and retries every ``standby_retry`` seconds, taking
    over when the other stops. Errors are logged and retried the same way.
    """
    handle = RunnerHandle(settings, standby_retry=standby_retry)
    handle.start()
    return handle
