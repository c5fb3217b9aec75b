"""The CA keys the application signs with, found where each CA's key lives.

A CA records where its key lives (:class:`~domain.model.values.KeyStorage`); :class:`Signers`
hands each request to that storage's :class:`~domain.application.ports.CASigner`: the key
store (:class:`SoftwareSigner`) or a PKCS#11 token, if the deployment has one.
"""

from __future__ import annotations

from domain.application.ports import CASigner, Keys
from domain.model.errors import KeyCustodyError, ValidationError
from domain.model.values import KeyAlgorithm, KeyRef, KeyStorage
from domain.pki import x509 as certs
from domain.pki.signing import IssuerKey

NO_HSM_ADVICE = (
    "This deployment has no PKCS#11 token configured; set PCA_PKCS11_MODULE, "
    "PCA_PKCS11_TOKEN_LABEL and PCA_PKCS11_PIN (or PCA_PKCS11_PIN_FILE)"
)


class SoftwareSigner:
    """CA keys made in memory and kept encrypted in the key store."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys

    def generate(self, key_id: str, algorithm: KeyAlgorithm) -> tuple[IssuerKey, object]:
        """A new key in memory and its sealed form, stored by the save that names it."""
        key = certs.generate_private_key(algorithm)
        return key, self._keys.seal(key_id, key)

    def signing_key(self, key_id: str) -> IssuerKey:
        return certs.as_issuer_key(self._keys.get(key_id))

    def destroy(self, key_id: str) -> bool:
        return self._keys.destroy(key_id)

    def close(self) -> None:
        """Nothing of its own: the key store is closed by whoever opened it."""


class Signers:
    """Every CA key, by id and storage; the token's signer is None where none is configured."""

    def __init__(self, keys: Keys, token: CASigner | None) -> None:
        self._signers: dict[KeyStorage, CASigner] = {KeyStorage.SOFTWARE: SoftwareSigner(keys)}
        if token is not None:
            self._signers[KeyStorage.PKCS11] = token

    def generate(self, key: KeyRef, algorithm: KeyAlgorithm) -> tuple[IssuerKey, dict[str, object]]:
        """A new CA key in ``key.storage`` and what the save that names it must store
        (``Store.save``'s ``keys``: empty for a token key, which the token keeps);
        ValidationError naming ``key_storage`` if the deployment has no such storage."""
        signer = self._signers.get(key.storage)
        if signer is None:
            raise ValidationError(
                f"{NO_HSM_ADVICE}, or enable the CA with key_storage 'software'.",
                field="key_storage",
            )
        made, sealed = signer.generate(key.key_id, algorithm)
        return made, {} if sealed is None else {key.key_id: sealed}

    def signing_key(self, key: KeyRef) -> IssuerKey:
        """The CA key ``key``; KeyCustodyError if its storage is not configured here."""
        signer = self._signers.get(key.storage)
        if signer is None:
            raise KeyCustodyError(
                f"The key {key.key_id} lives in a PKCS#11 token: {NO_HSM_ADVICE}."
            )
        return signer.signing_key(key.key_id)

    def destroy(self, key: KeyRef) -> bool:
        """Delete ``key`` for good; True if it existed."""
        signer = self._signers.get(key.storage)
        return signer is not None and signer.destroy(key.key_id)

    def holds(self, storage: KeyStorage) -> bool:
        """Whether keys in ``storage`` can be used here."""
        return storage in self._signers
