"""The read-model projection: the shared fold (:mod:`projections.fold`) applied to the
read-model tables, with the tracked position in the same transaction.

:class:`ReadModelProjection` is an eventsourcing ``Projection`` over a
:class:`~projections.readmodels.view.ReadModelView`. Its ``process_event`` handles one event in one
transaction, as eventsourcing's ``ProjectionRunner`` calls it; ``process_batch`` handles a
run of notifications in one transaction, which is what our own runner uses to catch up quickly.
Events the read models do not show (idempotency claims, and any added later) are passed
over but still advance the tracked position, so a command's position is always reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder, Notification, Tracking
from eventsourcing.projection import Projection

from domain.application.service import PrivateCA
from domain.model.transcodings import register_all
from projections.fold import apply_event
from projections.readmodels.decoding import EventApplier
from projections.readmodels.view import ReadModelView


class EventLog(Application[UUID]):
    """The service's event log opened for reading: the same name, store and transcodings
    as :class:`~domain.application.service.PrivateCA`, none of its commands or keys."""

    name = PrivateCA.name

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_all(transcoder)


class ReadModelProjection(Projection[ReadModelView]):
    """Keeps the CA list, the certificate lists and the revocation index."""

    name = "rm"  # eventsourcing reads RM_-prefixed settings and names the tracking table

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Apply one event and record its position, in one transaction."""
        with self.view.transaction(tracking) as writer:
            apply_event(writer, domain_event, tracking.notification_id)

    def process_batch(
        self, notifications: Sequence[Notification], previous: int, applier: EventApplier
    ) -> None:
        """Apply ``notifications`` (in log order, following position ``previous``) and
        record the last one's position, in one transaction; PositionMovedError if the read
        models are no longer at ``previous``."""
        tracking = Tracking(PrivateCA.name, notifications[-1].id)
        with self.view.transaction(tracking, previous=previous) as writer:
            for notification in notifications:
                applier.apply(writer, notification)
