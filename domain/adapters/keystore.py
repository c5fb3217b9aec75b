"""Key custody: private keys kept encrypted at rest, never in an event.

A :class:`KeyStore` keeps each private key as PKCS#8 DER encrypted under the active
master key of a :class:`~domain.adapters.masterkeys.MasterKeyring`, with the key id as
associated data so a record cannot be moved to another id. Encryption, caching and error
messages live here; :mod:`domain.adapters.keystore_backends` holds the SQLite and
PostgreSQL storage, a table in the event store's database (:mod:`domain.adapters.keytable`)
that the chained recorders also write when a save carries sealed keys.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)

from domain.adapters.masterkeys import MasterKeyring
from domain.adapters.resources import Closeable
from domain.model.errors import KeyCustodyError, NotFoundError

__all__ = ["KeyStore", "Rewrapper", "SealedKey"]

# A record re-wrapper: (key_id, master_key_id, blob) -> (new master_key_id, new blob).
Rewrapper = Callable[[str, str, bytes], tuple[str, bytes]]


@dataclass(frozen=True)
class SealedKey:
    """A private key encrypted under a master key, ready to be stored under ``key_id``."""

    key_id: str
    master_key_id: str
    blob: bytes = field(repr=False)


class KeyStore(Closeable):
    """Private keys by id, encrypted under a master keyring; decrypted keys are cached.

    Backends implement the storage primitives; encryption, caching and error
    messages live here so every backend behaves the same.
    """

    # CA keys are read on every issuance; leaf keys rarely. A bounded cache keeps the
    # hot CA keys in memory without growing with the number of certificates.
    CACHE_SIZE = 256

    def __init__(self, keyring: MasterKeyring) -> None:
        self._keyring = keyring
        self._cache: OrderedDict[str, PrivateKeyTypes] = OrderedDict()
        self._cache_lock = threading.RLock()

    def put(self, key_id: str, private_key: PrivateKeyTypes) -> None:
        """Store ``private_key`` under ``key_id``, encrypted under the active master key.

        Raises KeyCustodyError if ``key_id`` is already stored (key ids are never reused).
        """
        self.store([self.seal(key_id, private_key)])

    def seal(self, key_id: str, private_key: PrivateKeyTypes) -> SealedKey:
        """``private_key`` encrypted for ``key_id``, not yet stored.

        The PKCS#8 DER exists only in memory. Sealing apart from storing lets many
        callers encrypt in parallel and one of them store the lot in one transaction.
        """
        der = private_key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        master_id, blob = self._keyring.encrypt(der, key_id.encode())
        return SealedKey(key_id, master_id, blob)

    def store(self, sealed: Sequence[SealedKey]) -> None:
        """Store sealed keys, all or none, in one transaction (one fsync for the lot).

        Raises KeyCustodyError if any key id is already stored.
        """
        if sealed:
            self._insert_many(sealed)

    def put_secret(self, key_id: str, secret: bytes) -> None:
        """Store a symmetric secret under ``key_id``, encrypted like a private key (the
        same master keys, rewrapping and backup); never cached."""
        master_id, blob = self._keyring.encrypt(secret, key_id.encode())
        self.store([SealedKey(key_id, master_id, blob)])

    def secret(self, key_id: str) -> bytes:
        """The secret stored under ``key_id``; NotFoundError if there is none."""
        record = self._select(key_id)
        if record is None:
            raise NotFoundError(f"no secret {key_id!r} in the key store")
        return self._decrypt(key_id, *record)

    def get(self, key_id: str) -> PrivateKeyTypes:
        """Return the private key stored under ``key_id``.

        Raises NotFoundError if there is none, KeyCustodyError if it cannot be decrypted.
        """
        with self._cache_lock:
            key = self._cache.get(key_id)
            if key is None:
                key = self._cache[key_id] = self._load(key_id)
                if len(self._cache) > self.CACHE_SIZE:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key_id)
            return key

    def destroy(self, key_id: str) -> bool:
        """Delete the key for good (storage and cache); return True if it existed."""
        with self._cache_lock:
            self._cache.pop(key_id, None)
            return self._delete(key_id)

    def rewrap_all(self) -> int:
        """Re-encrypt, in one transaction, every record not under the active master key.

        Returns how many records were rewritten. Afterwards the older master keys are
        no longer needed by this store.
        """
        return self._rewrap(self._keyring.active_id, self._rewrap_record)

    def rotate_master_key(self, data_dir: Path) -> tuple[str, int]:
        """Make a new active master key and re-encrypt every record under it.

        Returns the new master key id and the number of records rewritten.
        """
        new_id = self._keyring.rotate(data_dir)
        return new_id, self.rewrap_all()

    @abstractmethod
    def close(self) -> None:
        """Release the backend's connections. Safe to call twice."""

    def _load(self, key_id: str) -> PrivateKeyTypes:
        record = self._select(key_id)
        if record is None:
            raise NotFoundError(
                f"no private key {key_id!r} in the key store; it may have been destroyed"
            )
        der = self._decrypt(key_id, *record)
        try:
            return load_der_private_key(der, password=None)
        except ValueError as exc:
            raise KeyCustodyError(f"private key {key_id!r} decrypted but is not PKCS#8") from exc

    def _decrypt(self, key_id: str, master_id: str, blob: bytes) -> bytes:
        try:
            return self._keyring.decrypt(master_id, blob, key_id.encode())
        except KeyCustodyError as exc:
            raise KeyCustodyError(f"cannot decrypt private key {key_id!r}: {exc.detail}") from exc

    def _rewrap_record(self, key_id: str, master_id: str, blob: bytes) -> tuple[str, bytes]:
        return self._keyring.encrypt(self._decrypt(key_id, master_id, blob), key_id.encode())

    @staticmethod
    def _duplicate(sealed: Sequence[SealedKey]) -> KeyCustodyError:
        ids = ", ".join(repr(key.key_id) for key in sealed)
        return KeyCustodyError(
            f"a private key among {ids} is already stored; key ids are never reused"
        )

    @abstractmethod
    def _insert_many(self, sealed: Sequence[SealedKey]) -> None:
        """Insert records in one transaction; raise ``self._duplicate`` if an id exists."""

    @abstractmethod
    def _select(self, key_id: str) -> tuple[str, bytes] | None:
        """Return (master_key_id, blob) or None."""

    @abstractmethod
    def _delete(self, key_id: str) -> bool:
        """Delete a record; True if it existed."""

    @abstractmethod
    def _rewrap(self, active_id: str, rewrap: Rewrapper) -> int:
        """Apply ``rewrap`` to every record not under ``active_id``, in one transaction."""
