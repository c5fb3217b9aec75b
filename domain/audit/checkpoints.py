"""Signed checkpoints of the audit chain, and the audit signing key.

A checkpoint says "at log position P the chain head was H", signed at time T with the
audit signing key: an Ed25519 key kept in the key store under ``audit-signing-key``
(created on first use), never in the event store. The signed message is ASCII text::

    pca-audit-checkpoint/v1\\n
    position=<decimal>\\n
    head=<64 lowercase hex digits>\\n
    time=<YYYY-MM-DDTHH:MM:SSZ>\\n

so anyone holding an export can check it with OpenSSL 3::

    openssl pkeyutl -verify -pubin -inkey pub.pem -rawin -in message -sigfile signature

Checkpoints are rows of their own table rather than events: they can be listed and checked
without replaying the log, they are self-authenticating (a changed row fails its signature),
and the log they attest stays exactly the events the service recorded. An emptied table is
what exported copies are for; the exporter should pin the public key it first saw.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from domain.application.ports import Keys
from domain.audit.chain import StoredCheckpoint
from domain.model.errors import KeyCustodyError, NotFoundError
from domain.pki.x509 import public_key_pem

__all__ = [
    "AUDIT_KEY_ID",
    "Checkpoint",
    "audit_public_key",
    "audit_signing_key",
    "sign_checkpoint",
]

AUDIT_KEY_ID = "audit-signing-key"
MESSAGE_LABEL = "pca-audit-checkpoint/v1"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that the chain head at ``position`` was ``head_hex``."""

    position: int
    head_hex: str
    time: dt.datetime
    signature: bytes
    key_id: str
    public_key: bytes  # raw 32-byte Ed25519 public key

    @property
    def message(self) -> bytes:
        """The exact bytes that were signed."""
        return checkpoint_message(self.position, bytes.fromhex(self.head_hex), self.time)

    @property
    def public_key_pem(self) -> str:
        """The signer's public key as SubjectPublicKeyInfo PEM (what openssl reads)."""
        return public_key_pem(Ed25519PublicKey.from_public_bytes(self.public_key))

    def signature_problem(self, trusted: Ed25519PublicKey | None) -> str | None:
        """Why the signature does not hold under the ``trusted`` audit key, or None if it does."""
        if trusted is None:
            return "the audit signing key is missing from the key store"
        if self.public_key != _raw(trusted):
            return "it was signed by a key other than the audit signing key"
        try:
            trusted.verify(self.signature, self.message)
        except InvalidSignature:
            return "its signature does not verify: the checkpoint row was altered"
        return None

    def to_json(self) -> dict[str, Any]:
        """A JSON-able export with all an outside party needs to verify it."""
        return {
            "position": self.position,
            "head": self.head_hex,
            "time": _format_time(self.time),
            "key_id": self.key_id,
            "algorithm": "Ed25519",
            "message": self.message.decode("ascii"),
            "signature": base64.b64encode(self.signature).decode("ascii"),
            "public_key_pem": self.public_key_pem,
        }

    def to_stored(self) -> StoredCheckpoint:
        """The row that stores this checkpoint."""
        return StoredCheckpoint(
            self.position,
            bytes.fromhex(self.head_hex),
            _format_time(self.time),
            self.key_id,
            self.public_key,
            self.signature,
        )

    @classmethod
    def from_stored(cls, row: StoredCheckpoint) -> Checkpoint:
        """The checkpoint a stored row holds (an unparseable time reads as the epoch,
        which then fails the signature check)."""
        try:
            time = dt.datetime.strptime(row.time, _TIME_FORMAT).replace(tzinfo=dt.UTC)
        except ValueError:
            time = dt.datetime.fromtimestamp(0, dt.UTC)
        return cls(row.position, row.head.hex(), time, row.signature, row.key_id, row.public_key)


def checkpoint_message(position: int, head: bytes, time: dt.datetime) -> bytes:
    """The version-1 signed message (see the module docstring)."""
    return (
        f"{MESSAGE_LABEL}\nposition={position}\nhead={head.hex()}\ntime={_format_time(time)}\n"
    ).encode("ascii")


def sign_checkpoint(
    key: Ed25519PrivateKey, position: int, head: bytes, now: dt.datetime
) -> Checkpoint:
    """A checkpoint of ``head`` at ``position``, signed at ``now`` (aware; kept to the second)."""
    if now.tzinfo is None:
        raise ValueError("checkpoint times must be timezone-aware")
    time = now.astimezone(dt.UTC).replace(microsecond=0)
    signature = key.sign(checkpoint_message(position, head, time))
    return Checkpoint(position, head.hex(), time, signature, AUDIT_KEY_ID, _raw(key.public_key()))


def audit_signing_key(keystore: Keys) -> Ed25519PrivateKey:
    """The audit signing key, generated and stored on first use."""
    key = _stored_key(keystore)
    if key is None:
        with contextlib.suppress(KeyCustodyError):  # another process stored one first
            keystore.put(AUDIT_KEY_ID, Ed25519PrivateKey.generate())
        key = _stored_key(keystore)
    if key is None:
        raise KeyCustodyError(f"the key store did not keep the new {AUDIT_KEY_ID!r}")
    return key


def audit_public_key(keystore: Keys) -> Ed25519PublicKey | None:
    """The audit key's public half, or None if no audit key was ever made (nothing is created)."""
    key = _stored_key(keystore)
    return None if key is None else key.public_key()


def _stored_key(keystore: Keys) -> Ed25519PrivateKey | None:
    try:
        key = keystore.get(AUDIT_KEY_ID)
    except NotFoundError:
        return None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyCustodyError(f"{AUDIT_KEY_ID!r} in the key store is not an Ed25519 key")
    return key


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _format_time(time: dt.datetime) -> str:
    return time.astimezone(dt.UTC).strftime(_TIME_FORMAT)
