"""The application service: one method per command (load, call the aggregate, save).

Non-deterministic work (clock reads, key generation, signing) happens here, before events are
triggered; its results travel in the events. Keys go to the key store, never into events.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from uuid import UUID, uuid4

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import Encoding
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Recording
from eventsourcing.popo import POPOFactory

from domain.adapters.keystore import KeyStore, SealedKey
from domain.adapters.writelock import write_locks
from domain.application.commands import CAProfile, CertificateRequest
from domain.application.issuing import GroupCommit, Ticket, TicketState
from domain.model.authority import CertificateAuthority, no_quota_left
from domain.model.certificate import (
    Certificate,
    IssuanceRequest,
    IssuedFacts,
    certificate_id,
    issuance_request_id,
)
from domain.model.errors import (
    CAStateError,
    ConflictError,
    IdempotencyKeyReusedError,
    NotFoundError,
    PCAError,
    QuotaError,
    SANError,
    StorageNotDurableError,
    ValidationError,
)
from domain.model.idempotency import CommandClaim, Repeatable
from domain.model.publication import Publication, publication_id
from domain.model.tokens import TOKEN_PREFIX, ApiToken, Role, new_token, token_id
from domain.model.transcodings import register_all
from domain.model.validation import normalize_sans, normalize_subject
from domain.model.values import (
    SAN,
    CAKind,
    CertificateType,
    KeyAlgorithm,
    RequestContext,
    RevocationReason,
    SANType,
)
from domain.pki import x509 as certs
from domain.pki.ocsp import build_responder_certificate

T = TypeVar("T")
Clock = Callable[[], dt.datetime]
MAX_SAVE_ATTEMPTS = 200
MAX_TOKEN_LENGTH = 128
TOKEN_CACHE_SECONDS = 2.0
MAX_TOKEN_DAYS = 3650
MAX_CACHED_TOKENS = 1024


def utc_now() -> dt.datetime:
    """The current time in UTC, to the second (X.509 times have no fractions)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class Outcome:
    """What a command changed and the log position a reader can wait for."""

    id: UUID
    position: int


@dataclass(frozen=True)
class IssuedCertificate:
    """A new (or idempotently repeated) certificate, its chain and the log position."""

    certificate: Certificate
    chain_der: tuple[bytes, ...]
    position: int


class PrivateCA(Application[UUID]):
    """Commands of the private CA. Queries of many items belong to the read models."""

    name = "pca"  # pinned: PostgreSQL table names derive from it
    snapshotting_intervals = {CertificateAuthority: 500}  # noqa: RUF012 - eventsourcing API

    def __init__(
        self,
        env: dict[str, str],
        *,
        keystore: KeyStore,
        public_url: str,
        clock: Clock = utc_now,
        allow_memory: bool = False,
    ) -> None:
        super().__init__(env)
        self._write_locks = write_locks(env, getattr(self.recorder, "datastore", None))
        if isinstance(self.factory, POPOFactory) and not allow_memory:
            self.close()
            raise StorageNotDurableError(
                "The event store is in memory and would keep nothing; configure SQLite "
                "(PCA_DATA_DIR) or PostgreSQL (PCA_DATABASE_URL)."
            )
        self.keystore = keystore
        self.public_url = public_url
        self.clock = clock
        self._locks: dict[UUID, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._chains: dict[UUID, tuple[bytes, ...]] = {}
        self._issuers: dict[UUID, CertificateAuthority] = {}
        self._tokens: dict[UUID, tuple[float, ApiToken]] = {}
        self._parsed_issuers: dict[UUID, x509.Certificate] = {}
        self._group_commits: dict[UUID, GroupCommit] = {}

    def close(self) -> None:
        self._write_locks.close()
        super().close()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_all(transcoder)

    # --- CA lifecycle ---------------------------------------------------------------------

    def create_root(
        self,
        ctx: RequestContext,
        profile: CAProfile,
        included_certificates: int = 0,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """A pending root CA; it gets its key and certificate when first enabled."""
        parameters = {"profile": dataclasses.asdict(profile), "included": included_certificates}
        once = Repeatable.of("create-root", "cas", idempotency_key, parameters)
        repeated = self._repeated(once)
        if repeated is not None:
            return repeated
        root = CertificateAuthority.create_root(
            ctx,
            normalize_subject(profile.subject),
            profile.key_algorithm,
            (profile.validity_years, profile.service_days),
            included_certificates,
        )
        return self._save_once(ctx, once, root.id, root)

    def create_intermediate(
        self,
        ctx: RequestContext,
        parent_id: UUID,
        profile: CAProfile,
        idempotency_key: str | None = None,
    ) -> Outcome:
        """A pending intermediate under the enabled root ``parent_id``."""
        parameters = {"profile": dataclasses.asdict(profile)}
        once = Repeatable.of("create-intermediate", str(parent_id), idempotency_key, parameters)
        repeated = self._repeated(once)
        if repeated is not None:
            return repeated
        parent = self.get_ca(parent_id, field="parent_id")
        intermediate = CertificateAuthority.create_intermediate(
            ctx,
            parent,
            normalize_subject(profile.subject),
            profile.key_algorithm,
            (profile.validity_years, profile.service_days),
            self.clock(),
        )
        return self._save_once(ctx, once, intermediate.id, intermediate)

    def enable_ca(self, ctx: RequestContext, ca_id: UUID) -> Outcome:
        """Enable; the first time, generate the CA key and have the certificate signed."""
        ca = self.get_ca(ca_id)
        now = self.clock()
        if not ca.needs_certificate:
            ca.enable(ctx, now)
            return self._outcome(ca_id, self.save(ca))
        key = certs.generate_private_key(ca.key_algorithm)
        certificate = self._sign_ca_certificate(ca, key, now)
        key_id = f"ca-{ca_id}"
        self.keystore.put(key_id, key)
        try:
            ca.enable(ctx, now, key_id, certificate.public_bytes(Encoding.DER))
            return self._outcome(ca_id, self.save(ca))
        except BaseException:
            self.keystore.destroy(key_id)
            raise

    def disable_ca(self, ctx: RequestContext, ca_id: UUID) -> Outcome:
        """Stop a CA from issuing and from taking part in quota assignments."""
        return self._update_ca(ca_id, lambda ca: ca.disable(ctx))

    def renew_ca(self, ctx: RequestContext, ca_id: UUID, service_days: int) -> Outcome:
        """Extend the CA's service period by ``service_days``."""
        return self._update_ca(ca_id, lambda ca: ca.renew_service(ctx, service_days, self.clock()))

    def revoke_ca(self, ctx: RequestContext, ca_id: UUID, reason: RevocationReason) -> Outcome:
        """Revoke an intermediate: its certificate lands on the root's CRL; it stops issuing."""
        return self._update_ca(ca_id, lambda ca: ca.revoke(ctx, reason, self.clock()))

    # --- quota ----------------------------------------------------------------------------

    def purchase_quota(
        self, ctx: RequestContext, root_id: UUID, count: int, idempotency_key: str | None = None
    ) -> Outcome:
        """Add ``count`` certificates to the root's pool (once per Idempotency-Key)."""
        once = Repeatable.of("purchase-quota", str(root_id), idempotency_key, count)

        def attempt() -> Outcome:
            repeated = self._repeated(once)
            if repeated is not None:
                return repeated
            root = self.get_ca(root_id)
            root.purchase_quota(ctx, count)
            return self._save_once(ctx, once, root_id, root)

        with self._ca_lock(root_id):
            return _retry_on_conflict(attempt)

    def assign_quota(
        self, ctx: RequestContext, root_id: UUID, intermediate_id: UUID, remaining: int
    ) -> Outcome:
        """Set the intermediate's remaining quota, moving the difference to or from the root."""

        def attempt() -> Outcome:
            root = self.get_ca(root_id)
            intermediate = self.get_ca(intermediate_id, field="intermediate_id")
            root.assign_quota(ctx, intermediate, remaining, self.clock())
            self._issuers.pop(intermediate_id, None)
            return self._outcome(root_id, self.save(root, intermediate))

        with self._ca_lock(intermediate_id):
            return _retry_on_conflict(attempt)

    # --- certificates ---------------------------------------------------------------------

    def issue_certificate(
        self, ctx: RequestContext, ca_id: UUID, request: CertificateRequest
    ) -> IssuedCertificate:
        """Sign and record one certificate, consuming one unit of the CA's quota.

        A repeated idempotency key with the same parameters returns the first certificate.
        """
        now = self.clock()
        self._issuer_for(ca_id, now, 1).check_can_issue(now)  # refuse before signing
        (outcome,) = self.issue_certificates(ctx, ca_id, [request])
        if isinstance(outcome, PCAError):
            raise outcome
        return outcome

    def issue_certificates(
        self, ctx: RequestContext, ca_id: UUID, requests: Sequence[CertificateRequest]
    ) -> list[IssuedCertificate | PCAError]:
        """Sign and record each request on its own, one outcome per request, in order.

        An item fails alone (invalid request, quota spent, idempotency key reused) and
        consumes no quota; a CA that cannot issue at all raises. Concurrent calls for the
        same CA share transactions (see domain.application.issuing).
        """
        now = self.clock()
        ca = self._issuer_for(ca_id, now, len(requests))
        ca.check_can_sign(now)
        budget = ca.quota_remaining  # no key is made for an item the quota cannot cover
        outcomes: list[IssuedCertificate | PCAError | Ticket] = []
        for request in requests:
            outcome = self._prepare(ctx, ca, request, now, signing=budget > 0)
            budget -= isinstance(outcome, Ticket)
            outcomes.append(outcome)
        tickets = [outcome for outcome in outcomes if isinstance(outcome, Ticket)]
        self._group_commit(ca_id).submit(tickets)
        return [
            self._settled(ca_id, outcome) if isinstance(outcome, Ticket) else outcome
            for outcome in outcomes
        ]

    def _issuer_for(self, ca_id: UUID, now: dt.datetime, wanted: int) -> CertificateAuthority:
        """The CA to check and sign requests with: the cached copy, unless it would refuse
        them (not issuing, or fewer than ``wanted`` units left). The cache may be behind
        another process (quota assigned, CA re-enabled there), so a refusal is decided on a
        fresh load; a stale permission is harmless, as the leader checks again when saving."""
        ca = self.get_issuer(ca_id)
        try:
            ca.check_can_sign(now)
        except PCAError:
            return self.get_ca(ca_id)
        return ca if ca.quota_remaining >= wanted else self.get_ca(ca_id)

    def get_issuer(self, ca_id: UUID) -> CertificateAuthority:
        """The CA ``ca_id`` as last saved by this process's issuance, else freshly loaded.

        Issuance always saves the CA along with its certificates, so a stale copy fails
        that save on its version, and is then reloaded: the cache cannot let a rule slip.
        """
        ca = self._issuers.get(ca_id)
        if ca is None:
            ca = self._issuers[ca_id] = self.get_ca(ca_id)
        return ca

    def revoke_certificate(
        self, ctx: RequestContext, certificate_id: UUID, reason: RevocationReason
    ) -> Outcome:
        """Revoke now, for good."""

        def attempt() -> Outcome:
            certificate = self.get_certificate(certificate_id)
            certificate.revoke(ctx, reason, self.clock())
            return self._outcome(certificate_id, self.save(certificate))

        return _retry_on_conflict(attempt)

    def record_key_export(
        self, ctx: RequestContext, certificate_id: UUID, file_format: str
    ) -> Outcome:
        """Record who takes the certificate's held private key out, and in which format.

        Callers record before they hand the key over, so no export goes unaccounted for.
        """

        def attempt() -> Outcome:
            certificate = self.get_certificate(certificate_id)
            certificate.export_key(ctx, file_format)
            return self._outcome(certificate_id, self.save(certificate))

        return _retry_on_conflict(attempt)

    def delete_certificate(self, ctx: RequestContext, certificate_id: UUID) -> Outcome:
        """Delete a revoked or expired certificate and destroy any key held for it.

        The key is destroyed before the event is saved: if the save then fails the
        certificate stays listed without a key (deleting again finishes the job), which is
        safer for a CA than a deleted certificate whose key lingers.
        """
        destroyed = False

        def attempt() -> Outcome:
            nonlocal destroyed
            certificate = self.get_certificate(certificate_id)
            now = self.clock()
            certificate.check_deletable(now)
            if certificate.key_id is not None:
                destroyed = self.keystore.destroy(certificate.key_id) or destroyed
            certificate.delete(ctx, now, key_destroyed=destroyed)
            return self._outcome(certificate_id, self.save(certificate))

        return _retry_on_conflict(attempt)

    # --- revocation publishing ----------------------------------------------------------

    def signing_material(
        self, ca_id: UUID
    ) -> tuple[x509.Certificate, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
        """The CA's certificate and private key, for signing CRLs and responder certificates."""
        certificate_der, key_id = self.get_ca(ca_id).signing_identity()
        key = certs.as_issuer_key(self.keystore.get(key_id))
        return certs.load_certificate(certificate_der), key

    def publication(self, ctx: RequestContext, ca_id: UUID) -> Publication:
        """The CA's publication record (a new, unsaved one before its first CRL)."""
        try:
            found: object = self.repository.get(publication_id(ca_id))
        except AggregateNotFoundError:
            return Publication.start(ctx, ca_id)
        assert isinstance(found, Publication)
        return found

    def certify_ocsp_responder(
        self, ctx: RequestContext, ca_id: UUID, lifetime: dt.timedelta
    ) -> Publication:
        """Issue a fresh delegated OCSP responder certificate for ``ca_id`` and record it."""
        issuer, issuer_key = self.signing_material(ca_id)
        now = self.clock()
        not_after = min(now + lifetime, issuer.not_valid_after_utc)
        key = certs.generate_private_key(KeyAlgorithm.EC_P256)
        certificate = build_responder_certificate(
            issuer,
            issuer_key,
            key.public_key(),
            now - dt.timedelta(minutes=1),
            not_after,
            ca_issuers_url=certs.PublicationURLs.for_issuer(self.public_url, str(ca_id)).ca_issuers,
        )
        key_id = f"ocsp-{ca_id}-{uuid4()}"
        self.keystore.put(key_id, key)
        publication = self.publication(ctx, ca_id)
        publication.certify_responder(ctx, key_id, certificate.public_bytes(Encoding.DER))
        try:
            self.save(publication)
        except BaseException:
            self.keystore.destroy(key_id)
            raise
        return publication

    # --- API tokens -----------------------------------------------------------------------

    def create_token(
        self, ctx: RequestContext, name: str, role: Role, valid_days: int | None = None
    ) -> tuple[str, Outcome]:
        """A new bearer token (returned once, stored only as a hash) and its outcome; with
        ``valid_days`` it stops being accepted that many days from now."""
        expires_at = None
        if valid_days is not None:
            if not 1 <= valid_days <= MAX_TOKEN_DAYS:
                raise ValidationError(
                    f"valid_days must be 1 to {MAX_TOKEN_DAYS}; got {valid_days}.",
                    field="valid_days",
                )
            expires_at = self.clock() + dt.timedelta(days=valid_days)
        token = new_token()
        record = ApiToken.create(ctx, name, role, token, expires_at)
        return token, self._outcome(record.id, self.save(record))

    def authenticate(self, token: str) -> ApiToken | None:
        """The valid token record for ``token``, or None (unknown, revoked or malformed)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
            return None
        record = self._token_record(token_id(token))
        if record is not None and record.matches(token) and record.is_current(self.clock()):
            return record
        return None

    def _token_record(self, record_id: UUID) -> ApiToken | None:
        """The token record, loaded at most every TOKEN_CACHE_SECONDS: every request
        authenticates, and loading the record was a tenth of an issuance. The age counts
        from the load, not the last use, so a revocation made by another process is
        honoured here at most that many seconds later, however busy the token."""
        cached = self._tokens.get(record_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        try:
            record: object = self.repository.get(record_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(record, ApiToken):
            return None
        if len(self._tokens) >= MAX_CACHED_TOKENS:
            self._tokens.clear()
        self._tokens[record_id] = (time.monotonic() + TOKEN_CACHE_SECONDS, record)
        return record

    def revoke_token(self, ctx: RequestContext, record_id: UUID) -> Outcome:
        """Stop accepting the token ``record_id``."""
        record = self._get(record_id, f"No API token with id {record_id}.", None)
        if not isinstance(record, ApiToken):
            raise NotFoundError(f"No API token with id {record_id}.")
        record.revoke(ctx)
        self._tokens.pop(record_id, None)
        return self._outcome(record_id, self.save(record))

    # --- reads of one aggregate -----------------------------------------------------------

    def get_ca(self, ca_id: UUID, *, field: str | None = None) -> CertificateAuthority:
        """The CA ``ca_id``; NotFoundError if there is none."""
        ca = self._get(ca_id, f"No CA with id {ca_id}.", field)
        if not isinstance(ca, CertificateAuthority):
            raise NotFoundError(f"No CA with id {ca_id}.", field=field)
        return ca

    def get_certificate(self, certificate_id: UUID) -> Certificate:
        """The certificate ``certificate_id``; NotFoundError if there is none."""
        certificate = self._get(certificate_id, f"No certificate with id {certificate_id}.", None)
        if not isinstance(certificate, Certificate):
            raise NotFoundError(f"No certificate with id {certificate_id}.")
        return certificate

    def find_certificate(self, ca_id: UUID, serial_number: str) -> Certificate | None:
        """The certificate ``ca_id`` issued with ``serial_number`` (lower-case hex), if any."""
        try:
            found: object = self.repository.get(certificate_id(ca_id, serial_number))
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, Certificate) else None

    def chain_der(self, ca_id: UUID) -> tuple[bytes, ...]:
        """The CA's certificate followed by its parents' up to the root."""
        # A CA's certificate never changes once made, so a found chain is cached for good.
        cached = self._chains.get(ca_id)
        if cached is not None:
            return cached
        chain: list[bytes] = []
        current: UUID | None = ca_id
        while current is not None:
            ca = self.get_ca(current)
            if ca.certificate_der is None:
                raise CAStateError(f"CA {current} has no certificate yet; enable it first.")
            chain.append(ca.certificate_der)
            current = ca.parent_id
        self._chains[ca_id] = tuple(chain)
        return self._chains[ca_id]

    # --- internals ------------------------------------------------------------------------

    def _get(self, aggregate_id: UUID, message: str, field: str | None) -> Any:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFoundError(message, field=field) from None

    def _repeated(self, once: Repeatable | None) -> Outcome | None:
        """The first outcome of a repeated Idempotency-Key, or None if it is new."""
        if once is None:
            return None
        try:
            claim: object = self.repository.get(once.claim_id)
        except AggregateNotFoundError:
            return None
        assert isinstance(claim, CommandClaim)
        if claim.fingerprint != once.fingerprint:
            raise _key_reused()
        return Outcome(claim.outcome_id, self.recorder.max_notification_id() or 0)

    def _save_once(
        self, ctx: RequestContext, once: Repeatable | None, outcome_id: UUID, *changed: Any
    ) -> Outcome:
        """Save ``changed`` with the claim of ``once``; a key claimed meanwhile by a
        concurrent request with it gives that request's outcome."""
        claim = CommandClaim.record(ctx, once, outcome_id) if once is not None else None
        try:
            return self._outcome(outcome_id, self.save(*changed, claim))
        except IntegrityError:
            repeated = self._repeated(once)
            if repeated is None:
                raise
            return repeated

    def _outcome(self, aggregate_id: UUID, recordings: Sequence[Recording[UUID]]) -> Outcome:
        return Outcome(aggregate_id, recordings[-1].notification.id)

    def _update_ca(self, ca_id: UUID, change: Callable[[CertificateAuthority], None]) -> Outcome:
        def attempt() -> Outcome:
            ca = self.get_ca(ca_id)
            change(ca)
            self._issuers.pop(ca_id, None)
            return self._outcome(ca_id, self.save(ca))

        with self._ca_lock(ca_id):
            return _retry_on_conflict(attempt)

    @contextmanager
    def _ca_lock(self, ca_id: UUID) -> Iterator[None]:
        # Serialising writers to one CA inside a process turns in-process contention into
        # waiting; only conflicts with other processes reach the retry loop.
        with self._locks_guard:
            lock = self._locks.setdefault(ca_id, threading.Lock())
        with lock:
            yield

    def _sign_ca_certificate(
        self, ca: CertificateAuthority, key: CertificateIssuerPrivateKeyTypes, now: dt.datetime
    ) -> x509.Certificate:
        window = ca.validity_window(now)
        if ca.kind is CAKind.ROOT:
            return certs.build_root(key, ca.subject, *window)
        assert ca.parent_id is not None
        parent = self.get_ca(ca.parent_id)
        parent.require_enabled(now)
        parent.check_child_validity(now, ca.validity_years)
        parent_der, parent_key_id = parent.signing_identity()
        return certs.build_intermediate(
            key.public_key(),
            ca.subject,
            certs.load_certificate(parent_der),
            certs.as_issuer_key(self.keystore.get(parent_key_id)),
            window,
            certs.PublicationURLs.for_issuer(self.public_url, str(parent.id)),
        )

    def _prepare(
        self,
        ctx: RequestContext,
        ca: CertificateAuthority,
        request: CertificateRequest,
        now: dt.datetime,
        *,
        signing: bool,
    ) -> IssuedCertificate | PCAError | Ticket:
        """The earlier certificate for a repeated key, an error, or (if still ``signing``)
        a signed ticket."""
        try:
            if request.idempotency_key is not None:
                repeated = self._find_repeated(ca.id, request)
                if repeated is not None:
                    return repeated
            if not signing:
                return QuotaError(
                    "The intermediate CA's quota ran out before this item; assign more from "
                    "its root."
                )
            facts, sealed_key = self._sign_leaf(ca, request, now)
        except PCAError as error:
            return error
        return Ticket(ctx, request, facts, sealed_key)

    def _settled(self, ca_id: UUID, ticket: Ticket) -> IssuedCertificate | PCAError:
        if ticket.certificate is not None:
            return IssuedCertificate(ticket.certificate, self.chain_der(ca_id), ticket.position)
        if ticket.state is TicketState.REPEATED:
            try:
                repeated = self._find_repeated(ca_id, ticket.request)
            except PCAError as error:  # the same key with other parameters
                return error
            assert repeated is not None
            return repeated
        if isinstance(ticket.error, PCAError):
            return ticket.error
        raise ticket.error or RuntimeError("issuance ended without an outcome")

    def _sign_leaf(
        self, ca: CertificateAuthority, request: CertificateRequest, now: dt.datetime
    ) -> tuple[IssuedFacts, SealedKey | None]:
        window = ca.leaf_window(now, request.validity_days)
        subject = normalize_subject(request.subject)
        sans = _sans_for(request.type, subject.common_name, request.sans)
        public_key, algorithm, sealed_key = self._leaf_key(request)
        ca_der, ca_key_id = ca.signing_identity()
        profile = certs.LeafProfile(request.type, subject, sans, request.include_crl)
        certificate = certs.build_leaf(
            public_key,
            profile,
            self._issuer_certificate(ca.id, ca_der),
            certs.as_issuer_key(self.keystore.get(ca_key_id)),
            window,
            certs.PublicationURLs.for_issuer(self.public_url, str(ca.id)),
        )
        facts = IssuedFacts.of(
            certificate,
            ca_id=ca.id,
            type=request.type,
            name=request.name or subject.common_name,
            subject=subject,
            sans=sans,
            key_algorithm=algorithm,
            key_id=sealed_key.key_id if sealed_key else None,
            include_crl=request.include_crl,
        )
        return facts, sealed_key

    def _issuer_certificate(self, ca_id: UUID, ca_der: bytes) -> x509.Certificate:
        """The CA's parsed certificate (it never changes once made, so parse it once)."""
        parsed = self._parsed_issuers.get(ca_id)
        if parsed is None:
            parsed = self._parsed_issuers[ca_id] = certs.load_certificate(ca_der)
        return parsed

    def _leaf_key(
        self, request: CertificateRequest
    ) -> tuple[CertificatePublicKeyTypes, KeyAlgorithm, SealedKey | None]:
        if request.csr_pem is not None:
            if request.key_algorithm is not None:
                raise ValidationError(
                    "Give either key_algorithm (the server makes the key) or csr, not both.",
                    field="key_algorithm",
                )
            public_key = certs.load_csr(request.csr_pem).public_key()
            return public_key, certs.key_algorithm_of(public_key), None
        algorithm = request.key_algorithm or KeyAlgorithm.EC_P256
        key = certs.generate_private_key(algorithm)
        return key.public_key(), algorithm, self.keystore.seal(f"leaf-{uuid4()}", key)

    def _discard_key(self, key_id: str | None) -> None:
        if key_id is not None:
            self.keystore.destroy(key_id)

    def _group_commit(self, ca_id: UUID) -> GroupCommit:
        with self._locks_guard:
            group = self._group_commits.get(ca_id)
            if group is None:
                group = self._group_commits[ca_id] = GroupCommit(self._record_group)
            return group

    def _record_group(self, tickets: list[Ticket]) -> None:
        """Store the group's keys, then save quota units, certificates and claims at once.

        Keys go first, so no saved event names a missing key. A key is destroyed only once
        its certificate is known not to be saved; after an unexpected error (the commit
        may have happened) it stays, encrypted and unreferenced, rather than risk a
        recorded certificate without its key.
        """
        self.keystore.store([ticket.sealed_key for ticket in tickets if ticket.sealed_key])
        self._save_group(tickets[0].facts.ca_id, tickets)
        for ticket in tickets:
            if ticket.state is not TicketState.RECORDED:
                self._discard_key(ticket.facts.key_id)

    def _save_group(self, ca_id: UUID, tickets: list[Ticket]) -> None:
        """Settle every ticket, retrying conflicts with the signatures already made."""
        pending = tickets
        for attempt in range(MAX_SAVE_ATTEMPTS):
            with self._ca_lock(ca_id), self._write_locks.hold(ca_id):
                ca = self._current_issuer(ca_id)
                staged = _Staged.of(ca, pending, self.clock())
                if not staged.recorded:
                    staged.settle(0)
                    return
                try:
                    recordings = self.save(ca, *staged.aggregates())
                except IntegrityError:
                    self._issuers.pop(ca_id, None)
                    pending = [ticket for ticket in pending if not self._claimed_first(ticket)]
                except BaseException:
                    self._issuers.pop(ca_id, None)  # it holds changes that were not saved
                    raise
                else:
                    staged.settle(recordings[-1].notification.id)
                    return
            _backoff(attempt)
        raise ConflictError("The CA is too busy right now; retry the request.")

    def _current_issuer(self, ca_id: UUID) -> CertificateAuthority:
        """The cached CA brought up to date (under the lock) with the events other
        processes saved since: applying those few is far cheaper than a reload."""
        ca = self.get_issuer(ca_id)
        for event in self.events.get(ca_id, gt=ca.version):
            assert isinstance(event, CertificateAuthority.Event)
            mutated = event.mutate(ca)
            assert isinstance(mutated, CertificateAuthority)
            ca = mutated
        self._issuers[ca_id] = ca
        return ca

    def _claimed_first(self, ticket: Ticket) -> bool:
        """Whether another request recorded this ticket's idempotency key (it repeats)."""
        key = ticket.request.idempotency_key
        if key is None or issuance_request_id(ticket.facts.ca_id, key) not in self.repository:
            return False
        ticket.repeated()
        return True

    def _find_repeated(self, ca_id: UUID, request: CertificateRequest) -> IssuedCertificate | None:
        assert request.idempotency_key is not None
        claim_id = issuance_request_id(ca_id, request.idempotency_key)
        try:
            claim: IssuanceRequest = self.repository.get(claim_id)
        except AggregateNotFoundError:
            return None
        assert isinstance(claim, IssuanceRequest)
        if claim.fingerprint != request.fingerprint():
            raise _key_reused()
        certificate = self.get_certificate(claim.certificate_id)
        # The claim's own position is not at hand; the log's head is at or after it, so a
        # reader waiting for it also sees the first issuance.
        head = self.recorder.max_notification_id() or 0
        return IssuedCertificate(certificate, self.chain_der(ca_id), head)


@dataclass
class _Staged:
    """One attempt at recording a group: what goes into the save and what stays out."""

    recorded: list[tuple[Ticket, Certificate]] = field(default_factory=list)
    claims: list[IssuanceRequest] = field(default_factory=list)
    twins: list[Ticket] = field(default_factory=list)  # a key recorded in this same save
    refused: list[tuple[Ticket, PCAError]] = field(default_factory=list)
    claimed_keys: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, ca: CertificateAuthority, tickets: list[Ticket], now: dt.datetime) -> _Staged:
        """Spend ``ca``'s quota on ``tickets`` in order, while it lasts: one ``QuotaSpent``
        per request in the group, so every unit names who spent it."""
        staged = cls()
        try:
            ca.check_can_sign(now)
        except PCAError as error:  # disabled or out of service since the tickets were signed
            staged.refused = [(ticket, error) for ticket in tickets]
            return staged
        for ticket in tickets:
            staged._add(ca, ticket)
        by_request: dict[RequestContext, list[tuple[UUID, str]]] = {}
        for ticket, certificate in staged.recorded:
            spent = by_request.setdefault(ticket.ctx, [])
            spent.append((certificate.id, ticket.facts.serial_number))
        for ctx, spent in by_request.items():
            ca.spend_quota(ctx, spent, now)
        return staged

    def _add(self, ca: CertificateAuthority, ticket: Ticket) -> None:
        key = ticket.request.idempotency_key
        if key is not None and key in self.claimed_keys:
            self.twins.append(ticket)
            return
        if len(self.recorded) >= ca.quota_remaining:
            self.refused.append((ticket, no_quota_left()))
            return
        certificate = Certificate.issue(ticket.ctx, ticket.facts)
        self.recorded.append((ticket, certificate))
        if key is not None:
            fingerprint = ticket.request.fingerprint()
            claim = IssuanceRequest.record(ticket.ctx, ca.id, key, fingerprint, certificate.id)
            self.claims.append(claim)
            self.claimed_keys.add(key)

    def aggregates(self) -> list[Certificate | IssuanceRequest]:
        return [certificate for _, certificate in self.recorded] + list(self.claims)

    def settle(self, position: int) -> None:
        for ticket, certificate in self.recorded:
            ticket.recorded(certificate, position)
        for ticket in self.twins:
            ticket.repeated()
        for ticket, error in self.refused:
            ticket.failed(error)


def _key_reused() -> IdempotencyKeyReusedError:
    return IdempotencyKeyReusedError(
        "This Idempotency-Key was already used with different parameters; "
        "use a new key for a new request.",
        field="Idempotency-Key",
    )


def _sans_for(
    certificate_type: CertificateType, common_name: str, sans: Sequence[SAN]
) -> tuple[SAN, ...]:
    """Validated SANs; a server certificate without any gets its common name as one."""
    if sans or certificate_type is CertificateType.CLIENT:
        return normalize_sans(certificate_type, sans)
    for san_type in (SANType.IP, SANType.DNS):
        try:
            return normalize_sans(certificate_type, [SAN(san_type, common_name)])
        except SANError:
            continue
    raise SANError(
        f"Server certificates need a DNS or IP SAN and the common name {common_name!r} is "
        "neither; add one to sans.",
        field="sans",
    )


def _retry_on_conflict(attempt: Callable[[], T]) -> T:
    """Run ``attempt`` until it saves without an optimistic-concurrency conflict."""
    for number in range(MAX_SAVE_ATTEMPTS):
        try:
            return attempt()
        except IntegrityError:
            _backoff(number)
    raise ConflictError("The CA is too busy right now; retry the request.")


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.05, 0.001 * 2 ** min(attempt, 6))))  # noqa: S311
