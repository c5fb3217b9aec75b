"""JWS as ACME uses it: each account key type signs and verifies; a changed byte, a
wrong algorithm or a weak key is refused with the RFC's error type."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from domain.model.acme import AcmeError
from domain.pki.jws import SignedRequest, b64url, thumbprint
from tests.acme_client import b64

Signer = Callable[[bytes], bytes]


def _int(value: int, size: int) -> str:
    return b64(value.to_bytes(size, "big"))


def _ec(
    curve: ec.EllipticCurve, size: int, digest: hashes.HashAlgorithm
) -> tuple[dict[str, Any], Signer]:
    key = ec.generate_private_key(curve)
    numbers = key.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": f"P-{curve.key_size}",
        "x": _int(numbers.x, size),
        "y": _int(numbers.y, size),
    }

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")

    return jwk, sign


def _rsa(bits: int = 2048) -> tuple[dict[str, Any], Signer]:
    key = rsa.generate_private_key(65537, bits)
    numbers = key.public_key().public_numbers()
    jwk = {
        "kty": "RSA",
        "n": b64(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        "e": "AQAB",
    }
    return jwk, lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _ed25519() -> tuple[dict[str, Any], Signer]:
    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes_raw()
    return {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}, key.sign


KEYS = {
    "ES256": lambda: _ec(ec.SECP256R1(), 32, hashes.SHA256()),
    "ES384": lambda: _ec(ec.SECP384R1(), 48, hashes.SHA384()),
    "RS256": _rsa,
    "EdDSA": _ed25519,
}


def signed(alg: str, jwk: dict[str, Any], sign: Signer, payload: bytes = b'{"a":1}') -> bytes:
    protected = b64(json.dumps({"alg": alg, "jwk": jwk, "nonce": "n", "url": "u"}).encode())
    body = b64(payload)
    signature = b64(sign(f"{protected}.{body}".encode()))
    return json.dumps({"protected": protected, "payload": body, "signature": signature}).encode()


@pytest.mark.parametrize("alg", sorted(KEYS))
def test_each_account_key_type_verifies(alg: str) -> None:
    jwk, sign = KEYS[alg]()
    request = SignedRequest.parse(signed(alg, jwk, sign))
    request.verify(jwk)
    assert request.json_payload() == {"a": 1}


@pytest.mark.parametrize("alg", sorted(KEYS))
def test_a_changed_payload_is_refused(alg: str) -> None:
    jwk, sign = KEYS[alg]()
    document = json.loads(signed(alg, jwk, sign))
    document["payload"] = b64(b'{"a":2}')
    with pytest.raises(AcmeError) as refused:
        SignedRequest.parse(json.dumps(document).encode()).verify(jwk)
    assert refused.value.kind == "malformed"


def test_an_algorithm_we_do_not_take_is_refused() -> None:
    jwk, sign = KEYS["ES256"]()
    with pytest.raises(AcmeError) as refused:
        SignedRequest.parse(signed("HS256", jwk, sign)).verify(jwk)
    assert refused.value.kind == "badSignatureAlgorithm"


def test_a_short_rsa_key_is_refused() -> None:
    jwk, sign = _rsa(1024)
    with pytest.raises(AcmeError) as refused:
        SignedRequest.parse(signed("RS256", jwk, sign)).verify(jwk)
    assert refused.value.kind == "badPublicKey"


def test_the_thumbprint_is_rfc7638s() -> None:
    """The example of RFC 7638 §3.1."""
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
            "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
            "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
            "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
            "Cur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert b64url(b"\xff") == "_w"
