"""Tamper evidence, storage side: every stored event is bound into a hash chain.

The chain
---------
Each event the application stores gets one row in ``pca_audit_chain``, written by the
recorder in the same transaction as the event (:mod:`domain.adapters.recorders`)::

    position  the event's notification id (its position in the application log)
    previous  the position of the link before it (0 for the first), a diagnostic pointer
    link      SHA-256(link of the previous position || canonical bytes of this event)
    recorded_at  when the event was committed: microseconds since the Unix epoch (UTC),
              taken under the log's write lock and never below the previous row's, so it
              never goes backwards along positions (see below)

The link before the first event is ``GENESIS`` = SHA-256(``b"pca-audit-chain/v1 genesis"``).

Canonical bytes of an event (version 1): five fields, concatenated, integers as 8-byte
big-endian two's complement, byte strings preceded by their length as such an integer::

    position            int64
    originator_id       length + UTF-8 of the id as the application reads it back
                        (a UUID in its 36-character lowercase hyphenated form)
    originator_version  int64
    topic               length + UTF-8
    state               length + the stored bytes (compressed/encrypted, as stored)

Commit stamps
-------------
An event's own ``timestamp`` is taken by its writer before the write lock, so with
concurrent writers those stamps are not in position order. ``recorded_at`` is taken by the
recorder while it holds the lock, as ``max(clock, recorded_at of the row before)``: a clock
stepped back (NTP) repeats the last stamp instead of going backwards. Rows chained before
the column existed are stamped once, at start-up, with the running maximum of their
events' own timestamps (:mod:`domain.audit.stamps`). The
stamp is not hashed (the link format predates it): it orders and finds events in time, it
does not prove when they were written.

``previous`` is not hashed: it only lets a verifier say "removed" when an event and its
link were both deleted (the next link then names a position that no longer exists).

Threat model
------------
The chain detects edits to stored events (altered, removed, inserted, reordered rows) by
anyone who writes to the database without recomputing every later link, and accidental
corruption. It holds no secret: someone with write access who knows this module can
rewrite the events *and* the whole chain from the edit onwards. Signed checkpoints
(:mod:`domain.audit.checkpoints`) bound that: an edit before a checkpoint's position
changes the head recomputed there, and forging a new checkpoint needs the audit signing
key, which lives in the key store (encrypted under the master key), not in this database.
Out of scope: an attacker who holds the database *and* the audit key can re-sign
everything, and one who can write the checkpoint table can empty it; checkpoints exported
elsewhere, checked against a pinned public key, are what bound both. Also outside what the
chain proves: events deleted together with their links after the last exported
checkpoint, and snapshots (a cache of aggregate state in another table, not chained). When
a store whose chain is empty starts (a log from before the chain existed), its events are
bound as they are (trust on first use); emptying the chain table is therefore one more
full rewrite that only checkpoints reveal. SQLite refuses new writes once events were
deleted from the end of the log, since their positions would be reused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import NamedTuple
from uuid import UUID

from eventsourcing.persistence import Notification, StoredEvent

from domain.model.errors import ConflictError

__all__ = [
    "CHAIN_TABLE",
    "CHECKPOINTS_TABLE",
    "GENESIS",
    "LINK_BYTES",
    "AuditChainError",
    "ChainLink",
    "ChainStore",
    "StoredCheckpoint",
    "canonical_bytes",
    "event_canonical_bytes",
    "event_link",
    "extend_chain",
    "from_stamp",
    "next_link",
]

CHAIN_TABLE = "pca_audit_chain"
CHECKPOINTS_TABLE = "pca_audit_checkpoints"
GENESIS = hashlib.sha256(b"pca-audit-chain/v1 genesis").digest()
LINK_BYTES = 32
_INT64 = struct.Struct(">q")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class AuditChainError(ConflictError):
    """Raised when the audit chain cannot be extended or signed because it is broken,
    or when the event store was opened without one."""


class ChainLink(NamedTuple):
    """One stored row of the chain (``recorded_at`` in microseconds since the epoch, None
    until a row chained before the stamps existed is stamped)."""

    position: int
    previous: int
    link: bytes
    recorded_at: int | None = None


class StoredCheckpoint(NamedTuple):
    """One stored row of ``pca_audit_checkpoints``; ``time`` as it was signed."""

    position: int
    head: bytes
    time: str
    key_id: str
    public_key: bytes
    signature: bytes


def canonical_bytes(
    position: int, originator_id: UUID | str, originator_version: int, topic: str, state: bytes
) -> bytes:
    """The version-1 canonical encoding of one event (see the module docstring)."""
    return b"".join(
        (
            _INT64.pack(position),
            _length_prefixed(str(originator_id).encode("utf-8")),
            _INT64.pack(originator_version),
            _length_prefixed(topic.encode("utf-8")),
            _length_prefixed(state),
        )
    )


def next_link(previous: bytes, canonical: bytes) -> bytes:
    """SHA-256(previous || canonical): the link that binds an event after ``previous``."""
    return hashlib.sha256(previous + canonical).digest()


def event_canonical_bytes(position: int, event: StoredEvent) -> bytes:
    """The canonical bytes of ``event`` stored at ``position``."""
    return canonical_bytes(
        position, event.originator_id, event.originator_version, event.topic, event.state
    )


def event_link(previous: bytes, position: int, event: StoredEvent) -> bytes:
    """The link of ``event`` stored at ``position`` after the link ``previous``."""
    return next_link(previous, event_canonical_bytes(position, event))


def extend_chain(
    head: ChainLink | None, events: Iterable[tuple[int, StoredEvent]]
) -> list[ChainLink]:
    """The chain rows for ``events`` (position, event) stored after ``head``, in order.

    Raises AuditChainError if a position does not come after the previous one: the store
    reused positions the chain already holds, so rows were deleted from the event log.
    """
    previous, link = (0, GENESIS) if head is None else (head.position, head.link)
    rows = []
    for position, event in events:
        if position <= previous:
            raise AuditChainError(
                f"the event store assigned position {position} but the audit chain already"
                f" reaches {previous}: events were deleted from the end of the log outside the"
                " service; run `pca audit verify` and restore the database from a backup"
            )
        link = event_link(link, position, event)
        rows.append(ChainLink(position, previous, link))
        previous = position
    return rows


def from_stamp(recorded_at: int) -> dt.datetime:
    """A commit stamp (microseconds since the epoch) as an aware UTC time."""
    return _EPOCH + dt.timedelta(microseconds=recorded_at)


def _length_prefixed(data: bytes) -> bytes:
    return _INT64.pack(len(data)) + data


class ChainStore(ABC):
    """What verification and checkpoints need from a chained event store."""

    @abstractmethod
    def select_events_after(self, position: int, limit: int) -> Sequence[Notification]:
        """Up to ``limit`` events with positions above ``position``, in order."""

    @abstractmethod
    def select_links_after(self, position: int, limit: int) -> Sequence[ChainLink]:
        """Up to ``limit`` chain rows with positions above ``position``, in order."""

    @abstractmethod
    def select_head(self) -> ChainLink | None:
        """The chain row with the highest position, or None if the chain is empty."""

    @abstractmethod
    def select_unstamped(self, position: int, limit: int) -> Sequence[int]:
        """Up to ``limit`` positions above ``position`` whose row has no commit stamp yet."""

    @abstractmethod
    def stamp_links(self, stamps: Sequence[tuple[int, int]]) -> None:
        """Give each (position, recorded_at) row without a stamp that stamp."""

    @abstractmethod
    def select_last_position(self) -> int:
        """The highest position of any event or chain row (0 if none), from one snapshot:
        every event and link at or below it is committed and visible to later reads."""

    @abstractmethod
    def insert_checkpoint(self, checkpoint: StoredCheckpoint) -> bool:
        """Store ``checkpoint``; False if one is already stored at its position."""

    @abstractmethod
    def select_checkpoints(self) -> Sequence[StoredCheckpoint]:
        """Every stored checkpoint, by position."""

    @abstractmethod
    def select_latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint with the highest position, or None."""
