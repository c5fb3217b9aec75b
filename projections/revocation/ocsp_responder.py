"""The OCSP responder (RFC 6960): answers from the revocation index, never from a CRL,
signed by a delegated responder certificate per CA that is rotated before it expires."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from cryptography import x509
from cryptography.x509 import ocsp as x509_ocsp
from eventsourcing.persistence import IntegrityError

from domain.application.service import PrivateCA
from domain.model.errors import PCAError
from domain.model.values import RequestContext
from domain.pki import ocsp
from domain.pki.crl import IssuerKey
from domain.pki.x509 import as_issuer_key, load_certificate
from projections.readmodels.queries import ReadModels

_CERTIFY_ATTEMPTS = 5  # saves of a responder certificate that lost a race


@dataclass(frozen=True)
class OCSPConfig:
    """Response validity and responder certificate lifetime (see ``PCA_OCSP_*``)."""

    validity: dt.timedelta = dt.timedelta(hours=1)
    responder_lifetime: dt.timedelta = dt.timedelta(days=30)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OCSPConfig:
        """``PCA_OCSP_VALIDITY_MINUTES`` and ``PCA_OCSP_RESPONDER_DAYS``, each optional."""
        return cls(
            validity=dt.timedelta(minutes=float(environ.get("PCA_OCSP_VALIDITY_MINUTES", 60))),
            responder_lifetime=dt.timedelta(days=float(environ.get("PCA_OCSP_RESPONDER_DAYS", 30))),
        )


class OCSPResponder:
    """Answers OCSP requests for every CA of the service."""

    def __init__(
        self, service: PrivateCA, read_models: ReadModels, config: OCSPConfig | None = None
    ) -> None:
        self._service = service
        self._read_models = read_models
        self._config = config or OCSPConfig()
        self._lock = threading.Lock()
        self._signers: dict[UUID, tuple[x509.Certificate, IssuerKey]] = {}
        self._context = RequestContext("ocsp-responder (system)", f"ocsp-{uuid.uuid4()}")

    def answer(self, ca_id: UUID, request_der: bytes) -> bytes:
        """The DER OCSPResponse for ``request_der``: signed good/revoked/unknown, or
        malformedRequest / unauthorized without a signature."""
        try:
            query = ocsp.parse_request(request_der)
        except ocsp.MalformedOCSPRequest:
            return ocsp.error_response(x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        try:
            issuer_der, _ = self._service.get_ca(ca_id).signing_identity()
        except PCAError:  # an unknown CA, or one without a certificate yet
            return ocsp.error_response(x509_ocsp.OCSPResponseStatus.UNAUTHORIZED)
        return self._sign(ca_id, query, load_certificate(issuer_der))

    def _sign(self, ca_id: UUID, query: ocsp.OCSPQuery, issuer: x509.Certificate) -> bytes:
        responder, key = self._responder(ca_id)
        now = self._service.clock()
        next_update = min(now + self._config.validity, responder.not_valid_after_utc)
        return ocsp.respond(
            query,
            self._status(ca_id, query.serial_number),
            issuer,
            responder,
            key,
            now,
            next_update,
        )

    def _status(self, ca_id: UUID, serial_number: int) -> ocsp.CertStatusAnswer:
        """From the revocation index; a serial the index does not know yet (issued or revoked
        a moment ago) is looked up in the event store, so answers never lag a command."""
        serial = format(serial_number, "x")
        revoked = self._read_models.revocation_status(ca_id, serial)
        if revoked is not None:
            return ocsp.Revoked(revoked.revoked_at, revoked.reason)
        certificate = self._service.find_certificate(ca_id, serial)
        if certificate is not None and certificate.revoked_at is not None:
            assert certificate.revocation_reason is not None
            return ocsp.Revoked(certificate.revoked_at, certificate.revocation_reason)
        if certificate is not None or self._read_models.is_issued(ca_id, serial):
            return ocsp.Good()
        return ocsp.Unknown()

    def _responder(self, ca_id: UUID) -> tuple[x509.Certificate, IssuerKey]:
        """The CA's responder certificate and key, certifying a new one when there is none
        or it is near its end. Cached per process: a sibling's rotation does not invalidate
        this process's certificate."""
        with self._lock:
            cached = self._signers.get(ca_id)
            now = self._service.clock()
            if cached is None or ocsp.needs_rotation(cached[0], now, self._config.validity):
                cached = self._signers[ca_id] = self._current_signer(ca_id, now)
            return cached

    def _current_signer(self, ca_id: UUID, now: dt.datetime) -> tuple[x509.Certificate, IssuerKey]:
        """The CA's responder, certified here if it has none in date. The certificate is
        saved on the CA's Publication, which the CRL publisher and sibling processes save
        too: a save that lost that race is tried again on the fresh aggregate, which may
        hold a sibling's responder by then (as the publisher retries its CRL numbers)."""
        for _ in range(_CERTIFY_ATTEMPTS - 1):
            with contextlib.suppress(IntegrityError):
                return self._current_signer_once(ca_id, now)
        return self._current_signer_once(ca_id, now)

    def _current_signer_once(
        self, ca_id: UUID, now: dt.datetime
    ) -> tuple[x509.Certificate, IssuerKey]:
        publication = self._service.publication(self._context, ca_id)
        certificate = (
            load_certificate(publication.responder_der) if publication.responder_der else None
        )
        if certificate is None or ocsp.needs_rotation(certificate, now, self._config.validity):
            publication = self._service.certify_ocsp_responder(
                self._context, ca_id, self._config.responder_lifetime
            )
        assert publication.responder_der is not None
        assert publication.responder_key_id is not None
        key = as_issuer_key(self._service.keystore.get(publication.responder_key_id))
        return load_certificate(publication.responder_der), key
