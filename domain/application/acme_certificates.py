"""ACME's certificate resources: download, revocation (RFC 8555 §7.6) and renewal
information (RFC 9773). Revoking goes through PrivateCA.revoke_certificate, so it is a
CertificateRevoked like any other."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from domain.application.acme_gate import AcmeCall, Authenticated, Gate
from domain.application.service import PrivateCA
from domain.model.acme import AcmeCertificate, AcmeDirectory, AcmeError, link_id
from domain.model.certificate import Certificate
from domain.model.values import RequestContext, RevocationReason
from domain.pki.jws import b64url_decode, public_key, thumbprint

REASONS = {
    0: RevocationReason.UNSPECIFIED,
    1: RevocationReason.KEY_COMPROMISE,
    3: RevocationReason.AFFILIATION_CHANGED,
    4: RevocationReason.SUPERSEDED,
    5: RevocationReason.CESSATION_OF_OPERATION,
    9: RevocationReason.PRIVILEGE_WITHDRAWN,
}
_SPKI = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


class AcmeCertificates:
    """Certificates as ACME accounts see them."""

    def __init__(self, service: PrivateCA, gate: Gate) -> None:
        self._service = service
        self._gate = gate

    def certificate(self, call: AcmeCall, certificate_id: UUID) -> tuple[bytes, ...]:
        """The certificate and the CAs above it (not the root), DER, for its account."""
        signer = self._gate.authenticate(call)
        link = self._gate.find(link_id(certificate_id), AcmeCertificate)
        if link is None or link.account_id != signer.known.id:
            raise AcmeError("unauthorized", "This certificate was not issued to you.", 403)
        certificate = self._service.get_certificate(certificate_id)
        chain = self._service.chain_der(certificate.ca_id)
        return (certificate.certificate_der, *chain[:-1])

    def revoke(self, call: AcmeCall) -> None:
        """Revoke a certificate the signer holds: by its account, or by its own key."""
        signer = self._gate.authenticate(call, jwk_allowed=True)
        payload = call.signed.json_payload()
        der = b64url_decode(payload.get("certificate"), "certificate")
        certificate = self._issued_by(signer.directory, der)
        reason = REASONS.get(_reason_code(payload.get("reason", 0)))
        if reason is None:
            raise AcmeError("badRevocationReason", "Use a reason code of RFC 5280 §5.3.1.")
        if certificate.status.value != "issued":
            raise AcmeError("alreadyRevoked", "This certificate is already revoked.")
        actor = self._revoker(signer, certificate, der)
        self._service.revoke_certificate(
            RequestContext(actor, call.request_id), certificate.id, reason
        )

    def _revoker(self, signer: Authenticated, certificate: Certificate, der: bytes) -> str:
        """The actor of a revocation: the ordering account, or the certificate's key."""
        if signer.account is None:
            presented = x509.load_der_x509_certificate(der).public_key()
            if presented.public_bytes(*_SPKI) != _jwk_spki(signer.jwk):
                raise AcmeError("unauthorized", "The JWS key is not the certificate's key.", 403)
            return f"acme certificate key {thumbprint(signer.jwk)}"
        link = self._gate.find(link_id(certificate.id), AcmeCertificate)
        if link is None or link.account_id != signer.known.id:
            raise AcmeError("unauthorized", "This certificate was not issued to you.", 403)
        return signer.known.actor

    def _issued_by(self, directory: AcmeDirectory, der: bytes) -> Certificate:
        try:
            serial = x509.load_der_x509_certificate(der).serial_number
        except ValueError:
            raise AcmeError("malformed", "The certificate is not DER.") from None
        found = self._service.find_certificate(directory.ca_id, format(serial, "x"))
        if found is None or found.certificate_der != der:
            raise AcmeError("malformed", "This directory's CA did not issue that certificate.", 404)
        return found

    def certificate_of(self, directory: AcmeDirectory, cert_id: str) -> Certificate:
        """The certificate an ARI id (``base64url(AKI).base64url(serial)``) names."""
        _, _, serial_part = cert_id.partition(".")
        serial = int.from_bytes(b64url_decode(serial_part, "certificate id"))
        found = self._service.find_certificate(directory.ca_id, format(serial, "x"))
        if found is None:
            raise AcmeError("malformed", "No certificate of this directory has that id.", 404)
        return found

    def renewal_info(self, name: str, cert_id: str) -> tuple[dt.datetime, dt.datetime]:
        """RFC 9773: when to renew; at once for a revoked certificate, else in the
        window from two thirds to five sixths of its lifetime."""
        certificate = self.certificate_of(self._gate.directory(name), cert_id)
        if certificate.status.value != "issued":
            now = self._service.clock()
            return now - dt.timedelta(hours=1), now
        lifetime = certificate.not_after - certificate.not_before
        return (
            certificate.not_before + lifetime * 2 / 3,
            certificate.not_before + lifetime * 5 / 6,
        )


def _reason_code(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def _jwk_spki(jwk: dict[str, Any]) -> bytes:
    return public_key(jwk).public_bytes(*_SPKI)
