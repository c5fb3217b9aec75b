"""Idempotency keys for commands that would otherwise act twice when retried.

A client that loses the answer to "create a CA" or "buy 100 certificates" (a timeout, a
503 during a database restart) cannot tell whether it happened; retrying must not make a
second CA or buy twice. With an ``Idempotency-Key`` the first request records a
:class:`CommandClaim` in the same save as its change; a retry with the same key and the
same parameters gets the first outcome, with other parameters a conflict. Issuance has
its own claim (:class:`domain.model.certificate.IssuanceRequest`); quota assignment needs none,
as it sets the remaining quota rather than adding to it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.model.events import AuditedCreated
from domain.model.values import RequestContext

COMMAND_NAMESPACE = uuid5(NAMESPACE_URL, "urn:pca:command-idempotency-key")


@dataclass(frozen=True)
class Repeatable:
    """One command's Idempotency-Key, where it applies, and its parameters' fingerprint."""

    command: str  # e.g. "create-ca", "purchase-quota"
    scope: str  # what the key is unique within, e.g. the root CA's id
    key: str
    fingerprint: str

    @classmethod
    def of(cls, command: str, scope: str, key: str | None, parameters: object) -> Repeatable | None:
        """None without a key; otherwise the key with a SHA-256 of ``parameters``."""
        if key is None:
            return None
        encoded = json.dumps(parameters, sort_keys=True, default=str).encode()
        return cls(command, scope, key, hashlib.sha256(encoded).hexdigest())

    @property
    def claim_id(self) -> UUID:
        return uuid5(COMMAND_NAMESPACE, f"{self.command}/{self.scope}/{self.key}")


class CommandClaim(Aggregate):
    """Binds a command's Idempotency-Key to its parameters and to what it changed."""

    class CommandClaimed(AuditedCreated):
        command: str
        idempotency_key: str
        fingerprint: str
        outcome_id: UUID

    def __init__(
        self, command: str, idempotency_key: str, fingerprint: str, outcome_id: UUID
    ) -> None:
        self.command = command
        self.idempotency_key = idempotency_key
        self.fingerprint = fingerprint
        self.outcome_id = outcome_id

    @classmethod
    def record(cls, ctx: RequestContext, once: Repeatable, outcome_id: UUID) -> CommandClaim:
        """Claim ``once.key`` for ``outcome_id``; a second claim fails on save."""
        return cls._create(
            cls.CommandClaimed,
            id=once.claim_id,
            actor=ctx.actor,
            request_id=ctx.request_id,
            command=once.command,
            idempotency_key=once.key,
            fingerprint=once.fingerprint,
            outcome_id=outcome_id,
        )
