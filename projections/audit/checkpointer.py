"""Audit checkpoints signed in the background, on a thread and a lease of their own.

Each round first has the service's :class:`~domain.audit.guard.ChainGuard` verify what was
appended since it last looked (the whole log the first time, as the start-up check does:
whichever comes first walks it, the other waits for it), then signs the head, recomputing
the chain only from the link the guard verified. So a checkpoint always signs a verified
head, and the log is walked once, not once more per checkpoint. The first walk of a long log
takes minutes, which is why this runs apart from the CRL publisher: a revocation is never
published behind it.
"""

from __future__ import annotations

from domain.adapters.settings import Settings
from domain.application.service import PrivateCA
from domain.audit.guard import ChainGuard
from domain.audit.verify import AuditLog
from projections.background import LeasedJob

CHECKPOINTS = "audit-checkpoints"


def checkpoint_job(settings: Settings, service: PrivateCA, guard: ChainGuard) -> LeasedJob:
    """Signs a checkpoint every ``PCA_AUDIT_CHECKPOINT_MINUTES`` while the log moves; looks
    as often as the CRL publisher does (``PCA_CRL_DEBOUNCE_MS``): a few small reads."""
    every = settings.publishing.checkpoint_every.total_seconds()
    log = AuditLog.of(service)

    def checkpoint() -> object:
        service.integrity.check()  # LogTamperedError once the chain is broken
        return log.publish_checkpoint_if_due(every, service.clock(), verified=guard.verified)

    return LeasedJob(
        settings, CHECKPOINTS, checkpoint, settings.publishing.debounce.total_seconds()
    )
