"""API tokens as an event-sourced aggregate: who may call the API, in which role.

The token itself is never stored: its id is uuid5 of its SHA-256, and the event keeps the
hash only. Tokens carry 256 random bits, so a fast hash is enough to make the stored
value useless to whoever reads the event store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from enum import Enum
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.model.errors import ConflictError, ValidationError
from domain.model.events import AuditedCreated, AuditedEvent
from domain.model.values import UNSCOPED, RequestContext, TokenScope

TOKEN_NAMESPACE = uuid5(NAMESPACE_URL, "urn:pca:api-token")
TOKEN_PREFIX = "pca_"  # noqa: S105 - a public prefix, not a secret
MAX_NAME_LENGTH = 64


class Role(Enum):
    """What a token may do. Each role includes the ones below it."""

    AUDITOR = "auditor"  # read-only: lists, events, reports
    OPERATOR = "operator"  # + issue, revoke, delete, download
    ADMIN = "admin"  # + CA lifecycle and quota

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, required: Role) -> bool:
        """True if this role may do what ``required`` may."""
        return self.rank >= required.rank


def token_hash(token: str) -> str:
    """The SHA-256 (hex) under which a token is known."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_fingerprint(token: str) -> str:
    """A name for ``token`` that logs may carry: the first 12 hex digits of its SHA-256.

    The token's record holds the full SHA-256, so an operator can tell which token a log
    line is about; 48 bits of a hash reveal nothing that helps to present the token.
    """
    return token_hash(token)[:12]


def token_id(token: str) -> UUID:
    """The id of the aggregate that describes ``token``."""
    return uuid5(TOKEN_NAMESPACE, token_hash(token))


def new_token() -> str:
    """A fresh bearer token: a recognisable prefix and 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class ApiToken(Aggregate):
    """A named bearer token with one role, until revoked or (if it has one) its expiry."""

    class TokenCreated(AuditedCreated):
        name: str
        role: Role
        token_sha256: str
        expires_at: dt.datetime | None = None  # absent in events of tokens made before
        ca_ids: tuple[UUID, ...] = ()  # the scope; absent (unlimited) in older events
        profiles: tuple[str, ...] = ()

    class TokenRevoked(AuditedEvent):
        def apply(self, token: ApiToken) -> None:
            token.revoked = True

    def __init__(
        self,
        name: str,
        role: Role,
        token_sha256: str,
        expires_at: dt.datetime | None = None,
        ca_ids: Sequence[UUID] = (),
        profiles: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.role = role
        self.token_sha256 = token_sha256
        self.expires_at = expires_at
        self.scope = TokenScope(tuple(ca_ids), tuple(profiles))
        self.revoked = False

    @classmethod
    def create(
        cls,
        ctx: RequestContext,
        name: str,
        role: Role,
        token: str,
        expires_at: dt.datetime | None = None,
        scope: TokenScope = UNSCOPED,
    ) -> ApiToken:
        """Register ``token`` (made by the caller) under ``name`` with ``role``, accepted
        until ``expires_at`` if given, for the CAs and profiles of ``scope``."""
        name = name.strip()
        if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
            raise ValidationError(
                f"name must be 1 to {MAX_NAME_LENGTH} printable characters.", field="name"
            )
        return cls._create(
            cls.TokenCreated,
            id=token_id(token),
            actor=ctx.actor,
            request_id=ctx.request_id,
            name=name,
            role=role,
            token_sha256=token_hash(token),
            expires_at=expires_at,
            ca_ids=scope.ca_ids,
            profiles=scope.profiles,
        )

    @property
    def actor(self) -> str:
        """How events made with this token name their actor."""
        return f"{self.name} ({self.role.value})"

    def matches(self, token: str) -> bool:
        """Constant-time check that ``token`` is this one and still valid."""
        return hmac.compare_digest(self.token_sha256, token_hash(token)) and not self.revoked

    def is_current(self, now: dt.datetime) -> bool:
        """Whether the token has not expired at ``now`` (one without expiry never does)."""
        return self.expires_at is None or now < self.expires_at

    def revoke(self, ctx: RequestContext) -> None:
        """Stop accepting this token, for good."""
        if self.revoked:
            raise ConflictError("This token is already revoked.")
        self.trigger_event(self.TokenRevoked, actor=ctx.actor, request_id=ctx.request_id)
