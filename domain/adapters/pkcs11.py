"""CA keys made and kept in a PKCS#11 token (an HSM; SoftHSM2 in the tests).

A key is generated inside the token as a sensitive, non-extractable key pair labelled and
identified by its key id, so a restart (or another process) finds it again; only its
signatures and its public half ever leave the token. The signer keeps one logged-in session
per process and lets one thread at a time use it (PKCS#11 sessions are not for concurrent
use). ECDSA comes out of the token as raw ``r || s`` and is DER-encoded here; RSA signs a
DigestInfo with PKCS#1 v1.5 (CKM_RSA_PKCS), so both accept a digest made outside.

The PIN comes from :class:`TokenSettings` and appears in no message, log or ``repr``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pkcs11
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from domain.model.errors import KeyCustodyError
from domain.model.values import KeyAlgorithm
from domain.pki.signing import TokenKey

_CURVES = {KeyAlgorithm.EC_P256: "secp256r1", KeyAlgorithm.EC_P384: "secp384r1"}
_RSA_BITS = {KeyAlgorithm.RSA_2048: 2048, KeyAlgorithm.RSA_3072: 3072, KeyAlgorithm.RSA_4096: 4096}
# DigestInfo (RFC 8017 §9.2) up to the digest itself, per hash.
_DIGEST_INFO = {
    hashes.SHA256.name: bytes.fromhex("3031300d060960864801650304020105000420"),
    hashes.SHA384.name: bytes.fromhex("3041300d060960864801650304020205000430"),
}
# The private half: kept in the token, usable only to sign, never readable or exportable.
_PRIVATE_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
}
_PUBLIC_TEMPLATE = {Attribute.TOKEN: True, Attribute.VERIFY: True}


@dataclass(frozen=True)
class TokenSettings:
    """Which token holds the CA keys: the PKCS#11 module, the token's label and its PIN."""

    module: Path
    token_label: str
    pin: str = field(repr=False)


class Pkcs11Signer:
    """The CA signer of keys in one PKCS#11 token (implements ``CASigner``)."""

    def __init__(self, settings: TokenSettings) -> None:
        """A signer that logs in to the token when first used: a server process opens its
        stores before it forks workers, and a PKCS#11 library must not cross a fork."""
        self._settings = settings
        self._lock = threading.Lock()
        self._keys: dict[str, _TokenKey] = {}
        self._opened: pkcs11.Session | None = None

    @property
    def _session(self) -> pkcs11.Session:
        """The logged-in session (the caller holds the lock); KeyCustodyError without the
        PIN if the token cannot be reached or refuses it."""
        if self._opened is None:
            settings = self._settings
            try:
                library = pkcs11.lib(str(settings.module))
                token = library.get_token(token_label=settings.token_label)
                self._opened = token.open(user_pin=settings.pin, rw=True)
            except (pkcs11.PKCS11Error, RuntimeError, OSError) as error:
                raise KeyCustodyError(
                    f"Cannot log in to the PKCS#11 token {settings.token_label!r} of "
                    f"{settings.module} ({type(error).__name__}); check PCA_PKCS11_MODULE, "
                    "PCA_PKCS11_TOKEN_LABEL and the PIN."
                ) from None
        return self._opened

    def generate(self, key_id: str, algorithm: KeyAlgorithm) -> tuple[TokenKey, None]:
        """A new key pair of ``algorithm`` made and kept inside the token under ``key_id``
        (nothing for a save to store)."""
        with self._lock, _token_errors(key_id):
            if self._objects(key_id):
                raise KeyCustodyError(
                    f"The token already holds a key {key_id}; ids are never reused."
                )
            public, private = self._generate_pair(key_id, algorithm)
            key = _TokenKey(private, _public_key(public), self._lock)
            self._keys[key_id] = key
            return key, None

    def _generate_pair(self, key_id: str, algorithm: KeyAlgorithm) -> tuple[Any, Any]:
        label, identifier = key_id, key_id.encode("utf-8")
        if algorithm.is_rsa:
            return self._session.generate_keypair(
                KeyType.RSA,
                _RSA_BITS[algorithm],
                store=True,
                label=label,
                id=identifier,
                public_template=_PUBLIC_TEMPLATE,
                private_template=_PRIVATE_TEMPLATE,
            )
        curve = encode_named_curve_parameters(_CURVES[algorithm])
        parameters = self._session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: curve}, local=True
        )
        return parameters.generate_keypair(
            store=True,
            label=label,
            id=identifier,
            public_template=_PUBLIC_TEMPLATE,
            private_template=_PRIVATE_TEMPLATE,
        )

    def signing_key(self, key_id: str) -> TokenKey:
        """The token's key ``key_id`` (found by label once, then kept)."""
        found = self._keys.get(key_id)
        if found is not None:
            return found
        with self._lock, _token_errors(key_id):
            kinds = {obj.object_class: obj for obj in self._objects(key_id)}
            if ObjectClass.PRIVATE_KEY not in kinds or ObjectClass.PUBLIC_KEY not in kinds:
                raise KeyCustodyError(f"The PKCS#11 token holds no key pair {key_id}.")
            key = _TokenKey(
                kinds[ObjectClass.PRIVATE_KEY],
                _public_key(kinds[ObjectClass.PUBLIC_KEY]),
                self._lock,
            )
        self._keys[key_id] = key
        return key

    def destroy(self, key_id: str) -> bool:
        """Delete both halves of ``key_id`` from the token; True if there were any."""
        with self._lock, _token_errors(key_id):
            objects = self._objects(key_id)
            for obj in objects:
                obj.destroy()
        self._keys.pop(key_id, None)
        return bool(objects)

    def close(self) -> None:
        """Log out and close the session."""
        with self._lock:
            if self._opened is not None:
                self._opened.close()
                self._opened = None

    def _objects(self, key_id: str) -> list[Any]:
        return list(self._session.get_objects({Attribute.LABEL: key_id}))


class _TokenKey:
    """One key pair in the token; signs digests under the signer's session lock."""

    def __init__(self, private: Any, public: CertificatePublicKeyTypes, lock: threading.Lock):
        self._private = private
        self._public = public
        self._lock = lock

    def public_key(self) -> CertificatePublicKeyTypes:
        return self._public

    def sign_digest(self, digest: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
        if isinstance(self._public, rsa.RSAPublicKey):
            message = _DIGEST_INFO[hash_algorithm.name] + digest
            with self._lock, _token_errors(self._private.label):
                return bytes(self._private.sign(message, mechanism=Mechanism.RSA_PKCS))
        with self._lock, _token_errors(self._private.label):
            raw = bytes(self._private.sign(digest, mechanism=Mechanism.ECDSA))
        half = len(raw) // 2
        return encode_dss_signature(
            int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
        )


def _public_key(public: Any) -> CertificatePublicKeyTypes:
    if public.key_type == KeyType.RSA:
        exponent = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
        modulus = int.from_bytes(public[Attribute.MODULUS], "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    loaded = load_der_public_key(encode_ec_public_key(public))
    if not isinstance(loaded, ec.EllipticCurvePublicKey):
        raise KeyCustodyError("The token's key is neither RSA nor ECDSA.")
    return loaded


@contextmanager
def _token_errors(key_id: str) -> Iterator[None]:
    """Turn a token failure into a KeyCustodyError naming the key (never the PIN)."""
    try:
        yield
    except pkcs11.PKCS11Error as error:
        raise KeyCustodyError(
            f"The PKCS#11 token failed on key {key_id} ({type(error).__name__})."
        ) from None
