"""ACME (RFC 8555) as event-sourced aggregates: directories, EAB credentials, accounts,
orders (with their authorizations and challenges) and the link from a certificate to the
account that ordered it.

Ids are uuid5 where a lookup needs them: a directory by its name, an EAB credential by its
key id, an account by its directory and key thumbprint, a certificate's link by the
certificate's id. Orders are uuid4. The EAB MAC key never enters an event: the key store
keeps it encrypted (domain.application.acme); the event names its key id only.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import Enum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from domain.model.errors import PCAError, ValidationError
from domain.model.events import AuditedCreated, AuditedEvent
from domain.model.values import RequestContext

ACME_NAMESPACE = uuid5(NAMESPACE_URL, "urn:pca:acme")
ACME_ERROR = "urn:ietf:params:acme:error:"
DIRECTORY_NAME = r"[a-z0-9][a-z0-9-]{0,62}"


class AcmeError(PCAError):
    """Raised when an ACME request is refused; ``kind`` is the RFC 8555 error type
    (``badNonce``, ``unauthorized``, ...) and ``status`` the HTTP status it goes with."""

    def __init__(self, kind: str, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.kind = kind
        self.status = status

    @property
    def type_uri(self) -> str:
        return ACME_ERROR + self.kind


class Status(Enum):
    """The states RFC 8555 §7.1.6 names for orders, authorizations and challenges."""

    PENDING = "pending"
    READY = "ready"
    PROCESSING = "processing"
    VALID = "valid"
    INVALID = "invalid"
    DEACTIVATED = "deactivated"


def directory_id(name: str) -> UUID:
    return uuid5(ACME_NAMESPACE, f"directory:{name}")


def eab_id(kid: str) -> UUID:
    return uuid5(ACME_NAMESPACE, f"eab:{kid}")


def account_id(directory: UUID, thumbprint: str) -> UUID:
    return uuid5(ACME_NAMESPACE, f"account:{directory}:{thumbprint}")


def key_binding_id(directory: UUID, thumbprint: str) -> UUID:
    return uuid5(ACME_NAMESPACE, f"key:{directory}:{thumbprint}")


def link_id(certificate_id: UUID) -> UUID:
    return uuid5(ACME_NAMESPACE, f"certificate:{certificate_id}")


def account_actor(account: UUID) -> str:
    """How events caused by an ACME account name their actor."""
    return f"acme account {account}"


class AcmeDirectory(Aggregate):
    """An ACME directory an admin opened for one intermediate CA and one profile."""

    class DirectoryCreated(AuditedCreated):
        name: str
        ca_id: UUID
        profile: str
        eab_required: bool

    def __init__(self, name: str, ca_id: UUID, profile: str, eab_required: bool) -> None:
        self.name = name
        self.ca_id = ca_id
        self.profile = profile
        self.eab_required = eab_required

    @classmethod
    def create(
        cls, ctx: RequestContext, name: str, ca_id: UUID, profile: str, *, eab_required: bool
    ) -> AcmeDirectory:
        """A directory ``name`` (lower-case letters, digits, hyphens: it is a URL segment)."""
        if not re.fullmatch(DIRECTORY_NAME, name):
            raise ValidationError(
                "name must be 1 to 63 lower-case letters, digits or hyphens, starting with a "
                "letter or digit.",
                field="name",
            )
        return cls._create(
            cls.DirectoryCreated,
            id=directory_id(name),
            actor=ctx.actor,
            request_id=ctx.request_id,
            name=name,
            ca_id=ca_id,
            profile=profile,
            eab_required=eab_required,
        )


class EabCredential(Aggregate):
    """An external account binding key id, bound to one directory, usable once."""

    class EabCreated(AuditedCreated):
        kid: str
        directory_id: UUID

    class EabUsed(AuditedEvent):
        account_id: UUID

        def apply(self, credential: EabCredential) -> None:
            credential.used_by = self.account_id

    def __init__(self, kid: str, directory_id: UUID) -> None:
        self.kid = kid
        self.directory_id = directory_id
        self.used_by: UUID | None = None

    @classmethod
    def create(cls, ctx: RequestContext, kid: str, directory: UUID) -> EabCredential:
        return cls._create(
            cls.EabCreated,
            id=eab_id(kid),
            actor=ctx.actor,
            request_id=ctx.request_id,
            kid=kid,
            directory_id=directory,
        )

    def use(self, ctx: RequestContext, account: UUID) -> None:
        """Bind this credential to ``account``; a credential binds one account only."""
        if self.used_by is not None:
            raise AcmeError("unauthorized", "This external account binding was already used.")
        self.trigger_event(
            self.EabUsed, actor=ctx.actor, request_id=ctx.request_id, account_id=account
        )


class AcmeAccount(Aggregate):
    """An ACME account: its key (JWK and thumbprint), contacts and binding."""

    class AccountRegistered(AuditedCreated):
        directory_id: UUID
        jwk: dict[str, Any]
        thumbprint: str
        contact: list[str]
        eab_kid: str | None

    class AccountDeactivated(AuditedEvent):
        def apply(self, account: AcmeAccount) -> None:
            account.status = Status.DEACTIVATED

    class AccountKeyChanged(AuditedEvent):
        jwk: dict[str, Any]
        thumbprint: str

        def apply(self, account: AcmeAccount) -> None:
            account.jwk = self.jwk
            account.thumbprint = self.thumbprint

    def __init__(
        self,
        directory_id: UUID,
        jwk: dict[str, Any],
        thumbprint: str,
        contact: list[str],
        eab_kid: str | None,
    ) -> None:
        self.directory_id = directory_id
        self.jwk = jwk
        self.thumbprint = thumbprint
        self.contact = list(contact)
        self.eab_kid = eab_kid
        self.status = Status.VALID

    @classmethod
    def register(
        cls,
        request_id: str,
        directory: UUID,
        jwk: dict[str, Any],
        thumbprint: str,
        contact: list[str],
        eab_kid: str | None,
    ) -> AcmeAccount:
        """A new account; its own id is the actor of its creation."""
        new_id = account_id(directory, thumbprint)
        return cls._create(
            cls.AccountRegistered,
            id=new_id,
            actor=account_actor(new_id),
            request_id=request_id,
            directory_id=directory,
            jwk=jwk,
            thumbprint=thumbprint,
            contact=contact,
            eab_kid=eab_kid,
        )

    @property
    def actor(self) -> str:
        return account_actor(self.id)

    def check_valid(self) -> None:
        if self.status is not Status.VALID:
            raise AcmeError("unauthorized", "This account is deactivated.", 401)

    def deactivate(self, request_id: str) -> None:
        self.check_valid()
        self.trigger_event(self.AccountDeactivated, actor=self.actor, request_id=request_id)

    def change_key(self, request_id: str, jwk: dict[str, Any], thumbprint: str) -> AcmeKeyBinding:
        """Sign from now on with ``jwk``; the binding makes the new key findable and, by
        its id, unusable by a second account."""
        self.check_valid()
        self.trigger_event(
            self.AccountKeyChanged,
            actor=self.actor,
            request_id=request_id,
            jwk=jwk,
            thumbprint=thumbprint,
        )
        return AcmeKeyBinding.bind(request_id, self, thumbprint)


class AcmeKeyBinding(Aggregate):
    """A key an account rolled over to (RFC 8555 §7.3.5), found by its thumbprint."""

    class KeyBound(AuditedCreated):
        account_id: UUID

    def __init__(self, account_id: UUID) -> None:
        self.account_id = account_id

    @classmethod
    def bind(cls, request_id: str, account: AcmeAccount, thumbprint: str) -> AcmeKeyBinding:
        return cls._create(
            cls.KeyBound,
            id=key_binding_id(account.directory_id, thumbprint),
            actor=account.actor,
            request_id=request_id,
            account_id=account.id,
        )


class AcmeOrder(Aggregate):
    """An order for DNS identifiers, with one authorization per identifier.

    Authorization ``i`` belongs to ``identifiers[i]`` and offers its challenges with
    ``tokens[i]``; a wildcard identifier offers dns-01 only.
    """

    class OrderCreated(AuditedCreated):
        directory_id: UUID
        account_id: UUID
        identifiers: list[str]
        tokens: list[str]
        expires: dt.datetime
        replaces: str | None = None

    class ChallengeValidated(AuditedEvent):
        index: int
        challenge: str
        validated: dt.datetime

        def apply(self, order: AcmeOrder) -> None:
            order.authz_status[self.index] = Status.VALID
            order.validated[self.index] = (self.challenge, self.validated)

    class ChallengeFailed(AuditedEvent):
        index: int
        challenge: str
        detail: str

        def apply(self, order: AcmeOrder) -> None:
            order.authz_status[self.index] = Status.INVALID
            order.failure = (self.index, self.challenge, self.detail)

    class OrderFinalized(AuditedEvent):
        certificate_id: UUID

        def apply(self, order: AcmeOrder) -> None:
            order.certificate_id = self.certificate_id

    def __init__(
        self,
        directory_id: UUID,
        account_id: UUID,
        identifiers: list[str],
        tokens: list[str],
        expires: dt.datetime,
        replaces: str | None = None,
    ) -> None:
        self.directory_id = directory_id
        self.account_id = account_id
        self.identifiers = list(identifiers)
        self.tokens = list(tokens)
        self.expires = expires
        self.replaces = replaces
        self.authz_status = [Status.PENDING for _ in identifiers]
        self.validated: list[tuple[str, dt.datetime] | None] = [None for _ in identifiers]
        self.failure: tuple[int, str, str] | None = None
        self.certificate_id: UUID | None = None

    @classmethod
    def create(
        cls,
        ctx: RequestContext,
        account: AcmeAccount,
        identifiers: list[str],
        tokens: list[str],
        expires: dt.datetime,
        replaces: str | None,
    ) -> AcmeOrder:
        return cls._create(
            cls.OrderCreated,
            actor=ctx.actor,
            request_id=ctx.request_id,
            directory_id=account.directory_id,
            account_id=account.id,
            identifiers=identifiers,
            tokens=tokens,
            expires=expires,
            replaces=replaces,
        )

    def status(self, now: dt.datetime) -> Status:
        """pending, ready, valid or invalid (RFC 8555 §7.1.6); expired counts as invalid."""
        if self.certificate_id is not None:
            return Status.VALID
        if self.failure is not None or now >= self.expires:
            return Status.INVALID
        if all(status is Status.VALID for status in self.authz_status):
            return Status.READY
        return Status.PENDING

    def challenges(self, index: int) -> tuple[str, ...]:
        """The challenge types authorization ``index`` offers."""
        if self.identifiers[index].startswith("*."):
            return ("dns-01",)
        return ("http-01", "dns-01")

    def check_owner(self, account: AcmeAccount) -> None:
        if account.id != self.account_id:
            raise AcmeError("unauthorized", "This order belongs to another account.", 403)

    def check_challengeable(self, index: int, challenge: str, now: dt.datetime) -> None:
        if challenge not in self.challenges(index):
            raise AcmeError("malformed", f"No {challenge} challenge here.", 404)
        if self.status(now) is not Status.PENDING or self.authz_status[index] is not Status.PENDING:
            raise AcmeError(
                "orderNotReady" if self.status(now) is Status.READY else "malformed",
                "This authorization is no longer pending.",
                403,
            )

    def validate(self, ctx: RequestContext, index: int, challenge: str, now: dt.datetime) -> None:
        self.trigger_event(
            self.ChallengeValidated,
            actor=ctx.actor,
            request_id=ctx.request_id,
            index=index,
            challenge=challenge,
            validated=now,
        )

    def fail(self, ctx: RequestContext, index: int, challenge: str, detail: str) -> None:
        self.trigger_event(
            self.ChallengeFailed,
            actor=ctx.actor,
            request_id=ctx.request_id,
            index=index,
            challenge=challenge,
            detail=detail,
        )

    def check_ready(self, now: dt.datetime) -> None:
        status = self.status(now)
        if status is not Status.READY:
            raise AcmeError(
                "orderNotReady", f"The order is {status.value}, not ready to finalize.", 403
            )

    def finalize(self, ctx: RequestContext, certificate_id: UUID) -> None:
        self.trigger_event(
            self.OrderFinalized,
            actor=ctx.actor,
            request_id=ctx.request_id,
            certificate_id=certificate_id,
        )


class AcmeCertificate(Aggregate):
    """Which account's order a certificate was issued for (revocation, ARI, audit)."""

    class AcmeCertificateIssued(AuditedCreated):
        certificate_id: UUID
        account_id: UUID
        order_id: UUID

    def __init__(self, certificate_id: UUID, account_id: UUID, order_id: UUID) -> None:
        self.certificate_id = certificate_id
        self.account_id = account_id
        self.order_id = order_id

    @classmethod
    def record(cls, ctx: RequestContext, certificate_id: UUID, order: AcmeOrder) -> AcmeCertificate:
        return cls._create(
            cls.AcmeCertificateIssued,
            id=link_id(certificate_id),
            actor=ctx.actor,
            request_id=ctx.request_id,
            certificate_id=certificate_id,
            account_id=order.account_id,
            order_id=order.id,
        )
