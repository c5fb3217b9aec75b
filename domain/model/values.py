"""Typed values that cross layers: enums, subjects, SANs and the request context."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from uuid import UUID

from domain.model.errors import OutOfScopeError


class KeyAlgorithm(Enum):
    """Key algorithms offered for CA keys and server-generated leaf keys."""

    RSA_2048 = "RSA_2048"
    RSA_3072 = "RSA_3072"
    RSA_4096 = "RSA_4096"
    EC_P256 = "EC_P256"
    EC_P384 = "EC_P384"

    @property
    def is_rsa(self) -> bool:
        return self.value.startswith("RSA")


class KeyStorage(Enum):
    """Where a CA's private key lives."""

    SOFTWARE = "software"  # the key store, encrypted under the master keys
    PKCS11 = "pkcs11"  # a PKCS#11 token: made there, never leaves it


@dataclass(frozen=True)
class KeyRef:
    """A CA key by id and where it lives."""

    key_id: str
    storage: KeyStorage = KeyStorage.SOFTWARE


@dataclass(frozen=True)
class KeyGeneration:
    """One key a CA signs (or signed) with, numbered from 1, and its CA certificate."""

    number: int
    key: KeyRef
    certificate_der: bytes


class CAKind(Enum):
    ROOT = "root"
    INTERMEDIATE = "intermediate"


class CAStatus(Enum):
    """Lifecycle of a CA. Expiry is derived from the clock, never stored."""

    PENDING = "pending"
    ENABLED = "enabled"
    DISABLED = "disabled"
    REVOKED = "revoked"


class CertificateType(Enum):
    SERVER = "server"
    CLIENT = "client"


class CertificateStatus(Enum):
    ISSUED = "issued"
    REVOKED = "revoked"
    DELETED = "deleted"


class SANType(Enum):
    DNS = "dns"
    IP = "ip"
    EMAIL = "email"
    URI = "uri"


class RevocationReason(Enum):
    """RFC 5280 CRLReason values offered to users.

    certificateHold and removeFromCRL are absent on purpose: revocation here is final.
    """

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "key_compromise"
    CA_COMPROMISE = "ca_compromise"
    AFFILIATION_CHANGED = "affiliation_changed"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessation_of_operation"
    PRIVILEGE_WITHDRAWN = "privilege_withdrawn"


@dataclass(frozen=True)
class Subject:
    """A distinguished name as the reference console asks for it."""

    common_name: str
    organization: str | None = None
    organizational_unit: str | None = None
    locality: str | None = None
    state: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class SAN:
    """One subjectAltName entry, already validated and normalised."""

    type: SANType
    value: str


@dataclass(frozen=True)
class TokenScope:
    """The CAs and profiles a token may act on; an empty tuple places no limit."""

    ca_ids: tuple[UUID, ...] = ()
    profiles: tuple[str, ...] = ()

    def check(self, ca_id: UUID, profile: str | None = None) -> None:
        """OutOfScopeError naming the scope unless it covers ``ca_id`` (and ``profile``)."""
        if self.ca_ids and ca_id not in self.ca_ids:
            raise OutOfScopeError(
                f"This token is limited to {self.describe()}; CA {ca_id} is outside it.",
                field="ca_id",
            )
        if profile is not None and self.profiles and profile not in self.profiles:
            raise OutOfScopeError(
                f'This token is limited to {self.describe()}; profile "{profile}" is outside'
                " it: name one of its profiles.",
                field="profile",
            )

    def check_covers(self, other: TokenScope) -> None:
        """OutOfScopeError unless ``other`` is as narrow as this scope or narrower: a
        scoped token cannot make a token that reaches further than itself."""
        for mine, theirs, field in (
            (self.ca_ids, other.ca_ids, "ca_ids"),
            (self.profiles, other.profiles, "profiles"),
        ):
            if mine and not (theirs and set(theirs) <= set(mine)):
                raise OutOfScopeError(
                    f"This token is limited to {self.describe()}; a token it makes must be"
                    f" limited to them too: give {field} within them.",
                    field=field,
                )

    def describe(self) -> str:
        """The scope in words: 'CAs 1f2e... and profiles "web"'."""
        parts = []
        if self.ca_ids:
            parts.append("CAs " + ", ".join(str(ca_id) for ca_id in self.ca_ids))
        if self.profiles:
            parts.append("profiles " + ", ".join(f'"{name}"' for name in self.profiles))
        return " and ".join(parts) or "every CA and profile"


UNSCOPED = TokenScope()


@dataclass(frozen=True)
class RequestContext:
    """Who asked for a change and from which request; every event records both. The
    scope of the caller's token limits what the change may touch."""

    actor: str
    request_id: str
    scope: TokenScope = UNSCOPED
