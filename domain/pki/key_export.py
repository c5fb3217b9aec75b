"""Private keys as they leave the service: encrypted PKCS#8 PEM and PKCS#12 bundles.

Encryption: PKCS#8 keys use PBES2 with PBKDF2-HMAC-SHA256 (600,000 rounds) and AES-256-CBC.
cryptography's ``BestAvailableEncryption`` picks the same algorithms but fixes PBKDF2 at OpenSSL's
2,048 rounds, too few for a password a person chose, so the EncryptedPrivateKeyInfo (RFC 5958,
RFC 8018) is assembled here from cryptography's primitives. PKCS#12 uses PBES2 AES-256-CBC for the
key and certificates and an HMAC-SHA256 MAC; no RC2 or 3DES anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    pkcs12,
)
from cryptography.hazmat.primitives.serialization.pkcs12 import PBES

from domain.model.certificate_facts import load_certificate
from domain.pki import der
from domain.pki.x509 import as_issuer_key

PKCS12_KDF_ROUNDS = 100_000
PKCS8_KDF_ROUNDS = 600_000

# The object identifiers RFC 8018 names for PBES2 with PBKDF2 and AES-256-CBC.
_OID_PBES2 = der.oid("1.2.840.113549.1.5.13")
_OID_PBKDF2 = der.oid("1.2.840.113549.1.5.12")
_OID_HMAC_SHA256 = der.oid("1.2.840.113549.2.9")
_OID_AES256_CBC = der.oid("2.16.840.1.101.3.4.1.42")


def pkcs12_bundle(
    key: PrivateKeyTypes,
    certificate_der: bytes,
    chain_der: Sequence[bytes],
    password: str,
    friendly_name: str = "server",
) -> bytes:
    """A PKCS#12 file with AES-256-CBC/PBKDF2 encryption and a SHA-256 MAC (no RC2/3DES)."""
    encryption = (
        PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(PKCS12_KDF_ROUNDS)
        .key_cert_algorithm(PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(password.encode("utf-8"))
    )
    return pkcs12.serialize_key_and_certificates(
        friendly_name.encode("utf-8"),
        as_issuer_key(key),
        load_certificate(certificate_der),
        [load_certificate(certificate) for certificate in chain_der],
        encryption,
    )


def encrypted_pkcs8_pem(key: PrivateKeyTypes, password: str) -> bytes:
    """``key`` as an 'ENCRYPTED PRIVATE KEY' PEM: PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC."""
    salt, iv = os.urandom(16), os.urandom(16)
    kdf = PBKDF2HMAC(hashes.SHA256(), length=32, salt=salt, iterations=PKCS8_KDF_ROUNDS)
    aes_key = kdf.derive(password.encode("utf-8"))
    padder = padding.PKCS7(algorithms.AES.block_size).padder()
    plain = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(aes_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    info = _encrypted_private_key_info(salt, iv, ciphertext)
    return der.pem(info, "ENCRYPTED PRIVATE KEY").encode("ascii")


def _encrypted_private_key_info(salt: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """RFC 5958 EncryptedPrivateKeyInfo with RFC 8018 PBES2 parameters."""
    prf = der.sequence(_OID_HMAC_SHA256, der.null())
    pbkdf2_params = der.sequence(der.octet_string(salt), der.integer(PKCS8_KDF_ROUNDS), prf)
    key_derivation = der.sequence(_OID_PBKDF2, pbkdf2_params)
    encryption_scheme = der.sequence(_OID_AES256_CBC, der.octet_string(iv))
    algorithm = der.sequence(_OID_PBES2, der.sequence(key_derivation, encryption_scheme))
    return der.sequence(algorithm, der.octet_string(ciphertext))
