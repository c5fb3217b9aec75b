"""The long-lived services one app instance holds (in ``app.extensions``)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, g

from domain.adapters.settings import Settings
from domain.application.service import PrivateCA
from domain.model.tokens import ApiToken
from domain.model.values import RequestContext
from projections.readmodels.queries import ReadModels
from projections.readmodels.worker import RunnerHandle
from projections.revocation.crlstore import CRLStore
from projections.revocation.ocsp_responder import OCSPResponder
from projections.revocation.publisher import CRLPublisher, PublisherThread

EXTENSION = "pca"


@dataclass
class Services:
    """What views call: the command side, the query side and the in-process runner."""

    settings: Settings
    service: PrivateCA
    read_models: ReadModels
    runner: RunnerHandle | None
    crls: CRLStore
    publisher: CRLPublisher
    publisher_thread: PublisherThread | None
    ocsp: OCSPResponder

    def close(self) -> None:
        """Stop the writers first (the CRL publisher and its audit checkpoints), then the
        runner, whose last catch-up brings the read models to the log's head with the
        writers' last events in it; then the stores."""
        if self.publisher_thread is not None:
            self.publisher_thread.stop()
        if self.runner is not None:
            self.runner.stop()
        self.crls.close()
        self.read_models.close()
        self.service.close()
        self.service.keystore.close()


def services() -> Services:
    """The services of the app handling the current request."""
    found = current_app.extensions[EXTENSION]
    assert isinstance(found, Services)
    return found


def request_context() -> RequestContext:
    """Who is acting in this request (the token's name and role) and the request id."""
    principal = g.principal
    assert isinstance(principal, ApiToken)
    return RequestContext(actor=principal.actor, request_id=g.request_id)
