"""The event history as auditors read it: every event in log order, paged by position,
with who did it, from which request, its payload and its audit-chain link."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.domain import CanMutateAggregate
from eventsourcing.persistence import Notification

from domain.application.service import PrivateCA
from domain.audit.chain import ChainLink, ChainStore, from_stamp
from domain.model.authority import CertificateAuthority
from domain.model.certificate import Certificate, IssuanceRequest
from domain.model.errors import ValidationError
from domain.model.publication import Publication
from domain.model.tokens import ApiToken
from domain.model.topics import stored_topics

MAX_LIMIT = 1000
MAX_SCAN = 20_000  # events examined per page when filters skip most of them
_BASE_FIELDS = {
    "originator_id",
    "originator_version",
    "timestamp",
    "originator_topic",
    "actor",
    "request_id",
}
_AGGREGATES = (CertificateAuthority, Certificate, IssuanceRequest, Publication, ApiToken)


def event_types() -> dict[str, list[str]]:
    """Every event type's name (``CertificateIssued``) and the topics it is stored under."""
    found: dict[str, list[str]] = {}
    for aggregate in _AGGREGATES:
        for name, value in vars(aggregate).items():
            generic = value is getattr(aggregate, "Created", None) or name in {"Event", "Created"}
            if isinstance(value, type) and issubclass(value, CanMutateAggregate) and not generic:
                found[value.__name__] = stored_topics(value)
    return found


@dataclass(frozen=True)
class HistoryFilter:
    """Which events a page holds; fields left empty match all."""

    types: tuple[str, ...] = ()
    aggregate_id: UUID | None = None
    actor: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@dataclass(frozen=True)
class HistoryItem:
    """One event as the history shows it (key material never appears in events)."""

    position: int
    recorded_at: dt.datetime  # committed; never earlier than the event before it
    type: str
    aggregate_id: UUID
    aggregate_version: int
    actor: str
    request_id: str
    payload: dict[str, Any]
    chain_hash: str | None


@dataclass(frozen=True)
class HistoryPage:
    """Events after ``after`` matching a filter; ask again with ``next_after`` for more."""

    items: tuple[HistoryItem, ...]
    next_after: int | None


def read_history(
    service: PrivateCA, after: int, limit: int, history_filter: HistoryFilter
) -> HistoryPage:
    """A page of the history after log position ``after`` (at most ``limit`` items)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be from 1 to {MAX_LIMIT}; got {limit}.", field="limit")
    topics = _topics(history_filter.types)
    notifications = service.recorder.select_notifications(
        start=after + 1, limit=MAX_SCAN, topics=topics
    )
    links = _links(service, notifications)
    items: list[HistoryItem] = []
    for notification in notifications:
        item = _item(service, notification, links.get(notification.id))
        if _matches(item, history_filter):
            items.append(item)
            if len(items) == limit:
                return HistoryPage(tuple(items), notification.id)
    more = len(notifications) == MAX_SCAN
    return HistoryPage(tuple(items), notifications[-1].id if more else None)


def _topics(types: Sequence[str]) -> Sequence[str]:
    known = event_types()
    unknown = [name for name in types if name not in known]
    if unknown:
        raise ValidationError(
            f"type {unknown[0]!r} is not an event type; known: {', '.join(sorted(known))}.",
            field="type",
        )
    return [topic for name in types for topic in known[name]]


def _links(service: PrivateCA, notifications: Sequence[Notification]) -> dict[int, ChainLink]:
    recorder = service.recorder
    if not notifications or not isinstance(recorder, ChainStore):
        return {}
    first, last = notifications[0].id, notifications[-1].id
    rows = recorder.select_links_after(first - 1, last - first + 1)
    return {row.position: row for row in rows}


def _item(service: PrivateCA, notification: Notification, link: ChainLink | None) -> HistoryItem:
    event: Any = service.mapper.to_domain_event(notification)
    fields = {key: value for key, value in vars(event).items() if key not in _BASE_FIELDS}
    stamp = None if link is None else link.recorded_at
    return HistoryItem(
        position=notification.id,
        recorded_at=event.timestamp if stamp is None else from_stamp(stamp),
        type=type(event).__name__,
        aggregate_id=event.originator_id,
        aggregate_version=event.originator_version,
        actor=getattr(event, "actor", ""),
        request_id=getattr(event, "request_id", ""),
        payload={key: jsonable(value) for key, value in fields.items()},
        chain_hash=None if link is None else link.link.hex(),
    )


def _matches(item: HistoryItem, history_filter: HistoryFilter) -> bool:
    checks = (
        history_filter.aggregate_id is None or item.aggregate_id == history_filter.aggregate_id,
        history_filter.actor is None or item.actor == history_filter.actor,
        history_filter.since is None or item.recorded_at >= history_filter.since,
        history_filter.until is None or item.recorded_at < history_filter.until,
    )
    return all(checks)


_SCALARS: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (bytes, lambda value: base64.b64encode(value).decode("ascii")),
    (dt.datetime, lambda value: value.isoformat()),
    (UUID, str),
    (Enum, lambda value: value.value),
)


def jsonable(value: object) -> Any:
    """``value`` as JSON: bytes in base64, times in ISO 8601, enums by value."""
    for kind, convert in _SCALARS:
        if isinstance(value, kind):
            return convert(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {key: jsonable(item) for key, item in vars(value).items()}
    if isinstance(value, Iterable) and not isinstance(value, str | dict):
        return [jsonable(item) for item in value]
    return value
