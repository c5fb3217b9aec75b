"""Tamper evidence: verify the audit chain and publish signed checkpoints.

:class:`AuditLog` is the entry point (``AuditLog.of(service)``). ``verify()`` streams the
event log and the chain in batches (memory stays flat however long the log), recomputes
every link from the events as they are stored now, and reports the first position where
an event was altered, removed, inserted or reordered, or a link itself was altered; it
also checks every stored checkpoint against the recomputed chain and its signature.
``create_checkpoint(now)`` signs the current head, but only after recomputing the part of
the chain since the latest checkpoint and finding it intact. How links are made, and what
the chain can and cannot prove, is in :mod:`domain.audit.chain`; the checkpoint format is in
:mod:`domain.audit.checkpoints`; the pass over the log and its findings in
:mod:`domain.audit.walk`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from domain.application.ports import Keys
from domain.application.service import PrivateCA
from domain.audit.chain import GENESIS, AuditChainError, ChainLink, ChainStore
from domain.audit.checkpoints import (
    Checkpoint,
    audit_public_key,
    audit_signing_key,
    sign_checkpoint,
)
from domain.audit.walk import ChainProblem, ChainReport, ChainWalk, CheckpointResult
from domain.pki.x509 import public_key_pem

__all__ = [
    "AuditLog",
    "ChainProblem",
    "ChainReport",
    "Checkpoint",
    "CheckpointResult",
    "verify_chain",
]

BATCH_SIZE = 1000


class AuditLog:
    """Chain verification and signed checkpoints over one chained event store."""

    def __init__(self, store: ChainStore, keystore: Keys, *, batch_size: int = BATCH_SIZE):
        self._store = store
        self._keystore = keystore
        self._batch_size = batch_size

    @classmethod
    def of(cls, service: PrivateCA, *, batch_size: int = BATCH_SIZE) -> AuditLog:
        """The audit log of ``service``'s event store, read ``batch_size`` rows at a time;
        AuditChainError if the store keeps no chain."""
        if not isinstance(service.recorder, ChainStore):
            raise AuditChainError(
                f"the event store ({type(service.recorder).__name__}) keeps no audit chain;"
                " open the service with domain.adapters.settings.open_service"
            )
        return cls(service.recorder, service.keystore, batch_size=batch_size)

    @property
    def store(self) -> ChainStore:
        """The chained event store this log reads."""
        return self._store

    def verify(self) -> ChainReport:
        """Recompute the chain over the whole log and check every stored checkpoint."""
        checkpoints = self.checkpoints()
        trusted = audit_public_key(self._keystore) if checkpoints else None
        # Bounded by a position read up front, so writers committing meanwhile are ignored.
        last = self._store.select_last_position()
        walk = ChainWalk(self._store, None, last, self._batch_size, checkpoints)
        report = walk.run()
        results = tuple(
            CheckpointResult(cp, cp.signature_problem(trusted) or walk.checkpoint_problems[i])
            for i, cp in enumerate(checkpoints)
        )
        return dataclasses.replace(report, checkpoints=results)

    def verify_checkpoints(self) -> tuple[CheckpointResult, ...]:
        """Each stored checkpoint: does the log still hash to its head, and is it signed
        by the audit key? (One pass over the log, like :meth:`verify`.)"""
        return self.verify().checkpoints

    def checkpoints(self) -> list[Checkpoint]:
        """The stored checkpoints, by position."""
        return [Checkpoint.from_stored(row) for row in self._store.select_checkpoints()]

    def export_checkpoints(self) -> list[dict[str, Any]]:
        """The stored checkpoints as JSON-able dicts, each with its signed message,
        signature (base64) and the public key (PEM), for verification elsewhere."""
        return [checkpoint.to_json() for checkpoint in self.checkpoints()]

    def public_key_pem(self) -> str:
        """The audit signing key's public key (PEM) for outside parties to pin; the key is
        created on first use."""
        return public_key_pem(audit_signing_key(self._keystore).public_key())

    def create_checkpoint(
        self, now: dt.datetime, *, verified: ChainLink | None = None
    ) -> Checkpoint:
        """Sign the current chain head at ``now`` and store the checkpoint.

        The chain since the latest checkpoint is recomputed first, or only since
        ``verified`` when that is later: a link already recomputed from the log from its
        start (``ChainGuard.verified``). AuditChainError if that part (or the latest
        checkpoint) does not verify, or if the log is empty. When nothing was recorded
        since the latest checkpoint, that checkpoint is returned.
        """
        head = self._store.select_head()
        if head is None:
            raise AuditChainError("the event log is empty; there is nothing to checkpoint yet")
        key = audit_signing_key(self._keystore)
        start = self._trusted_start(key.public_key(), head)
        if start.position == head.position:
            return self._checkpoint_at(head.position)
        self._verify_between(_later(start, verified, head), head)
        checkpoint = sign_checkpoint(key, head.position, head.link, now)
        if self._store.insert_checkpoint(checkpoint.to_stored()):
            return checkpoint
        return self._checkpoint_at(head.position)  # another worker signed this head first

    def publish_checkpoint_if_due(
        self, interval_seconds: float, now: dt.datetime, *, verified: ChainLink | None = None
    ) -> Checkpoint | None:
        """Create a checkpoint (see :meth:`create_checkpoint`) if the latest is at least
        ``interval_seconds`` old (or there is none) and events were recorded since;
        otherwise None."""
        if now.tzinfo is None:
            raise ValueError("checkpoint times must be timezone-aware")
        latest = self._store.select_latest_checkpoint()
        if latest is not None:
            age = now - Checkpoint.from_stored(latest).time
            if age < dt.timedelta(seconds=interval_seconds):
                return None
        head = self._store.select_head()
        if head is None or (latest is not None and head.position <= latest.position):
            return None
        return self.create_checkpoint(now, verified=verified)

    def _verify_between(self, start: ChainLink, head: ChainLink) -> None:
        if start.position == head.position:
            return  # ``start`` is a verified link equal to the head's
        report = ChainWalk(self._store, start, head.position, self._batch_size, []).run()
        if report.problem is not None:
            raise AuditChainError(
                f"refusing to sign a checkpoint: {report.detail}; run `pca audit verify`"
            )

    def _trusted_start(self, trusted: Ed25519PublicKey, head: ChainLink) -> ChainLink:
        row = self._store.select_latest_checkpoint()
        if row is None:
            return ChainLink(0, 0, GENESIS)
        latest = Checkpoint.from_stored(row)
        problem = latest.signature_problem(trusted)
        if problem is not None:
            raise AuditChainError(
                f"the latest checkpoint (position {latest.position}) cannot be trusted:"
                f" {problem}; run `pca audit verify`"
            )
        if latest.position > head.position:
            raise AuditChainError(
                f"the latest checkpoint is at position {latest.position} but the chain ends at"
                f" {head.position}: events were removed from the end of the log"
            )
        return ChainLink(latest.position, 0, bytes.fromhex(latest.head_hex))

    def _checkpoint_at(self, position: int) -> Checkpoint:
        for checkpoint in self.checkpoints():
            if checkpoint.position == position:
                return checkpoint
        raise AuditChainError(f"no checkpoint is stored at position {position}")


def _later(start: ChainLink, verified: ChainLink | None, head: ChainLink) -> ChainLink:
    """``verified`` if it lies after ``start`` and before ``head`` (then the walk from it
    recomputes the head's link) or is the head with the head's link, else ``start``."""
    if verified is None or not start.position < verified.position <= head.position:
        return start
    if verified.position == head.position and verified.link != head.link:
        return start
    return verified


def verify_chain(service: PrivateCA) -> ChainReport:
    """Recompute ``service``'s audit chain and check its checkpoints (see AuditLog.verify)."""
    return AuditLog.of(service).verify()
