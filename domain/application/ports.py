"""What the application needs from outside, as typing Protocols.

The application signs with keys it keeps in a key store (or a PKCS#11 token) and serialises
issuance per CA across processes, but it does not choose how: the composition
(``open_service``) hands it a key store, a token signer if one is configured, and a way to
make write locks, all from ``domain.adapters``. Nothing in
``domain.application`` imports the adapters; these Protocols are the whole contract.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, TypeVar, runtime_checkable
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from domain.model.values import KeyAlgorithm
from domain.pki.signing import IssuerKey

Sealed = TypeVar("Sealed")
Clock = Callable[[], dt.datetime]
# The keyword of ``Application.save`` that hands sealed keys to a recorder which stores
# them in the save's transaction (a key store kept in the event store's database).
SAVE_KEYS_ARGUMENT = "sealed_keys"


class KeyCustody(Protocol[Sealed]):
    """Private keys by id, encrypted at rest; ``Sealed`` is the store's encrypted form.

    ``seal`` encrypts on the caller's thread. A store kept in the event store's database
    gets a group's sealed keys through the save itself (``SAVE_KEYS_ARGUMENT``), in the
    events' transaction; ``store`` writes them apart, in one transaction of their own, for
    a store that lives elsewhere.
    """

    def put(self, key_id: str, private_key: PrivateKeyTypes) -> None:
        """Store ``private_key`` under ``key_id`` (never reused)."""

    def seal(self, key_id: str, private_key: PrivateKeyTypes) -> Sealed:
        """``private_key`` encrypted for ``key_id``, not yet stored."""

    def store(self, sealed: Sequence[Sealed]) -> None:
        """Store sealed keys, all or none."""

    def get(self, key_id: str) -> PrivateKeyTypes:
        """The key stored under ``key_id``; NotFoundError if there is none."""

    def destroy(self, key_id: str) -> bool:
        """Delete the key for good; True if it existed."""

    def put_secret(self, key_id: str, secret: bytes) -> None:
        """Store a symmetric secret (an EAB MAC key) under ``key_id``, encrypted."""

    def secret(self, key_id: str) -> bytes:
        """The secret stored under ``key_id``; NotFoundError if there is none."""

    def close(self) -> None:
        """Release the store; called by whoever opened it, never by the application."""


# The application never looks inside a sealed key, so any store's form will do.
Keys = KeyCustody[Any]


class CASigner(Protocol):
    """Where CA keys are made and sign: every signature made with a CA key (certificates,
    CRLs, OCSP responder certificates) comes from a key this port hands out.

    The software signer keeps keys in the key store (:class:`KeyCustody`); a token signer
    makes them inside a PKCS#11 token, whose keys never leave it.
    """

    def generate(self, key_id: str, algorithm: KeyAlgorithm) -> tuple[IssuerKey, object | None]:
        """A new key of ``algorithm`` for ``key_id`` (never reused), and the sealed form
        for the save that names it to store (None: the signer already keeps it, as a
        token does)."""

    def signing_key(self, key_id: str) -> IssuerKey:
        """The key kept under ``key_id``; KeyCustodyError if it cannot be found."""

    def destroy(self, key_id: str) -> bool:
        """Delete the key for good; True if it existed."""

    def close(self) -> None:
        """Release what the signer holds open; called by whoever opened it."""


class WriteLocks(Protocol):
    """Exclusive access to one CA's issuance, across every process sharing the store."""

    def hold(self, ca_id: UUID) -> AbstractContextManager[None]:
        """Hold the CA's lock for the ``with`` block."""

    def close(self) -> None:
        """Release what the locks hold open."""


# Write locks are made once the event store is open: PostgreSQL's share its connection
# pool, passed in as the recorder's datastore (None for stores that have none).
WriteLocksFactory = Callable[[object], WriteLocks]


@runtime_checkable
class HoldsConnections(Protocol):
    """A recorder that keeps connections of its own besides its datastore's, which
    eventsourcing closes (PostgreSQL's, for the log's head): closed with the service."""

    def close(self) -> None:
        """Close them; reads afterwards take the datastore's path."""


class Nonces(Protocol):
    """ACME anti-replay nonces, shared by every process of a deployment (RFC 8555 §6.5)."""

    def issue(self) -> str:
        """A fresh nonce, stored until used or expired."""

    def consume(self, nonce: str) -> bool:
        """True, once, for a nonce this deployment issued and that has not expired."""

    def hit(self, key: str, window_seconds: int, limit: int) -> float | None:
        """Count one request against ``key``; the seconds to wait if over ``limit`` in
        the current window of ``window_seconds``, else None."""

    def close(self) -> None:
        """Release the store."""


class ChallengeChecker(Protocol):
    """Looks for an ACME challenge's answer where the identifier's owner put it."""

    def check(self, challenge: str, domain: str, token: str, key_authorization: str) -> str | None:
        """None if ``domain`` answers ``challenge`` with ``key_authorization``, else what
        was found instead (the client's problem detail)."""
