"""JSON Web Signatures as ACME uses them (RFC 7515 flattened form, RFC 8555 §6.2).

Parses a request body into a :class:`SignedRequest`, turns a JWK into a public key, checks
signatures with ES256, ES384, RS256 and EdDSA (Ed25519), computes the RFC 7638 thumbprint
and checks the HMAC of an external account binding. Every refusal is an AcmeError with the
RFC's error type.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from domain.model.acme import AcmeError

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey
ALGORITHMS = ("ES256", "ES384", "RS256", "EdDSA")
_CURVES: dict[str, tuple[str, ec.EllipticCurve, hashes.HashAlgorithm, int]] = {
    "ES256": ("P-256", ec.SECP256R1(), hashes.SHA256(), 32),
    "ES384": ("P-384", ec.SECP384R1(), hashes.SHA384(), 48),
}
_MAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
MIN_RSA_BITS = 2048


def b64url_decode(text: object, what: str = "value") -> bytes:
    if not isinstance(text, str) or "=" in text:
        raise AcmeError("malformed", f"The {what} must be unpadded base64url.")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise AcmeError("malformed", f"The {what} is not base64url.") from None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SignedRequest:
    """A flattened JWS: its protected header, its payload (empty for POST-as-GET) and what
    its signature covers."""

    header: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes

    @classmethod
    def parse(cls, body: bytes) -> SignedRequest:
        """The JWS in ``body``; malformed if it is not one."""
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise AcmeError("malformed", "The body is not JSON.") from None
        if not isinstance(document, dict) or not {"protected", "payload", "signature"} <= set(
            document
        ):
            raise AcmeError(
                "malformed", "The body must be a flattened JWS: protected, payload, signature."
            )
        protected, payload = document["protected"], document["payload"]
        header = _json_object(b64url_decode(protected, "protected header"), "protected header")
        return cls(
            header,
            b64url_decode(payload, "payload"),
            f"{protected}.{payload}".encode(),
            b64url_decode(document["signature"], "signature"),
        )

    @property
    def algorithm(self) -> str:
        return str(self.header.get("alg", ""))

    def json_payload(self) -> dict[str, Any]:
        """The payload as a JSON object; malformed for POST-as-GET or anything else."""
        return _json_object(self.payload, "payload")

    def verify(self, jwk: dict[str, Any]) -> None:
        """Check the signature with ``jwk``; malformed for a bad signature."""
        if self.algorithm not in ALGORITHMS:
            raise AcmeError(
                "badSignatureAlgorithm",
                f"Sign with one of {', '.join(ALGORITHMS)}; got {self.algorithm!r}.",
            )
        key = public_key(jwk)
        try:
            _verify(key, self.algorithm, self.signature, self.signing_input)
        except (InvalidSignature, ValueError):
            raise AcmeError("malformed", "The JWS signature does not verify.") from None

    def verify_mac(self, mac_key: bytes) -> None:
        """Check an HMAC-signed JWS (external account binding) with ``mac_key``."""
        digest = _MAC_HASHES.get(self.algorithm)
        if digest is None:
            raise AcmeError("malformed", "The external account binding must use HS256.")
        expected = hmac.new(mac_key, self.signing_input, digest).digest()
        if not hmac.compare_digest(expected, self.signature):
            raise AcmeError("unauthorized", "The external account binding's MAC is wrong.")


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise AcmeError("malformed", f"The {what} is not JSON.") from None
    if not isinstance(value, dict):
        raise AcmeError("malformed", f"The {what} must be a JSON object.")
    return value


def _verify(key: PublicKey, algorithm: str, signature: bytes, data: bytes) -> None:
    if algorithm == "RS256" and isinstance(key, rsa.RSAPublicKey):
        key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    elif algorithm == "EdDSA" and isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(signature, data)
    elif algorithm in _CURVES and isinstance(key, ec.EllipticCurvePublicKey):
        _, curve, digest, size = _CURVES[algorithm]
        if key.curve.name != curve.name or len(signature) != 2 * size:
            raise InvalidSignature
        r, s = int.from_bytes(signature[:size]), int.from_bytes(signature[size:])
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(digest))
    else:
        raise InvalidSignature


def public_key(jwk: object) -> PublicKey:
    """The public key a JWK describes; badPublicKey for what this server does not take."""
    try:
        return _public_key(jwk)
    except ValueError:
        raise AcmeError("badPublicKey", "The jwk does not describe a usable public key.") from None


def _public_key(jwk: object) -> PublicKey:
    if not isinstance(jwk, dict):
        raise AcmeError("malformed", "The jwk must be a JSON object.")
    kty = jwk.get("kty")
    if kty == "EC":
        return _ec_key(jwk)
    if kty == "RSA":
        key = rsa.RSAPublicNumbers(
            int.from_bytes(b64url_decode(jwk.get("e"), "jwk e")),
            int.from_bytes(b64url_decode(jwk.get("n"), "jwk n")),
        ).public_key()
        if key.key_size < MIN_RSA_BITS:
            raise AcmeError("badPublicKey", f"RSA account keys need {MIN_RSA_BITS} bits or more.")
        return key
    if kty == "OKP" and jwk.get("crv") == "Ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(jwk.get("x"), "jwk x"))
    raise AcmeError("badPublicKey", "Account keys must be EC P-256/P-384, RSA or Ed25519.")


def _ec_key(jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey:
    curves = {name: curve for name, curve, _, _ in _CURVES.values()}
    curve = curves.get(str(jwk.get("crv")))
    if curve is None:
        raise AcmeError("badPublicKey", "EC account keys must be on P-256 or P-384.")
    x = int.from_bytes(b64url_decode(jwk.get("x"), "jwk x"))
    y = int.from_bytes(b64url_decode(jwk.get("y"), "jwk y"))
    try:
        return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
    except ValueError:
        raise AcmeError("badPublicKey", "The EC point is not on its curve.") from None


_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}


def thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of ``jwk``, base64url."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")), ())
    if not members or not all(name in jwk for name in members):
        raise AcmeError("malformed", "The jwk lacks the members of its key type.")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode()).digest())


def public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    """The public members of ``jwk`` only (what an account records)."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")), ())
    return {name: jwk[name] for name in members if name in jwk}


def key_authorization(token: str, jwk: dict[str, Any]) -> str:
    """RFC 8555 §8.1: the token and the account key's thumbprint."""
    return f"{token}.{thumbprint(jwk)}"


def dns01_value(key_authz: str) -> str:
    """RFC 8555 §8.4: the TXT record's value for ``key_authz``."""
    return b64url(hashlib.sha256(key_authz.encode()).digest())
