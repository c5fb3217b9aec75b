"""The audit chain as the service's :class:`~domain.application.integrity.LogVerifier`.

:class:`ChainGuard` verifies the whole log (chain and checkpoints) the first time it is
asked, then only the events appended since, starting from the link it recomputed last: a
command costs one query for the log's end when nothing was appended, and the new events'
links otherwise. The composition root plugs it into ``PrivateCA.integrity``; what it does
not catch (an old event altered while the service runs) is in docs/AUDIT.md.
"""

from __future__ import annotations

from domain.application.integrity import Breach
from domain.application.service import PrivateCA
from domain.audit.chain import ChainLink
from domain.audit.verify import BATCH_SIZE, AuditLog
from domain.audit.walk import ChainReport, ChainWalk


class ChainGuard:
    """Verifies ``service``'s log: all of it first, then incrementally."""

    def __init__(self, audit: AuditLog, *, batch_size: int = BATCH_SIZE) -> None:
        self._audit = audit
        self._batch_size = batch_size
        self._verified: ChainLink | None = None  # the recomputed link of the last event

    @classmethod
    def of(cls, service: PrivateCA, *, batch_size: int = BATCH_SIZE) -> ChainGuard:
        """The guard of ``service``'s chained event store (AuditChainError without one)."""
        return cls(AuditLog.of(service, batch_size=batch_size), batch_size=batch_size)

    @property
    def verified(self) -> ChainLink | None:
        """The link recomputed for the last event verified so far (None before the first
        verification, or when it found a break)."""
        return self._verified

    def verify_new(self) -> Breach | None:
        """The first break among the events not verified yet (all of them on the first
        call, checkpoints included), or None."""
        if self._verified is None:
            report = self._audit.verify()
            failed = [result for result in report.checkpoints if not result.ok]
            if report.chain_ok and failed:
                return Breach(failed[0].checkpoint.position, str(failed[0].problem))
            return self._advance(report)
        store = self._audit.store
        last = store.select_last_position()
        if last <= self._verified.position:
            return None
        walk = ChainWalk(store, self._verified, last, self._batch_size, [])
        return self._advance(walk.run())

    def _advance(self, report: ChainReport) -> Breach | None:
        if report.first_bad_position is not None:
            return Breach(report.first_bad_position, str(report.detail))
        self._verified = ChainLink(report.position, 0, report.head)
        return None
