"""Base classes for every event: each records who did it and the request it came from."""

from __future__ import annotations

from eventsourcing.domain import Aggregate


class AuditedEvent(Aggregate.Event):
    """An aggregate event with its actor ("name (role)") and request id."""

    actor: str
    request_id: str


class AuditedCreated(Aggregate.Created):
    """An aggregate's first event, with its actor and request id."""

    actor: str
    request_id: str
