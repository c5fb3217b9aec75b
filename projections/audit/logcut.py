"""Cuts of the event log: where an audit replay or an export stops, and reading up to it.

A cut is a log **position** or a **time**. DESIGN §4: positions, not clocks. A time cut is
resolved to a position by binary search over the chain's commit stamps (``recorded_at``,
taken under the log's write lock and never going backwards along positions: see
:mod:`domain.audit.chain`): the last event committed at or before the time. The events'
own timestamps are taken by their writers before the lock, so with concurrent writers an
event stamped 12:00:00.010 can commit after one stamped 12:00:00.020; they are the fallback
only for a log whose recorder keeps no chain. The position every answer reports is the
repeatable form of a cut.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Notification

from domain.adapters.settings import Settings
from domain.audit.chain import ChainStore, from_stamp
from domain.model.errors import ConflictError, ValidationError
from domain.model.topics import stored_topics
from projections.readmodels.projection import EventLog
from projections.readmodels.store import open_event_log

E = TypeVar("E")
DEFAULT_BATCH_SIZE = 1000
_GAP_WINDOW = 1000  # PostgreSQL positions can have gaps (rolled-back saves)

At = int | dt.datetime | None
"""Where to cut: a log position, an aware time, or None for the log's end as it is now."""


@dataclass(frozen=True)
class Cut:
    """A prefix of the log: every event at or before ``position``.

    ``time`` is the instant at which clock-dependent statuses (expired) are judged: the
    requested time for a time cut, else the stamp of the event at ``position`` (None for an
    empty prefix).
    """

    position: int
    time: dt.datetime | None


def parse_at(text: str) -> int | dt.datetime:
    """``text`` as a cut: decimal digits are a log position, anything else an ISO 8601
    time with a zone (``Z`` or an offset). ValidationError (field "at") otherwise."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        return int(text)
    moment = _aware_time(text)
    if moment is None:
        raise ValidationError(
            "at must be a log position (digits) or an ISO 8601 time with a zone, such as "
            f"2025-01-31T12:00:00Z; got {text!r}.",
            field="at",
        )
    return moment


def parse_time(text: str, field: str) -> dt.datetime:
    """An ISO 8601 time with a zone, in UTC; ValidationError naming ``field`` otherwise."""
    moment = _aware_time(text)
    if moment is None:
        raise ValidationError(
            f"{field} must be an ISO 8601 time with a zone, such as 2025-01-31T12:00:00Z; "
            f"got {text!r}.",
            field=field,
        )
    return moment


def _aware_time(text: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(text.strip())
        return None if moment.tzinfo is None else moment.astimezone(dt.UTC)
    except (ValueError, OverflowError):  # OverflowError: a zone pushes it past year 1..9999
        return None


def iso(moment: dt.datetime | None) -> str | None:
    """``moment`` as ISO 8601 in UTC with a ``Z``, as the API writes times."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class LogReader:
    """The event log read in batches, decoded with the service's own transcodings."""

    def __init__(self, log: EventLog, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self._recorder = log.recorder
        self._mapper = log.mapper
        self._batch_size = batch_size

    @classmethod
    @contextmanager
    def open(
        cls, settings: Settings, *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> Iterator[LogReader]:
        """A reader of ``settings``'s log, closed on leaving the block."""
        log = open_event_log(settings)
        try:
            yield cls(log, batch_size=batch_size)
        finally:
            log.close()

    def head(self) -> int:
        """The position of the last event in the log now (0 if it is empty)."""
        return self._recorder.max_notification_id() or 0

    def cut(self, at: At) -> Cut:
        """Resolve ``at`` (see the module docstring); ValidationError (field "at") for a
        negative position or a time without a zone, ConflictError for a position past the
        end of the log."""
        head = self.head()
        if at is None:
            return self._position_cut(head)
        if isinstance(at, dt.datetime):
            if at.tzinfo is None:
                raise ValidationError(
                    "at must be a time with a zone, such as 2025-01-31T12:00:00Z.", field="at"
                )
            return Cut(self._last_at_or_before(at, head), at.astimezone(dt.UTC))
        if isinstance(at, bool) or at < 0:
            raise ValidationError("at must be a log position (0 or more), or a time.", field="at")
        if at > head:
            # A well-formed position the log has not reached yet: a state, not a typo.
            raise ConflictError(
                f"at {at} is past the end of the log (position {head} now); pass a position "
                f"from 0 to {head}, or a time.",
                field="at",
            )
        return self._position_cut(at)

    def events(self, cut: Cut, types: Sequence[type[Any]] = ()) -> Iterator[tuple[Any, int]]:
        """The events up to the cut, in log order, with their positions; only events of
        ``types`` if any are given (filtered by the database). Events are the service's
        own classes, each with its fields."""
        topics = [topic for event_type in types for topic in stored_topics(event_type)]
        position = 0
        while position < cut.position:
            batch = self._recorder.select_notifications(
                start=position,
                limit=self._batch_size,
                stop=cut.position,
                topics=topics,
                inclusive_of_start=False,
            )
            if not batch:
                return
            for notification in batch:
                yield self._mapper.to_domain_event(notification), notification.id
            position = batch[-1].id

    def events_of(self, cut: Cut, event_type: type[E]) -> Iterator[tuple[E, int]]:
        """The events of ``event_type`` up to the cut, in log order, with their positions."""
        for event, position in self.events(cut, (event_type,)):
            if isinstance(event, event_type):
                yield event, position

    def first_event(self, aggregate_id: UUID) -> DomainEventProtocol[UUID] | None:
        """The first event of ``aggregate_id`` (its creation), or None if it has none."""
        stored = self._recorder.select_events(aggregate_id, limit=1)
        return self._mapper.to_domain_event(stored[0]) if stored else None

    def _position_cut(self, position: int) -> Cut:
        found = self._last_at_or_before_position(position)
        if found is None:
            return Cut(0, None)
        return Cut(found.id, self._stamp(found))

    def _last_at_or_before_position(self, position: int) -> Notification | None:
        exact = self._recorder.select_notifications(start=position, limit=1, stop=position)
        if exact:
            return exact[0]
        stop = position - 1
        while stop > 0:
            start = max(1, stop - _GAP_WINDOW + 1)
            batch = self._recorder.select_notifications(start=start, limit=_GAP_WINDOW, stop=stop)
            if batch:
                return batch[-1]
            stop = start - 1
        return None

    def _last_at_or_before(self, moment: dt.datetime, head: int) -> int:
        """Binary search for the position P with stamp(P) <= moment < stamp(next)."""
        best, low, high = 0, 1, head
        while low <= high:
            middle = (low + high) // 2
            found = self._recorder.select_notifications(start=middle, limit=1, stop=high)
            if found and self._stamp(found[0]) <= moment:
                best, low = found[0].id, found[0].id + 1
            else:
                high = middle - 1
        return best

    def _stamp(self, notification: Notification) -> dt.datetime:
        """When the event at ``notification`` was committed (its writer's stamp if the
        store keeps no commit stamps)."""
        if isinstance(self._recorder, ChainStore):
            links = self._recorder.select_links_after(notification.id - 1, 1)
            if links and links[0].position == notification.id and links[0].recorded_at:
                return from_stamp(links[0].recorded_at)
        event: Any = self._mapper.to_domain_event(notification)
        stamp: dt.datetime = event.timestamp
        return stamp
