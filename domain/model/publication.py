"""What a CA has published about revocation: every CRL it signed and its OCSP responder
certificates, as events on one aggregate per CA.

The aggregate's version check makes CRL numbers strictly increasing per issuer across
processes and restarts: two publishers that pick the same number conflict on save.
"""

from __future__ import annotations

import datetime as dt
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.model.events import AuditedCreated, AuditedEvent
from domain.model.values import RequestContext

PUBLICATION_NAMESPACE = uuid5(NAMESPACE_URL, "urn:pca:publication")


def publication_id(ca_id: UUID) -> UUID:
    """The id of the publication record of CA ``ca_id``."""
    return uuid5(PUBLICATION_NAMESPACE, str(ca_id))


def issuer_scope(ca_id: UUID, generation: int = 1) -> UUID:
    """The id under which key generation ``generation`` of CA ``ca_id`` publishes its CRLs
    and certifies OCSP responders: the CA's own id for its first key, so records made
    before keys could roll over stay where they are."""
    if generation == 1:
        return ca_id
    return uuid5(PUBLICATION_NAMESPACE, f"{ca_id}/generation/{generation}")


class Publication(Aggregate):
    """The CRLs and OCSP responder certificates of one CA."""

    class PublicationStarted(AuditedCreated):
        ca_id: UUID

    class CRLPublished(AuditedEvent):
        """A CRL was signed: auditors can match ``sha256`` against any CRL ever served."""

        number: int
        this_update: dt.datetime
        next_update: dt.datetime
        entry_count: int
        sha256: str
        delta_of: int | None
        log_position: int

        def apply(self, publication: Publication) -> None:
            publication.last_number = self.number
            publication.log_position = self.log_position
            if self.delta_of is None:
                publication.base_number = self.number

    class ResponderCertified(AuditedEvent):
        """A delegated OCSP responder certificate was issued; its key is in the key store."""

        key_id: str
        certificate_der: bytes

        def apply(self, publication: Publication) -> None:
            publication.responder_key_id = self.key_id
            publication.responder_der = self.certificate_der

    def __init__(self, ca_id: UUID) -> None:
        self.ca_id = ca_id
        self.last_number = 0
        self.base_number: int | None = None
        self.log_position = 0
        self.responder_key_id: str | None = None
        self.responder_der: bytes | None = None

    @classmethod
    def start(cls, ctx: RequestContext, ca_id: UUID) -> Publication:
        """The empty publication record of ``ca_id``."""
        return cls._create(
            cls.PublicationStarted,
            id=publication_id(ca_id),
            actor=ctx.actor,
            request_id=ctx.request_id,
            ca_id=ca_id,
        )

    @property
    def next_number(self) -> int:
        """The CRLNumber the next CRL of this CA must carry."""
        return self.last_number + 1

    def record_crl(
        self,
        ctx: RequestContext,
        window: tuple[dt.datetime, dt.datetime],
        entry_count: int,
        sha256: str,
        delta_of: int | None,
        log_position: int,
    ) -> None:
        """Record CRL number :attr:`next_number`, signed for ``window`` (this/next update)."""
        self.trigger_event(
            self.CRLPublished,
            actor=ctx.actor,
            request_id=ctx.request_id,
            number=self.next_number,
            this_update=window[0],
            next_update=window[1],
            entry_count=entry_count,
            sha256=sha256,
            delta_of=delta_of,
            log_position=log_position,
        )

    def certify_responder(self, ctx: RequestContext, key_id: str, certificate_der: bytes) -> None:
        """Record a new delegated OCSP responder certificate (the previous one retires)."""
        self.trigger_event(
            self.ResponderCertified,
            actor=ctx.actor,
            request_id=ctx.request_id,
            key_id=key_id,
            certificate_der=certificate_der,
        )
