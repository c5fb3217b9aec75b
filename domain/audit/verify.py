"""Tamper evidence: verify the audit chain and publish signed checkpoints.

:class:`AuditLog` is the entry point (``AuditLog.of(service)``). ``verify()`` streams the
event log and the chain in batches (memory stays flat however long the log), recomputes
every link from the events as they are stored now, and reports the first position where
an event was altered, removed, inserted or reordered, or a link itself was altered; it
also checks every stored checkpoint against the recomputed chain and its signature.
``create_checkpoint(now)`` signs the current head, but only after recomputing the part of
the chain since the latest checkpoint and finding it intact. How links are made, and what
the chain can and cannot prove, is in :mod:`domain.audit.chain`; the checkpoint format is in
:mod:`domain.audit.checkpoints`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eventsourcing.persistence import Notification

from domain.application.ports import Keys
from domain.application.service import PrivateCA
from domain.audit.chain import GENESIS, AuditChainError, ChainLink, ChainStore, event_link
from domain.audit.checkpoints import (
    Checkpoint,
    audit_public_key,
    audit_signing_key,
    sign_checkpoint,
)

__all__ = [
    "AuditLog",
    "ChainProblem",
    "ChainReport",
    "Checkpoint",
    "CheckpointResult",
    "verify_chain",
]

T = TypeVar("T")
BATCH_SIZE = 1000
_REORDER_LOOKAHEAD = 1000


class ChainProblem(StrEnum):
    """What is wrong at the first bad position."""

    ALTERED = "altered"  # the event's stored bytes changed
    REMOVED = "removed"  # an event the chain bound is gone
    INSERTED = "inserted"  # an event the chain never bound is there
    REORDERED = "reordered"  # the event (or its state) bound here now sits at a later position
    LINK_ALTERED = "link altered"  # the event is intact, its stored link changed


@dataclass(frozen=True)
class CheckpointResult:
    """Whether one stored checkpoint still holds, and why not."""

    checkpoint: Checkpoint
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class ChainReport:
    """The outcome of recomputing the chain over the whole log."""

    checked: int  # events read and hashed
    position: int  # the last position in the log (0 if empty)
    head: bytes  # the link recomputed from the events up to ``position``
    first_bad_position: int | None
    problem: ChainProblem | None
    detail: str | None
    checkpoints: tuple[CheckpointResult, ...] = ()

    @property
    def chain_ok(self) -> bool:
        """True if every event matches its link."""
        return self.problem is None

    @property
    def checkpoints_ok(self) -> bool:
        """True if every stored checkpoint verifies (also when there are none)."""
        return all(result.ok for result in self.checkpoints)

    @property
    def ok(self) -> bool:
        """True if the chain is intact and every checkpoint verifies."""
        return self.chain_ok and self.checkpoints_ok

    def to_json(self) -> dict[str, Any]:
        """A JSON-able summary (heads in hex, checkpoint failures with their reasons)."""
        return {
            "ok": self.ok,
            "checked": self.checked,
            "position": self.position,
            "head": self.head.hex(),
            "first_bad_position": self.first_bad_position,
            "problem": None if self.problem is None else self.problem.value,
            "detail": self.detail,
            "checkpoints": {
                "checked": len(self.checkpoints),
                "ok": self.checkpoints_ok,
                "failed": [
                    {"position": r.checkpoint.position, "problem": r.problem}
                    for r in self.checkpoints
                    if not r.ok
                ],
            },
        }


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

    def verify(self) -> ChainReport:
        """Recompute the chain over the whole log and check every stored checkpoint."""
        checkpoints = self.checkpoints()
        trusted = audit_public_key(self._keystore) if checkpoints else None
        # Bounded by a position read up front, so writers committing meanwhile are ignored.
        last = self._store.select_last_position()
        walk = _Walk(self._store, None, last, self._batch_size, checkpoints)
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
        public_key = audit_signing_key(self._keystore).public_key()
        return public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()

    def create_checkpoint(self, now: dt.datetime) -> Checkpoint:
        """Sign the current chain head at ``now`` and store the checkpoint.

        The chain since the latest checkpoint is recomputed first; AuditChainError if it
        (or the latest checkpoint) does not verify, or if the log is empty. When nothing
        was recorded since the latest checkpoint, that checkpoint is returned.
        """
        head = self._store.select_head()
        if head is None:
            raise AuditChainError("the event log is empty; there is nothing to checkpoint yet")
        key = audit_signing_key(self._keystore)
        start = self._trusted_start(key.public_key(), head)
        if start.position == head.position:
            return self._checkpoint_at(head.position)
        report = _Walk(self._store, start, head.position, self._batch_size, []).run()
        if report.problem is not None:
            raise AuditChainError(
                f"refusing to sign a checkpoint: {report.detail}; run `pca audit verify`"
            )
        checkpoint = sign_checkpoint(key, head.position, head.link, now)
        if self._store.insert_checkpoint(checkpoint.to_stored()):
            return checkpoint
        return self._checkpoint_at(head.position)  # another worker signed this head first

    def publish_checkpoint_if_due(
        self, interval_seconds: float, now: dt.datetime
    ) -> Checkpoint | None:
        """Create a checkpoint if the latest is at least ``interval_seconds`` old (or there
        is none) and events were recorded since; otherwise None."""
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
        return self.create_checkpoint(now)

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


def verify_chain(service: PrivateCA) -> ChainReport:
    """Recompute ``service``'s audit chain and check its checkpoints (see AuditLog.verify)."""
    return AuditLog.of(service).verify()


# ---------------------------------------------------------------------------
# One pass over the log
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Finding:
    position: int
    problem: ChainProblem
    detail: str


class _Walk:
    """Merge the events and the chain rows after ``start``, up to ``stop``, by position,
    recomputing links from the events; remember the first problem and, for each
    checkpoint, whether the recomputed chain reaches its head."""

    def __init__(
        self,
        store: ChainStore,
        start: ChainLink | None,
        stop: int,
        batch_size: int,
        checkpoints: Sequence[Checkpoint],
    ) -> None:
        self._store = store
        self._start = start or ChainLink(0, 0, GENESIS)
        self._stop = stop
        self._batch_size = batch_size
        self._checkpoints = checkpoints
        self._next_checkpoint = 0
        self.checkpoint_problems: list[str | None] = [None] * len(checkpoints)
        self._position = self._start.position  # of the last event hashed
        self._link = self._start.link  # recomputed from the events
        self._last_row = self._start.position  # position of the last chain row seen
        self._checked = 0
        self._finding: _Finding | None = None

    def run(self) -> ChainReport:
        events = self._paged(self._store.select_events_after, lambda n: n.id)
        rows = self._paged(self._store.select_links_after, lambda r: r.position)
        event, row = next(events, None), next(rows, None)
        while event is not None or row is not None:
            if row is None or (event is not None and event.id < row.position):
                assert event is not None
                self._note(_unlinked(event.id))
                self._hash(event)
                event = next(events, None)
            elif event is None or row.position < event.id:
                self._note(_eventless(row.position))
                self._last_row = row.position
                row = next(rows, None)
            else:
                self._compare(event, row)
                event, row = next(events, None), next(rows, None)
        self._close_checkpoints()
        finding = self._finding
        return ChainReport(
            checked=self._checked,
            position=self._position,
            head=self._link,
            first_bad_position=None if finding is None else finding.position,
            problem=None if finding is None else finding.problem,
            detail=None if finding is None else finding.detail,
        )

    def _paged(
        self, fetch: Callable[[int, int], Sequence[T]], position_of: Callable[[T], int]
    ) -> Iterator[T]:
        def pages() -> Iterator[T]:
            after = self._start.position
            while True:
                page = fetch(after, self._batch_size)
                yield from page
                if len(page) < self._batch_size:
                    return
                after = position_of(page[-1])

        stop = self._stop
        return itertools.takewhile(lambda item: position_of(item) <= stop, pages())

    def _compare(self, event: Notification, row: ChainLink) -> None:
        before, last_row = self._link, self._last_row
        self._hash(event)
        self._last_row = row.position
        if self._finding is None and self._link != row.link:
            self._finding = self._classify(event, row, before, last_row)

    def _hash(self, event: Notification) -> None:
        self._link = event_link(self._link, event.id, event)
        self._position = event.id
        self._checked += 1
        self._reach_checkpoints(event.id)

    def _note(self, finding: _Finding) -> None:
        if self._finding is None:
            self._finding = finding

    def _classify(
        self, event: Notification, row: ChainLink, before: bytes, last_row: int
    ) -> _Finding:
        """Why the link at ``event.id`` does not match (the failure path: may query more)."""
        position = event.id
        if row.previous > last_row:
            return _Finding(
                row.previous,
                ChainProblem.REMOVED,
                f"the event at position {row.previous} was removed together with its chain link"
                f" (the link at {position} follows it; the last intact position is {last_row})",
            )
        if row.previous < last_row:
            inserted = self._store.select_links_after(row.previous, 1)[0].position
            return _Finding(
                inserted,
                ChainProblem.INSERTED,
                f"position {inserted} holds an event and a chain link that were inserted"
                f" outside the service (the link at {position} follows {row.previous})",
            )
        if self._next_link_holds(position):
            return _Finding(
                position,
                ChainProblem.LINK_ALTERED,
                f"the chain link at position {position} was altered; its event is intact",
            )
        moved_from = self._moved_content(event, row.link, before)
        if moved_from is not None:
            return _Finding(
                position,
                ChainProblem.REORDERED,
                f"the event recorded at position {position} now sits at position {moved_from}",
            )
        return _Finding(
            position,
            ChainProblem.ALTERED,
            f"the event at position {position} (or its chain link) was altered",
        )

    def _next_link_holds(self, position: int) -> bool:
        """True if the next stored link follows from the link recomputed at ``position``."""
        events = self._store.select_events_after(position, 1)
        rows = self._store.select_links_after(position, 1)
        if not events or not rows or events[0].id != rows[0].position:
            return False
        return event_link(self._link, events[0].id, events[0]) == rows[0].link

    def _moved_content(self, event: Notification, stored: bytes, before: bytes) -> int | None:
        """The later position whose event (or state) reproduces the link stored at
        ``event.id``, or None."""
        for later in self._store.select_events_after(event.id, _REORDER_LOOKAHEAD):
            candidates = (later, dataclasses.replace(event, state=later.state))
            if any(event_link(before, event.id, c) == stored for c in candidates):
                return later.id
        return None

    def _reach_checkpoints(self, position: int) -> None:
        checkpoints = self._checkpoints
        while self._next_checkpoint < len(checkpoints):
            index = self._next_checkpoint
            checkpoint = checkpoints[index]
            if checkpoint.position > position:
                return
            if checkpoint.position < position:
                self.checkpoint_problems[index] = (
                    f"the log has no event at position {checkpoint.position}: it was removed"
                )
            elif self._link.hex() != checkpoint.head_hex:
                self.checkpoint_problems[index] = (
                    f"the log up to position {position} no longer hashes to the signed head:"
                    " events at or before it were altered, removed, inserted or reordered"
                )
            self._next_checkpoint += 1

    def _close_checkpoints(self) -> None:
        for index in range(self._next_checkpoint, len(self._checkpoints)):
            self.checkpoint_problems[index] = (
                f"the log ends at position {self._position}, before the checkpoint's position"
                f" {self._checkpoints[index].position}: events were removed from its end"
            )


def _unlinked(position: int) -> _Finding:
    return _Finding(
        position,
        ChainProblem.INSERTED,
        f"position {position} holds an event with no chain link: it was inserted outside the"
        " service, or its link was deleted",
    )


def _eventless(position: int) -> _Finding:
    return _Finding(
        position,
        ChainProblem.REMOVED,
        f"position {position} has a chain link but no event: the event was removed",
    )
