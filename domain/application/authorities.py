"""CA lifecycle and quota: create, enable (the CA's key and certificate), change, assign.

Writers to one CA take turns inside the process (the Store's CA locks) and retry
optimistic-concurrency conflicts with other processes. A change to a CA drops issuance's
cached copy of it, so the next issuance sees the change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from uuid import UUID

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from domain.application.commands import CAProfile
from domain.application.issuance import Issuance
from domain.application.store import Outcome, Store, retry_on_conflict
from domain.model.authority import CertificateAuthority
from domain.model.certificate_facts import load_certificate
from domain.model.constraints import UNCONSTRAINED, NameConstraints
from domain.model.idempotency import Repeatable
from domain.model.validation import normalize_subject
from domain.model.values import CAKind, RequestContext
from domain.pki import x509 as certs


class Authorities:
    """The commands that create and change CAs."""

    def __init__(self, store: Store, issuance: Issuance) -> None:
        self._store = store
        self._issuance = issuance

    def create_root(
        self,
        ctx: RequestContext,
        profile: CAProfile,
        included_certificates: int,
        idempotency_key: str | None,
    ) -> Outcome:
        """A pending root CA (once per Idempotency-Key)."""
        parameters = {"profile": dataclasses.asdict(profile), "included": included_certificates}
        once = Repeatable.of("create-root", "cas", idempotency_key, parameters)
        repeated = self._store.repeated(once)
        if repeated is not None:
            return repeated
        root = CertificateAuthority.create_root(
            ctx,
            normalize_subject(profile.subject),
            profile.key_algorithm,
            (profile.validity_years, profile.service_days),
            included_certificates,
        )
        return self._store.save_once(ctx, once, root.id, root)

    def create_intermediate(
        self,
        ctx: RequestContext,
        parent_id: UUID,
        profile: CAProfile,
        idempotency_key: str | None,
        name_constraints: NameConstraints = UNCONSTRAINED,
    ) -> Outcome:
        """A pending intermediate under ``parent_id`` (once per Idempotency-Key)."""
        parameters: dict[str, object] = {"profile": dataclasses.asdict(profile)}
        if name_constraints:  # absent otherwise: stored fingerprints stay valid
            parameters["name_constraints"] = dataclasses.asdict(name_constraints)
        once = Repeatable.of("create-intermediate", str(parent_id), idempotency_key, parameters)
        repeated = self._store.repeated(once)
        if repeated is not None:
            return repeated
        intermediate = CertificateAuthority.create_intermediate(
            ctx,
            self._store.get_ca(parent_id, field="parent_id"),
            normalize_subject(profile.subject),
            profile.key_algorithm,
            (profile.validity_years, profile.service_days),
            self._store.clock(),
            name_constraints,
        )
        return self._store.save_once(ctx, once, intermediate.id, intermediate)

    def enable(self, ctx: RequestContext, ca_id: UUID) -> Outcome:
        """Enable; the first time, generate the CA key and have the certificate signed.

        The key is stored before the event that names it is saved, and destroyed again if
        that save fails.
        """
        ca = self._store.get_ca(ca_id)
        now = self._store.clock()
        if not ca.needs_certificate:
            ca.enable(ctx, now)
            return self._store.save(ca_id, ca)
        key = certs.generate_private_key(ca.key_algorithm)
        certificate = self._sign_ca_certificate(ca, key, now)
        key_id = f"ca-{ca_id}"
        self._store.keys.put(key_id, key)
        try:
            ca.enable(ctx, now, key_id, certificate.public_bytes(Encoding.DER))
            return self._store.save(ca_id, ca)
        except BaseException:
            self._store.keys.destroy(key_id)
            raise

    def update(self, ca_id: UUID, change: Callable[[CertificateAuthority], None]) -> Outcome:
        """Apply ``change`` to the CA and save it, retrying conflicts."""

        def attempt() -> Outcome:
            ca = self._store.get_ca(ca_id)
            change(ca)
            self._issuance.forget(ca_id)
            return self._store.save(ca_id, ca)

        with self._store.ca_lock(ca_id):
            return retry_on_conflict(attempt)

    def purchase_quota(
        self, ctx: RequestContext, root_id: UUID, count: int, idempotency_key: str | None
    ) -> Outcome:
        """Add ``count`` certificates to the root's pool (once per Idempotency-Key)."""
        once = Repeatable.of("purchase-quota", str(root_id), idempotency_key, count)

        def attempt() -> Outcome:
            repeated = self._store.repeated(once)
            if repeated is not None:
                return repeated
            root = self._store.get_ca(root_id)
            root.purchase_quota(ctx, count)
            return self._store.save_once(ctx, once, root_id, root)

        with self._store.ca_lock(root_id):
            return retry_on_conflict(attempt)

    def assign_quota(
        self, ctx: RequestContext, root_id: UUID, intermediate_id: UUID, remaining: int
    ) -> Outcome:
        """Set the intermediate's remaining quota, moving the difference to or from the root."""

        def attempt() -> Outcome:
            root = self._store.get_ca(root_id)
            intermediate = self._store.get_ca(intermediate_id, field="intermediate_id")
            root.assign_quota(ctx, intermediate, remaining, self._store.clock())
            self._issuance.forget(intermediate_id)
            return self._store.save(root_id, root, intermediate)

        with self._store.ca_lock(intermediate_id):
            return retry_on_conflict(attempt)

    def _sign_ca_certificate(
        self, ca: CertificateAuthority, key: CertificateIssuerPrivateKeyTypes, now: dt.datetime
    ) -> x509.Certificate:
        """The CA's certificate: self-signed for a root, else signed by its enabled parent."""
        window = ca.validity_window(now)
        if ca.kind is CAKind.ROOT:
            return certs.build_root(key, ca.subject, *window)
        assert ca.parent_id is not None
        parent = self._store.get_ca(ca.parent_id)
        parent.require_enabled(now)
        parent.check_child_validity(now, ca.validity_years)
        parent_der, parent_key_id = parent.signing_identity()
        return certs.build_intermediate(
            key.public_key(),
            ca.subject,
            load_certificate(parent_der),
            certs.as_issuer_key(self._store.keys.get(parent_key_id)),
            window,
            certs.PublicationURLs.for_issuer(self._store.public_url, str(parent.id)),
            ca.name_constraints,
        )
