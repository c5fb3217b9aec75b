"""File formats servers need. Keys leave only inside password-protected containers."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12
from cryptography.hazmat.primitives.serialization.pkcs12 import PBES

from domain.certs import as_issuer_key

PKCS12_KDF_ROUNDS = 100_000


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
        x509.load_der_x509_certificate(certificate_der),
        [x509.load_der_x509_certificate(der) for der in chain_der],
        encryption,
    )
