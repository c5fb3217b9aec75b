"""The OCSP responder (RFC 6960): answers from the revocation index, never from a CRL,
signed by a delegated responder certificate per CA that is rotated before it expires.

Answers without a nonce about a certificate are kept and served again (RFC 5019 lets a
responder hand out a response produced earlier, within its validity) while neither the
certificate nor its CA has recorded an event since: while the log's head has not moved
since that was last checked, one read of the head; otherwise two indexed reads of the
event store; instead of loading both and signing. They are kept by the request's bytes,
so a request asked again is not even parsed. A nonce asks for a fresh signature, so
those are always signed anew.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import uuid
from dataclasses import dataclass, replace
from uuid import UUID

from cryptography import x509
from cryptography.x509 import ocsp as x509_ocsp
from eventsourcing.persistence import IntegrityError

from domain.adapters.settings import OCSPSettings
from domain.application.service import PrivateCA
from domain.model.certificate import certificate_id
from domain.model.certificate_facts import load_certificate
from domain.model.errors import PCAError
from domain.model.values import RequestContext, RevocationReason
from domain.pki import ocsp
from domain.pki.signing import SoftwareKey
from domain.pki.x509 import as_issuer_key
from projections.readmodels.queries import ReadModels

_CERTIFY_ATTEMPTS = 5  # saves of a responder certificate that lost a race
PRECOMPUTED_ANSWERS = 100_000  # kept per process (about 1 KB each), oldest dropped first

_Key = tuple[UUID, bytes]  # the CA asked, and the request's DER (without a nonce)


@dataclass(frozen=True)
class _Precomputed:
    """A signed answer, good to serve again while the aggregates it was made from are at
    ``versions`` (certificate, CA) and until ``refresh_at``; they were at ``versions``
    when the log's head was at ``head``, so while it still is, nothing changed."""

    der: bytes
    versions: tuple[int | None, ...]
    refresh_at: dt.datetime
    head: int


class OCSPResponder:
    """Answers OCSP requests for every CA of the service."""

    def __init__(
        self, service: PrivateCA, read_models: ReadModels, config: OCSPSettings | None = None
    ) -> None:
        self._service = service
        self._read_models = read_models
        self._config = config or OCSPSettings()
        self._lock = threading.Lock()
        self._signers: dict[tuple[UUID, int], tuple[x509.Certificate, SoftwareKey]] = {}
        self._context = RequestContext("ocsp-responder (system)", f"ocsp-{uuid.uuid4()}")
        self._precomputed: dict[_Key, _Precomputed] = {}

    def answer(self, ca_id: UUID, request_der: bytes) -> bytes:
        """The DER OCSPResponse for ``request_der``: signed good/revoked/unknown, or
        malformedRequest / unauthorized without a signature."""
        key = (ca_id, request_der)
        kept, head = self._precomputed.get(key), None
        if kept is not None:  # these very bytes were answered before, so they hold no nonce
            head = self._head()
            if kept.head == head and self._service.clock() < kept.refresh_at:
                return kept.der
        try:
            query = ocsp.parse_request(request_der)
        except ocsp.MalformedOCSPRequest:
            return ocsp.error_response(x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        if query.nonce is not None:
            return self._answer(ca_id, query)
        return self._answer_again(key, query, kept, self._head() if head is None else head)

    def _answer_again(
        self, key: _Key, query: ocsp.OCSPQuery, kept: _Precomputed | None, head: int
    ) -> bytes:
        """The answer ``kept`` for these request bytes if nothing it was made from has
        changed, else a new one, kept if it is about a certificate (unknown serials and CA
        certificates are answered from the read models, which no version here follows).
        ``head`` was read before the versions: an event recorded in between changes the
        versions, so an answer is never kept with a head that is past a change to it."""
        ca_id, now = key[0], self._service.clock()
        if kept is not None and now >= kept.refresh_at:
            kept = None
        versions = self._versions(ca_id, query)
        if kept is not None and kept.versions == versions:
            self._keep(key, replace(kept, head=head))
            return kept.der
        der = self._answer(ca_id, query)
        if versions[0] is not None:
            self._keep(key, _Precomputed(der, versions, now + self._config.validity / 2, head))
        return der

    def _head(self) -> int:
        return self._service.recorder.max_notification_id() or 0

    def _versions(self, ca_id: UUID, query: ocsp.OCSPQuery) -> tuple[int | None, ...]:
        """The versions of the certificate ``query`` asks about and of its CA."""
        serial = format(query.serial_number, "x")
        return self._service.versions(certificate_id(ca_id, serial), ca_id)

    def _keep(self, key: _Key, precomputed: _Precomputed) -> None:
        with self._lock:
            if key not in self._precomputed and len(self._precomputed) >= PRECOMPUTED_ANSWERS:
                del self._precomputed[next(iter(self._precomputed))]
            self._precomputed[key] = precomputed

    def _answer(self, ca_id: UUID, query: ocsp.OCSPQuery) -> bytes:
        try:
            generations = self._service.get_ca(ca_id).generations
        except PCAError:  # an unknown CA
            generations = ()
        if not generations:  # unknown, or without a certificate yet
            return ocsp.error_response(x509_ocsp.OCSPResponseStatus.UNAUTHORIZED)
        # The key asked about answers (after a rollover, the one that signed the
        # certificate); a query naming none of them gets unauthorized from the newest.
        asked = generations[-1]
        for generation in generations:
            if ocsp.asks_about(query, load_certificate(generation.certificate_der)):
                asked = generation
        issuer = load_certificate(asked.certificate_der)
        return self._sign(ca_id, asked.number, query, issuer)

    def _sign(
        self, ca_id: UUID, generation: int, query: ocsp.OCSPQuery, issuer: x509.Certificate
    ) -> bytes:
        responder, key = self._responder(ca_id, generation)
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
        if certificate is None and not self._read_models.is_issued(ca_id, serial):
            return ocsp.Unknown()
        return self._issuer_status(ca_id)

    def _issuer_status(self, ca_id: UUID) -> ocsp.CertStatusAnswer:
        """Good, unless the issuing CA was revoked: then nothing it issued validates any
        more, and RFC 6960 section 2.7 lets the responder say revoked for all of it (from
        the CA's revocation time; its key compromise is a CA compromise for the leaf)."""
        ca = self._service.get_ca(ca_id)
        if ca.revoked_at is None or ca.revocation_reason is None:
            return ocsp.Good()
        reason = ca.revocation_reason
        if reason is RevocationReason.KEY_COMPROMISE:
            reason = RevocationReason.CA_COMPROMISE
        return ocsp.Revoked(ca.revoked_at, reason)

    def _responder(self, ca_id: UUID, generation: int = 1) -> tuple[x509.Certificate, SoftwareKey]:
        """The CA's responder certificate and key, certifying a new one when there is none
        or it is near its end. Cached per process: a sibling's rotation does not invalidate
        this process's certificate."""
        with self._lock:
            cached = self._signers.get((ca_id, generation))
            now = self._service.clock()
            if cached is None or ocsp.needs_rotation(cached[0], now, self._config.validity):
                cached = self._current_signer(ca_id, generation, now)
                self._signers[(ca_id, generation)] = cached
            return cached

    def _current_signer(
        self, ca_id: UUID, generation: int, now: dt.datetime
    ) -> tuple[x509.Certificate, SoftwareKey]:
        """The CA's responder, certified here if it has none in date. The certificate is
        saved on the CA's Publication, which the CRL publisher and sibling processes save
        too: a save that lost that race is tried again on the fresh aggregate, which may
        hold a sibling's responder by then (as the publisher retries its CRL numbers)."""
        for _ in range(_CERTIFY_ATTEMPTS - 1):
            with contextlib.suppress(IntegrityError):
                return self._current_signer_once(ca_id, generation, now)
        return self._current_signer_once(ca_id, generation, now)

    def _current_signer_once(
        self, ca_id: UUID, generation: int, now: dt.datetime
    ) -> tuple[x509.Certificate, SoftwareKey]:
        publication = self._service.publication(self._context, ca_id, generation)
        certificate = (
            load_certificate(publication.responder_der) if publication.responder_der else None
        )
        if certificate is None or ocsp.needs_rotation(certificate, now, self._config.validity):
            publication = self._service.certify_ocsp_responder(
                self._context, ca_id, self._config.responder_lifetime, generation
            )
        assert publication.responder_der is not None
        assert publication.responder_key_id is not None
        key = as_issuer_key(self._service.keystore.get(publication.responder_key_id))
        return load_certificate(publication.responder_der), key
