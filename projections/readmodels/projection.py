"""The read-model projection: which domain event changes which rows.

:class:`ReadModelProjection` is an eventsourcing ``Projection`` over a
:class:`~projections.readmodels.view.ReadModelView`. Its ``process_event`` handles one event in one
transaction, as eventsourcing's ``ProjectionRunner`` calls it; ``process_batch`` handles a
run of events in one transaction, which is what our own runner uses to catch up quickly.
Events the read models do not show (idempotency claims, and any added later) are passed
over but still advance the tracked position, so a command's position is always reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.dispatch import singledispatchmethod
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import JSONTranscoder, Tracking
from eventsourcing.projection import Projection

from domain.application.service import PrivateCA
from domain.model.authority import CertificateAuthority
from domain.model.certificate import Certificate
from domain.model.transcodings import register_all
from projections.readmodels.view import ReadModelView
from projections.readmodels.writer import ReadModelWriter

PositionedEvent = tuple[DomainEventProtocol[UUID], int]
"""A domain event and its position (notification id) in the log."""


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
            self.apply(domain_event, tracking.notification_id, writer)

    def process_batch(self, events: Sequence[PositionedEvent], previous: int) -> None:
        """Apply ``events`` (in log order, following position ``previous``) and record
        the last one's position, in one transaction; PositionMovedError if the read
        models are no longer at ``previous``."""
        tracking = Tracking(PrivateCA.name, events[-1][1])
        with self.view.transaction(tracking, previous=previous) as writer:
            for domain_event, position in events:
                self.apply(domain_event, position, writer)

    @singledispatchmethod
    def apply(self, domain_event: Any, position: int, writer: ReadModelWriter) -> None:
        """Events that no read model shows change nothing."""

    @apply.register(CertificateAuthority.CACreated)
    def _ca_created(
        self, event: CertificateAuthority.CACreated, position: int, writer: ReadModelWriter
    ) -> None:
        writer.add_ca(event, position)

    @apply.register(CertificateAuthority.CAEnabled)
    def _ca_enabled(
        self, event: CertificateAuthority.CAEnabled, _: int, writer: ReadModelWriter
    ) -> None:
        writer.enable_ca(event)

    @apply.register(CertificateAuthority.CADisabled)
    def _ca_disabled(
        self, event: CertificateAuthority.CADisabled, _: int, writer: ReadModelWriter
    ) -> None:
        writer.disable_ca(event)

    @apply.register(CertificateAuthority.CAServiceRenewed)
    def _ca_renewed(
        self, event: CertificateAuthority.CAServiceRenewed, _: int, writer: ReadModelWriter
    ) -> None:
        writer.renew_ca(event)

    @apply.register(CertificateAuthority.CARevoked)
    def _ca_revoked(
        self, event: CertificateAuthority.CARevoked, position: int, writer: ReadModelWriter
    ) -> None:
        writer.revoke_ca(event, position)

    @apply.register(CertificateAuthority.QuotaPurchased)
    def _quota_purchased(
        self, event: CertificateAuthority.QuotaPurchased, _: int, writer: ReadModelWriter
    ) -> None:
        writer.purchase_quota(event)

    @apply.register(CertificateAuthority.QuotaAssigned)
    def _quota_assigned(
        self, event: CertificateAuthority.QuotaAssigned, _: int, writer: ReadModelWriter
    ) -> None:
        writer.assign_quota(event)

    @apply.register(CertificateAuthority.QuotaReceived)
    def _quota_received(
        self, event: CertificateAuthority.QuotaReceived, _: int, writer: ReadModelWriter
    ) -> None:
        writer.receive_quota(event)

    @apply.register(CertificateAuthority.QuotaConsumed)
    def _quota_consumed(
        self, event: CertificateAuthority.QuotaConsumed, _: int, writer: ReadModelWriter
    ) -> None:
        writer.consume_quota(str(event.originator_id), 1)

    @apply.register(CertificateAuthority.QuotaSpent)
    def _quota_spent(
        self, event: CertificateAuthority.QuotaSpent, _: int, writer: ReadModelWriter
    ) -> None:
        writer.consume_quota(str(event.originator_id), len(event.certificate_ids))

    @apply.register(Certificate.CertificateIssued)
    def _certificate_issued(
        self, event: Certificate.CertificateIssued, position: int, writer: ReadModelWriter
    ) -> None:
        writer.add_certificate(event, position)

    @apply.register(Certificate.CertificateRevoked)
    def _certificate_revoked(
        self, event: Certificate.CertificateRevoked, position: int, writer: ReadModelWriter
    ) -> None:
        writer.revoke_certificate(event, position)

    @apply.register(Certificate.CertificateDeleted)
    def _certificate_deleted(
        self, event: Certificate.CertificateDeleted, _: int, writer: ReadModelWriter
    ) -> None:
        writer.delete_certificate(event)
