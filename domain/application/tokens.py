"""API tokens: create (returned once, stored as a hash), authenticate, revoke.

Every request authenticates, so token records are cached for a short while; see
:meth:`Tokens.record` for what that costs a revocation made by another process.
"""

from __future__ import annotations

import datetime as dt
import time
from uuid import UUID

from domain.application.store import Outcome, Store
from domain.model.errors import NotFoundError, ValidationError
from domain.model.policy import check_profile_name
from domain.model.tokens import TOKEN_PREFIX, ApiToken, Role, new_token, token_id
from domain.model.validation import display_name
from domain.model.values import UNSCOPED, RequestContext, TokenScope

MAX_TOKEN_LENGTH = 128
TOKEN_CACHE_SECONDS = 2.0
MAX_TOKEN_DAYS = 3650
MAX_CACHED_TOKENS = 1024
MAX_SCOPE_ITEMS = 100


class Tokens:
    """The bearer tokens of one process, with its cache of their records."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[UUID, tuple[float, ApiToken]] = {}

    def create(
        self,
        ctx: RequestContext,
        name: str,
        role: Role,
        valid_days: int | None = None,
        scope: TokenScope = UNSCOPED,
    ) -> tuple[str, Outcome]:
        """A new bearer token and its outcome; with ``valid_days`` it stops being accepted
        that many days from now; ``scope`` names existing CAs and valid profile names."""
        checked = display_name(name)
        if checked is None:
            raise ValidationError(
                "name must not be blank; say who or what uses the token.", field="name"
            )
        ctx.scope.check_covers(scope)
        if max(len(scope.ca_ids), len(scope.profiles)) > MAX_SCOPE_ITEMS:
            raise ValidationError(
                f"A token's scope names at most {MAX_SCOPE_ITEMS} CAs and profiles.",
                field="ca_ids" if len(scope.ca_ids) > MAX_SCOPE_ITEMS else "profiles",
            )
        for ca_id in scope.ca_ids:
            self._store.get_ca(ca_id, field="ca_ids")
        for profile in scope.profiles:
            check_profile_name(profile, "profiles")
        token = new_token()
        expiry = self._expiry(valid_days)
        record = ApiToken.create(ctx, checked, role, token, expiry, scope)
        return token, self._store.save(record.id, record)

    def _expiry(self, valid_days: int | None) -> dt.datetime | None:
        if valid_days is None:
            return None
        if not 1 <= valid_days <= MAX_TOKEN_DAYS:
            raise ValidationError(
                f"valid_days must be 1 to {MAX_TOKEN_DAYS}; got {valid_days}.",
                field="valid_days",
            )
        return self._store.clock() + dt.timedelta(days=valid_days)

    def authenticate(self, token: str) -> ApiToken | None:
        """The valid token record for ``token``, or None (unknown, revoked or malformed)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
            return None
        record = self.record(token_id(token))
        if record is not None and record.matches(token) and record.is_current(self._store.clock()):
            return record
        return None

    def current(self, record_id: UUID) -> ApiToken | None:
        """The token record ``record_id`` if it is neither revoked nor expired."""
        record = self.record(record_id)
        if record is None or record.revoked or not record.is_current(self._store.clock()):
            return None
        return record

    def record(self, record_id: UUID) -> ApiToken | None:
        """The token record, loaded at most every TOKEN_CACHE_SECONDS: every request
        authenticates, and loading the record was a tenth of an issuance. The age counts
        from the load, not the last use, so a revocation made by another process is
        honoured here at most that many seconds later, however busy the token."""
        cached = self._cache.get(record_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        record = self._store.find(record_id)
        if not isinstance(record, ApiToken):
            return None
        if len(self._cache) >= MAX_CACHED_TOKENS:
            self._cache.clear()
        self._cache[record_id] = (time.monotonic() + TOKEN_CACHE_SECONDS, record)
        return record

    def revoke(self, ctx: RequestContext, record_id: UUID) -> Outcome:
        """Stop accepting the token ``record_id``."""
        record = self._store.find(record_id)
        if not isinstance(record, ApiToken):
            raise NotFoundError(f"No API token with id {record_id}.")
        record.revoke(ctx)
        self._cache.pop(record_id, None)
        return self._store.save(record_id, record)
