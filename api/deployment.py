"""The composition root: one deployment opened from :class:`Settings`, closed by one call.

Every face opens its stores here and nowhere else: the app factory (one deployment per
app, kept in ``app.extensions``), ``pca serve`` before its workers start, and each `pca`
command. Whoever opens a resource registers its close on one ``ExitStack``, so
:meth:`Deployment.close` stops the threads first and closes the stores in the reverse
order of opening, and a failure half-way through opening closes what was opened.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

from flask import current_app, g

from domain.adapters.sessions import SessionStore, open_session_store
from domain.adapters.settings import Settings, open_acme, open_service
from domain.application.acme import Acme
from domain.application.service import Clock, PrivateCA, utc_now
from domain.audit.guard import ChainGuard
from domain.audit.stamps import stamp_legacy_links
from domain.model.tokens import ApiToken
from domain.model.values import RequestContext
from projections.audit.checkpointer import checkpoint_job
from projections.readmodels.queries import ReadModels
from projections.readmodels.worker import RunnerHandle, catch_up_to_head, nudger
from projections.revocation.crlstore import CRLStore, open_crl_store
from projections.revocation.ocsp_responder import OCSPResponder
from projections.revocation.publisher import CRLPublisher, publisher_job, waker

EXTENSION = "pca"
FRESHNESS_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class Deployment:
    """What faces call: the command side, the query side, CRLs and OCSP, and the
    background threads this process runs (``runner`` is None without one)."""

    settings: Settings
    service: PrivateCA
    read_models: ReadModels
    runner: RunnerHandle | None
    crls: CRLStore
    publisher: CRLPublisher
    ocsp: OCSPResponder
    sessions: SessionStore  # the web console's sign-ins
    acme: Acme
    _resources: ExitStack = field(repr=False)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        run_projections: bool = False,
        publish: bool = False,
        clock: Clock = utc_now,
    ) -> Deployment:
        """Open every store of ``settings``; with ``run_projections`` keep the read models
        up to date on a thread, with ``publish`` publish CRLs on another and sign audit
        checkpoints on a third, so a long checkpoint never holds a CRL back. Among several
        processes one holds each lease and the others stand by.
        Every command first verifies the audit chain (all of it the first time, then what
        was appended) and is refused once it is broken (domain.application.integrity).
        Every store is opened before a thread starts, so no thread meets a file or table
        half-made."""
        with ExitStack() as resources:
            service = open_service(settings, clock=clock)
            resources.callback(service.keystore.close)
            if service.token_signer is not None:
                resources.callback(service.token_signer.close)
            resources.callback(service.close)
            guard = ChainGuard.of(service)
            service.integrity.watch(guard)
            stamp_legacy_links(service)
            acme = open_acme(settings, service)
            resources.callback(acme.close)
            runner = RunnerHandle(settings) if run_projections else None
            read_models = resources.enter_context(
                ReadModels.open(settings, nudge=nudger(settings, runner))
            )
            crls = open_crl_store(settings)
            resources.callback(crls.close)
            sessions = resources.enter_context(open_session_store(settings))
            publisher = CRLPublisher(service, read_models, crls, settings.publishing)
            publishing = publisher_job(settings, publisher) if publish else None
            if runner is not None:
                # A revocation is published once projected, not at the publisher's next poll.
                runner.start(on_applied=waker(publishing) if publishing is not None else None)
                resources.callback(runner.stop)
            if publishing is not None:
                if runner is None:  # then no runner's stop brings the publisher's events in
                    resources.callback(catch_up_to_head, settings)
                for job in (checkpoint_job(settings, service, guard), publishing):
                    job.start()
                    resources.callback(job.stop)  # so the publisher stops first
            ocsp = OCSPResponder(service, read_models, settings.ocsp)
            return cls(
                settings,
                service,
                read_models,
                runner,
                crls,
                publisher,
                ocsp,
                sessions,
                acme,
                resources.pop_all(),
            )

    def caught_up(self, floor: int = 0, *, include_head: bool = True) -> bool:
        """Wait, at most ``FRESHNESS_WAIT_SECONDS``, until the read models include log
        position ``floor`` and, with ``include_head``, every event the log held when called:
        then a query shows every write acknowledged before it, whichever process wrote.
        False on timeout. Costs one ``MAX`` over the log and one read of the read models'
        position when nothing is pending (docs/BENCHMARKS.md, "Fresh reads")."""
        head = (self.service.recorder.max_notification_id() or 0) if include_head else 0
        target = max(floor, head)
        return target == 0 or self.read_models.wait_for(target, FRESHNESS_WAIT_SECONDS)

    def close(self) -> None:
        """Stop the writers first (the CRL publisher, then the audit checkpoints), then
        bring the read models to the log's head with the writers' last events in it (the
        runner's stop does that, or a final catch-up where this process runs none), then
        close every store, last opened first."""
        self._resources.close()


def services() -> Deployment:
    """The deployment of the app handling the current request."""
    found = current_app.extensions[EXTENSION]
    assert isinstance(found, Deployment)
    return found


def request_context() -> RequestContext:
    """Who is acting in this request (the token's name and role) and the request id."""
    principal = g.principal
    assert isinstance(principal, ApiToken)
    return RequestContext(principal.actor, g.request_id, principal.scope)
