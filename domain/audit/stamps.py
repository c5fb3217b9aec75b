"""Commit stamps for chain rows written before the stamps existed.

New rows get their ``recorded_at`` from the recorder, under the write lock
(:mod:`domain.audit.chain`, "Commit stamps"). Rows chained by an older release have none;
when such a log is opened, each gets the running maximum of its events' own timestamps,
so the stamps never go backwards along positions there either. The work is done once:
rows already stamped are skipped, and several processes stamping at once write the same
values.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from domain.application.service import PrivateCA
from domain.audit.chain import ChainStore
from domain.audit.verify import AuditLog

__all__ = ["stamp_legacy_links"]

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000


def stamp_legacy_links(service: PrivateCA) -> int:
    """Stamp every chain row of ``service``'s log that has no commit stamp; how many were
    (AuditChainError if its store keeps no chain)."""
    store = AuditLog.of(service).store
    # Unstamped rows were chained before any stamped one, so the floor starts at zero.
    stamped, position, floor = 0, 0, 0
    while positions := store.select_unstamped(position, BATCH_SIZE):
        stamps, floor = _running_max(service, _events(store, positions), floor)
        store.stamp_links(stamps)
        stamped += len(stamps)
        position = positions[-1]
    if stamped:
        logger.warning("audit chain: gave commit stamps to %d events recorded before them", stamped)
    return stamped


def _events(store: ChainStore, positions: Sequence[int]) -> list[Notification]:
    wanted = set(positions)
    events = store.select_events_after(positions[0] - 1, positions[-1] - positions[0] + 1)
    return [event for event in events if event.id in wanted]


def _running_max(
    app: Application[UUID], events: Sequence[Notification], floor: int
) -> tuple[list[tuple[int, int]], int]:
    stamps = []
    for notification in events:
        event: Any = app.mapper.to_domain_event(notification)
        timestamp: dt.datetime = event.timestamp
        floor = max(floor, int(timestamp.timestamp() * 1_000_000))
        stamps.append((notification.id, floor))
    return stamps, floor
