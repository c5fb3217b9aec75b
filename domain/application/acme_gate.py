"""What every ACME request goes through first: the directory, the JWS checks of RFC 8555
§6.2-6.5 in one place, and the loads and saves of ACME aggregates.

:meth:`Gate.authenticate` checks that the directory exists, ``jwk`` or ``kid`` as the
resource wants, that the ``url`` header is the URL posted to, that the signature verifies,
and that the nonce is one this deployment issued and nobody used (the shared table of
``Nonces``); the algorithm is checked with the signature.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.utils import get_topic

from domain.application.ports import Nonces
from domain.application.service import PrivateCA
from domain.model.acme import (
    AcmeAccount,
    AcmeDirectory,
    AcmeError,
    AcmeKeyBinding,
    account_id,
    directory_id,
    key_binding_id,
)
from domain.model.errors import NotFoundError
from domain.model.values import RequestContext
from domain.pki.jws import SignedRequest

QUERY_PAGE = 500
A = TypeVar("A")


@dataclass(frozen=True)
class AcmeCall:
    """One signed ACME request: the directory's name and base URL, the URL posted to,
    the request id, and the JWS."""

    directory: str
    base: str
    url: str
    request_id: str
    signed: SignedRequest

    def account_url(self, account: UUID) -> str:
        return f"{self.base}/acct/{account}"


@dataclass(frozen=True)
class Authenticated:
    """Who signed a call: the directory, the account (None for a new one), the JWK."""

    directory: AcmeDirectory
    account: AcmeAccount | None
    jwk: dict[str, Any]

    @property
    def known(self) -> AcmeAccount:
        assert self.account is not None
        return self.account

    def context(self, request_id: str) -> RequestContext:
        return RequestContext(self.known.actor, request_id)


class Gate:
    """Authentication, loads and saves for the ACME use cases of one process."""

    def __init__(self, service: PrivateCA, nonces: Nonces) -> None:
        self._service = service
        self._nonces = nonces

    def new_nonce(self) -> str:
        return self._nonces.issue()

    def directory(self, name: str) -> AcmeDirectory:
        """The directory ``name``; 404 if there is none."""
        found = self.find(directory_id(name), AcmeDirectory)
        if found is None:
            raise NotFoundError(f"There is no ACME directory {name!r}.")
        return found

    def authenticate(
        self, call: AcmeCall, *, new_account: bool = False, jwk_allowed: bool = False
    ) -> Authenticated:
        """RFC 8555 §6.2-6.5, in one place; see the module docstring."""
        directory = self.directory(call.directory)
        header = call.signed.header
        if ("jwk" in header) == ("kid" in header):
            raise AcmeError("malformed", "The protected header needs exactly one of jwk and kid.")
        if new_account and "jwk" not in header:
            raise AcmeError("malformed", "newAccount must be signed with a jwk, not a kid.")
        if header.get("url") != call.url:
            raise AcmeError("unauthorized", f"The url header must be {call.url}.", 401)
        account = None
        if "kid" in header:
            account = self._account_of(call, directory, str(header["kid"]))
            jwk = account.jwk
        elif new_account or jwk_allowed:
            jwk = header["jwk"]
        else:
            raise AcmeError("malformed", "Sign with your account's kid, not a jwk.")
        call.signed.verify(jwk)
        if not self._nonces.consume(str(header.get("nonce", ""))):
            raise AcmeError("badNonce", "The nonce is unknown, used or expired; get a new one.")
        return Authenticated(directory, account, jwk)

    def _account_of(self, call: AcmeCall, directory: AcmeDirectory, kid: str) -> AcmeAccount:
        prefix = f"{call.base}/acct/"
        try:
            account_uuid = UUID(kid.removeprefix(prefix)) if kid.startswith(prefix) else None
        except ValueError:
            account_uuid = None
        account = self.find(account_uuid, AcmeAccount) if account_uuid else None
        if account is None or account.directory_id != directory.id:
            raise AcmeError("accountDoesNotExist", "No account has this kid.", 400)
        account.check_valid()
        return account

    def account_by_key(self, directory: AcmeDirectory, key: str) -> AcmeAccount | None:
        """The account that signs with the key of thumbprint ``key`` now, if any."""
        binding = self.find(key_binding_id(directory.id, key), AcmeKeyBinding)
        found_id = binding.account_id if binding else account_id(directory.id, key)
        account = self.find(found_id, AcmeAccount)
        if account is not None and account.thumbprint != key:
            raise AcmeError("unauthorized", "This key was replaced by a key change.", 401)
        return account

    def find(self, aggregate_id: UUID, kind: type[A]) -> A | None:
        try:
            found: object = self._service.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, kind) else None

    def save(self, *aggregates: object) -> None:
        self._service.save(*[aggregate for aggregate in aggregates if aggregate is not None])  # type: ignore[arg-type]

    def created(self, event: type[object], kind: type[A]) -> Iterator[A]:
        """Each aggregate of ``kind`` whose creation ``event`` the log holds, in log order."""
        topics = [get_topic(event)]
        start = 1
        while True:
            page = self._service.recorder.select_notifications(
                start=start, limit=QUERY_PAGE, topics=topics
            )
            for notification in page:
                found = self.find(UUID(str(notification.originator_id)), kind)
                if found is not None:
                    yield found
            if len(page) < QUERY_PAGE:
                return
            start = page[-1].id + 1
