"""CA lifecycle and quota: create, enable (the CA's key and certificate), change, assign.

Writers to one CA take turns inside the process (the Store's CA locks) and retry
optimistic-concurrency conflicts with other processes. A change to a CA drops issuance's
cached copy of it, so the next issuance sees the change.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from uuid import UUID

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from domain.application.commands import CAProfile
from domain.application.issuance import Issuance
from domain.application.store import Outcome, Store, retry_on_conflict
from domain.model.authority import CertificateAuthority
from domain.model.certificate_facts import load_certificate
from domain.model.constraints import UNCONSTRAINED, NameConstraints
from domain.model.errors import CAStateError
from domain.model.idempotency import Repeatable
from domain.model.validation import normalize_subject
from domain.model.values import CAKind, KeyRef, KeyStorage, RequestContext
from domain.pki import x509 as certs
from domain.pki.signing import IssuerKey


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

    def enable(
        self, ctx: RequestContext, ca_id: UUID, key_storage: KeyStorage = KeyStorage.SOFTWARE
    ) -> Outcome:
        """Enable; the first time, generate the CA key in ``key_storage`` and have the
        certificate signed.

        A software key is stored by the save that enables the CA (Store.save); a token
        key, made in the token, is destroyed again if signing or that save fails.
        """
        ca = self._store.get_ca(ca_id)
        now = self._store.clock()
        if not ca.needs_certificate:
            ca.enable(ctx, now)
            return self._store.save(ca_id, ca)
        key_ref = KeyRef(f"ca-{ca_id}", key_storage)
        key, sealed = self._store.signers.generate(key_ref, ca.key_algorithm)
        with self._destroyed_on_failure(key_ref, sealed):
            certificate = self._sign_ca_certificate(ca, key, now)
            ca.enable(ctx, now, key_ref, certificate.public_bytes(Encoding.DER))
            return self._store.save(ca_id, ca, keys=sealed)

    def roll_over(self, ctx: RequestContext, ca_id: UUID) -> Outcome:
        """A new key (where the current one lives) and certificate under the CA's name;
        issuance signs with it from the save on. A root also gets link certificates.

        The key and certificates are made once; a conflict with issuance saving the CA
        meanwhile is retried with them. A software key goes with the save; a token key is
        destroyed if nothing is saved.
        """
        ca = self._store.get_ca(ca_id)
        now = self._store.clock()
        ca.require_enabled(now)
        generation = ca.generation + 1
        key_ref = KeyRef(f"ca-{ca_id}-g{generation}", ca.key_storage)
        key, sealed = self._store.signers.generate(key_ref, ca.key_algorithm)

        def attempt() -> Outcome:
            current = self._store.get_ca(ca_id)
            if current.generation != ca.generation:
                raise CAStateError("Another rollover of this CA's key came first; reload it.")
            current.roll_over_key(ctx, key_ref, certificate_der, links)
            self._issuance.forget(ca_id)
            return self._store.save(ca_id, current, keys=sealed)

        with self._destroyed_on_failure(key_ref, sealed):
            certificate = self._sign_ca_certificate(ca, key, now)
            certificate_der = certificate.public_bytes(Encoding.DER)
            links = self._link_certificates(ca, key, certificate, now)
            with self._store.ca_lock(ca_id):
                return retry_on_conflict(attempt)

    @contextmanager
    def _destroyed_on_failure(self, key_ref: KeyRef, sealed: dict[str, object]) -> Iterator[None]:
        """Destroy a token key if the ``with`` block fails. A software key (``sealed``) is
        left to the save: stored with its events or rolled back with them; destroying it
        after an error whose commit may still have happened could orphan a saved CA."""
        try:
            yield
        except BaseException:
            if not sealed:
                self._store.signers.destroy(key_ref)
            raise

    def _link_certificates(
        self,
        ca: CertificateAuthority,
        key: IssuerKey,
        certificate: x509.Certificate,
        now: dt.datetime,
    ) -> tuple[bytes, ...]:
        """A root's two link certificates: its new key certified by the old key, and the
        old key by the new one, valid while the old certificate is; none for others."""
        if ca.kind is not CAKind.ROOT:
            return ()
        old_der, old_key_ref = ca.signing_identity()
        old = load_certificate(old_der)
        window = (now, old.not_valid_after_utc)
        old_key = self._store.signers.signing_key(old_key_ref)
        links = (
            certs.build_link(key.public_key(), old, old_key, window),
            certs.build_link(old.public_key(), certificate, key, window),
        )
        return tuple(link.public_bytes(Encoding.DER) for link in links)

    def retire_key(self, ctx: RequestContext, ca_id: UUID, generation: int) -> Outcome:
        """Retire the CA's previous key ``generation`` (CAKeyRetired), then destroy its
        material where it lives. The event is saved first: a key destroyed before a save
        that then failed would leave the log naming a key that no longer exists."""
        retired: list[KeyRef] = []

        def attempt() -> Outcome:
            ca = self._store.get_ca(ca_id)
            retired[:] = [ca.retire_key(ctx, generation, self._store.clock()).key]
            return self._store.save(ca_id, ca)

        with self._store.ca_lock(ca_id):
            outcome = retry_on_conflict(attempt)
        self._store.signers.destroy(retired[0])
        return outcome

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
        self, ca: CertificateAuthority, key: IssuerKey, now: dt.datetime
    ) -> x509.Certificate:
        """The CA's certificate: self-signed for a root, else signed by its enabled parent."""
        window = ca.validity_window(now)
        if ca.kind is CAKind.ROOT:
            return certs.build_root(key, ca.subject, *window)
        assert ca.parent_id is not None
        parent = self._store.get_ca(ca.parent_id)
        parent.require_enabled(now)
        parent.check_child_validity(now, ca.validity_years)
        parent_der, parent_key = parent.signing_identity()
        return certs.build_intermediate(
            key.public_key(),
            ca.subject,
            load_certificate(parent_der),
            self._store.signers.signing_key(parent_key),
            window,
            self._store.urls(parent.id, parent.generation),
            ca.name_constraints,
        )
