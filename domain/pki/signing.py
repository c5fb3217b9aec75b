"""How a CA key signs: a software key directly, a key held in a token over its bytes.

cryptography's builders sign only with its own key types, whose private half is in memory.
A key held in a hardware token (PKCS#11) is a :class:`TokenKey`: it signs a digest and
never shows its private half. For such a key the certificate is built by cryptography with a
stand-in key of the same kind (so the TBSCertificate names the right signature algorithm;
every key identifier in it comes from the real keys), its ``tbs_certificate_bytes`` are
hashed and signed by the token, and the DER is assembled around that signature. CRLs are
encoded by hand anyway (:mod:`domain.pki.crl`) and sign their bytes the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from domain.pki import der


class TokenKey(Protocol):
    """A CA key whose private half stays in a token; only its signatures come out."""

    def public_key(self) -> CertificatePublicKeyTypes:
        """The key's public half."""

    def sign_digest(self, digest: bytes, hash_algorithm: hashes.HashAlgorithm) -> bytes:
        """The signature over ``digest`` (made with ``hash_algorithm``), DER-encoded for
        ECDSA (Ecdsa-Sig-Value) and PKCS#1 v1.5 for RSA, as X.509 carries it."""


SoftwareKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
IssuerKey = SoftwareKey | TokenKey
"""Any key a CA signs with."""


def signature_hash(key: IssuerKey) -> hashes.SHA256 | hashes.SHA384:
    """SHA-384 for P-384 keys, SHA-256 for the others (only RSA and ECDSA keys are offered)."""
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def is_rsa(key: IssuerKey) -> bool:
    """Whether ``key`` is an RSA key (else ECDSA)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return True
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return False
    return isinstance(key.public_key(), rsa.RSAPublicKey)


def sign_certificate(builder: x509.CertificateBuilder, key: IssuerKey) -> x509.Certificate:
    """``builder``'s certificate signed by ``key``, wherever the key lives."""
    hash_algorithm = signature_hash(key)
    if isinstance(key, SoftwareKey):
        return builder.sign(key, hash_algorithm)
    draft = builder.sign(_stand_in(is_rsa(key)), hash_algorithm)
    tbs = draft.tbs_certificate_bytes
    _, body, _ = der.read_tlv(draft.public_bytes(Encoding.DER))
    _, _, after_tbs = der.read_tlv(body)
    _, _, after_algorithm = der.read_tlv(body, after_tbs)
    algorithm = body[after_tbs:after_algorithm]
    signature = sign_parts(key, hash_algorithm, [tbs])
    return x509.load_der_x509_certificate(der.sequence(tbs, algorithm, der.bit_string(signature)))


def sign_parts(
    key: IssuerKey, hash_algorithm: hashes.HashAlgorithm, parts: Iterable[bytes]
) -> bytes:
    """The signature over the concatenation of ``parts``, hashed piece by piece."""
    digest = hashes.Hash(hash_algorithm)
    for part in parts:
        digest.update(part)
    value = digest.finalize()
    prehashed = utils.Prehashed(hash_algorithm)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(value, ec.ECDSA(prehashed))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(value, padding.PKCS1v15(), prehashed)
    return key.sign_digest(value, hash_algorithm)


@functools.cache
def _stand_in(rsa_key: bool) -> SoftwareKey:
    """A throwaway key of the same kind, whose only use is to make cryptography build the
    TBSCertificate; its signature is discarded."""
    if rsa_key:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())
