"""What revocation publishing needs from the command side: signing keys and records.

CRLs and OCSP answers are built by ``projections.revocation``; they are signed with the
issuing CA's key (or a delegated responder's), which only the application may take from
the key store, and their publication state is an aggregate the application saves.
"""

from __future__ import annotations

import datetime as dt
from uuid import UUID, uuid4

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from domain.application.store import Store
from domain.model.certificate_facts import load_certificate
from domain.model.publication import Publication, issuer_scope, publication_id
from domain.model.values import KeyAlgorithm, RequestContext
from domain.pki import x509 as certs
from domain.pki.ocsp import build_responder_certificate
from domain.pki.signing import IssuerKey

RESPONDER_BACKDATE = dt.timedelta(minutes=1)  # room for relying parties' clock skew


class Publishing:
    """Signing material and publication records of every CA."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def signing_material(
        self, ca_id: UUID, generation: int = 1
    ) -> tuple[x509.Certificate, IssuerKey]:
        """The certificate and key of the CA's key ``generation``, for signing CRLs and
        responder certificates about what that key signed."""
        found = self._store.get_ca(ca_id).key_generation(generation)
        key = self._store.signers.signing_key(found.key)
        return load_certificate(found.certificate_der), key

    def publication(self, ctx: RequestContext, ca_id: UUID, generation: int = 1) -> Publication:
        """The publication record of the CA's key ``generation`` (a new, unsaved one
        before its first CRL)."""
        scope = issuer_scope(ca_id, generation)
        found = self._store.find(publication_id(scope))
        if found is None:
            return Publication.start(ctx, scope)
        assert isinstance(found, Publication)
        return found

    def certify_ocsp_responder(
        self, ctx: RequestContext, ca_id: UUID, lifetime: dt.timedelta, generation: int = 1
    ) -> Publication:
        """Issue a fresh delegated OCSP responder certificate for ``ca_id`` and record it.

        The responder's key goes with the record's save (Store.save), so no saved record
        names a missing key and no key outlives a record that was not saved.
        """
        key = certs.generate_private_key(KeyAlgorithm.EC_P256)
        certificate = self._responder_certificate(ca_id, generation, key.public_key(), lifetime)
        key_id = f"ocsp-{ca_id}-{uuid4()}"
        publication = self.publication(ctx, ca_id, generation)
        publication.certify_responder(ctx, key_id, certificate.public_bytes(Encoding.DER))
        sealed = {key_id: self._store.keys.seal(key_id, key)}
        self._store.save(publication.id, publication, keys=sealed)
        return publication

    def _responder_certificate(
        self,
        ca_id: UUID,
        generation: int,
        public_key: CertificatePublicKeyTypes,
        lifetime: dt.timedelta,
    ) -> x509.Certificate:
        issuer, issuer_key = self.signing_material(ca_id, generation)
        now = self._store.clock()
        return build_responder_certificate(
            issuer,
            issuer_key,
            public_key,
            now - RESPONDER_BACKDATE,
            min(now + lifetime, issuer.not_valid_after_utc),
            ca_issuers_url=self._store.urls(ca_id, generation).ca_issuers,
        )
