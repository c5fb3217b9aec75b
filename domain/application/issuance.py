"""Issuing end-entity certificates: sign on the caller's thread, record in groups.

A request is checked and signed where it arrives (the slow part, in parallel), then handed
to its CA's :class:`~domain.application.issuing.GroupCommit` as a ticket; the group's
leader saves quota units, certificates, idempotency claims and the sealed keys they name in
one transaction, retrying conflicts with the signatures already made.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID, uuid4

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from eventsourcing.persistence import IntegrityError

from domain.application.commands import DEFAULT_LEAF_KEY_ALGORITHM, CertificateRequest
from domain.application.issuing import GroupCommit, Ticket, TicketState
from domain.application.ports import WriteLocks
from domain.application.store import (
    MAX_SAVE_ATTEMPTS,
    IssuedCertificate,
    Store,
    backoff,
    key_reused,
    too_busy,
)
from domain.model import policy, values
from domain.model.authority import CertificateAuthority
from domain.model.ca_rules import no_quota_left
from domain.model.certificate import Certificate, IssuanceRequest, IssuedFacts, issuance_request_id
from domain.model.certificate_facts import load_certificate
from domain.model.constraints import check_names
from domain.model.errors import PCAError, QuotaError, SANError, ValidationError
from domain.model.policy import DEFAULT_PROFILE, CertificateProfile, NamesFrom
from domain.model.validation import display_name, normalize_sans, normalize_subject
from domain.model.values import SAN, CertificateType, KeyAlgorithm, RequestContext, SANType
from domain.pki import x509 as certs

# What issuance decided for a certificate, apart from what its signed DER says.
_DECIDED = (
    "ca_id",
    "type",
    "name",
    "subject",
    "sans",
    "key_algorithm",
    "key_id",
    "include_crl",
    "profile",
    "profile_version",
)


class Issuance:
    """Issuance for every CA of one process, with the caches that keep it cheap."""

    def __init__(self, store: Store, write_locks: WriteLocks) -> None:
        self._store = store
        self._write_locks = write_locks
        self._issuers: dict[UUID, CertificateAuthority] = {}
        self._parsed_issuers: dict[bytes, x509.Certificate] = {}
        self._group_commits: dict[UUID, GroupCommit] = {}
        self._guard = threading.Lock()

    def issue_one(
        self, ctx: RequestContext, ca_id: UUID, request: CertificateRequest
    ) -> IssuedCertificate:
        """One certificate, or its error raised; a CA that cannot issue refuses before
        anything is signed."""
        ctx.scope.check(ca_id)
        now = self._store.clock()
        self._issuer_for(ca_id, now, 1).check_can_issue(now)
        (outcome,) = self.issue(ctx, ca_id, [request])
        if isinstance(outcome, PCAError):
            raise outcome
        return outcome

    def issue(
        self, ctx: RequestContext, ca_id: UUID, requests: Sequence[CertificateRequest]
    ) -> list[IssuedCertificate | PCAError]:
        """One outcome per request, in order (see PrivateCA.issue_certificates)."""
        ctx.scope.check(ca_id)
        now = self._store.clock()
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

    def forget(self, ca_id: UUID) -> None:
        """Drop the cached copy of a CA that another command changed."""
        self._issuers.pop(ca_id, None)

    def _issuer_for(self, ca_id: UUID, now: dt.datetime, wanted: int) -> CertificateAuthority:
        """The CA to check and sign requests with: the cached copy, unless it would refuse
        them (not issuing, or fewer than ``wanted`` units left). The cache may be behind
        another process (quota assigned, CA re-enabled there), so a refusal is decided on a
        fresh load; a stale permission is harmless, as the leader checks again when saving."""
        ca = self._cached_issuer(ca_id)
        try:
            ca.check_can_sign(now)
        except PCAError:
            return self._store.get_ca(ca_id)
        return ca if ca.quota_remaining >= wanted else self._store.get_ca(ca_id)

    def _cached_issuer(self, ca_id: UUID) -> CertificateAuthority:
        """The CA as last saved by this process's issuance, else freshly loaded.

        Issuance always saves the CA along with its certificates, so a stale copy fails
        that save on its version, and is then reloaded: the cache cannot let a rule slip.
        """
        ca = self._issuers.get(ca_id)
        if ca is None:
            ca = self._issuers[ca_id] = self._store.get_ca(ca_id)
        return ca

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
            ctx.scope.check(ca.id, request.profile or DEFAULT_PROFILE)
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
        return Ticket(ctx, request, facts, sealed_key, ca.generation)

    def _settled(self, ca_id: UUID, ticket: Ticket) -> IssuedCertificate | PCAError:
        if ticket.certificate is not None:
            chain = self._store.chain_der(ca_id, ticket.certificate.certificate_der)
            return IssuedCertificate(ticket.certificate, chain, ticket.position)
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
    ) -> tuple[IssuedFacts, object | None]:
        """Check the request against its profile (before any key is made), then sign."""
        checked = _Checked.of(ca, request, now)
        profile = checked.profile
        public_key, algorithm, key_id, sealed_key = self._leaf_key(request, profile, checked.csr)
        ca_der, ca_key = ca.signing_identity()
        usages = certs.Usages(profile.policy.key_usage, profile.policy.extended_key_usage)
        leaf = certs.LeafProfile(
            request.type, checked.subject, checked.sans, checked.include_crl, usages
        )
        certificate = certs.build_leaf(
            public_key,
            leaf,
            self._issuer_certificate(ca_der),
            self._store.signers.signing_key(ca_key),
            checked.window,
            self._store.urls(ca.id, ca.generation),
        )
        facts = IssuedFacts.of(
            certificate,
            ca_id=ca.id,
            type=request.type,
            name=display_name(request.name) or checked.subject.common_name,
            subject=checked.subject,
            sans=checked.sans,
            key_algorithm=algorithm,
            key_id=key_id,
            include_crl=checked.include_crl,
            profile=profile.name,
            profile_version=profile.version,
        )
        return facts, sealed_key

    def _issuer_certificate(self, ca_der: bytes) -> x509.Certificate:
        """The CA's parsed certificate, by its DER: a key rollover brings a new one."""
        parsed = self._parsed_issuers.get(ca_der)
        if parsed is None:
            parsed = self._parsed_issuers[ca_der] = load_certificate(ca_der)
        return parsed

    def _leaf_key(
        self,
        request: CertificateRequest,
        profile: CertificateProfile,
        csr: x509.CertificateSigningRequest | None,
    ) -> tuple[CertificatePublicKeyTypes, KeyAlgorithm, str | None, object | None]:
        """The public key to certify (the ``csr``'s if given), its algorithm, and, for a key
        the service makes, its key id and sealed form; the profile's key algorithms are
        checked first."""
        if csr is not None:
            if request.key_algorithm is not None:
                raise ValidationError(
                    "Give either key_algorithm (the server makes the key) or csr, not both.",
                    field="key_algorithm",
                )
            public_key = csr.public_key()
            algorithm = certs.key_algorithm_of(public_key)
            policy.check_key_algorithm(profile, algorithm, "csr")
            return public_key, algorithm, None, None
        algorithm = request.key_algorithm or policy.key_algorithm_for(
            profile, DEFAULT_LEAF_KEY_ALGORITHM
        )
        policy.check_key_algorithm(profile, algorithm, "key_algorithm")
        key = certs.generate_private_key(algorithm)
        key_id = f"leaf-{uuid4()}"
        return key.public_key(), algorithm, key_id, self._store.keys.seal(key_id, key)

    def _group_commit(self, ca_id: UUID) -> GroupCommit:
        with self._guard:
            group = self._group_commits.get(ca_id)
            if group is None:
                group = self._group_commits[ca_id] = GroupCommit(self._record_group)
            return group

    def _record_group(self, tickets: list[Ticket]) -> None:
        """Save quota units, certificates, claims and the sealed keys they name at once,
        retrying conflicts with the signatures already made.

        Only the keys of the certificates in an attempt go with it (Store.save), so a
        refused ticket's key is never stored.
        """
        ca_id = tickets[0].facts.ca_id
        pending = tickets
        for attempt in range(MAX_SAVE_ATTEMPTS):
            with self._store.ca_lock(ca_id), self._write_locks.hold(ca_id):
                ca = self._current_issuer(ca_id)
                for ticket in pending:
                    self._sign_again_if_rolled_over(ca, ticket)
                staged = _Staged.of(ca, pending, self._store.clock())
                if not staged.recorded:
                    staged.settle(0)
                    return
                try:
                    outcome = self._store.save(
                        ca_id, ca, *staged.aggregates(), keys=staged.sealed_keys()
                    )
                except IntegrityError:
                    self.forget(ca_id)
                    pending = [ticket for ticket in pending if not self._claimed_first(ticket)]
                except BaseException:
                    self.forget(ca_id)  # it holds changes that were not saved
                    raise
                else:
                    staged.settle(outcome.position)
                    return
            backoff(attempt)
        raise too_busy()

    def _sign_again_if_rolled_over(self, ca: CertificateAuthority, ticket: Ticket) -> None:
        """A ticket signed with a key that another process rolled over meanwhile is signed
        again by the current key, for the same public key and window, before it is saved:
        once a rollover is saved, every certificate recorded after it carries the new key."""
        if ticket.generation == ca.generation:
            return
        facts = ticket.facts
        ca_der, ca_key = ca.signing_identity()
        policy = ca.issuing_profile(facts.profile).policy  # its version is checked at save
        usages = certs.Usages(policy.key_usage, policy.extended_key_usage)
        certificate = certs.build_leaf(
            x509.load_der_x509_certificate(facts.certificate_der).public_key(),
            certs.LeafProfile(facts.type, facts.subject, facts.sans, facts.include_crl, usages),
            self._issuer_certificate(ca_der),
            self._store.signers.signing_key(ca_key),
            (facts.not_before, facts.not_after),
            self._store.urls(ca.id, ca.generation),
        )
        kept = {name: getattr(facts, name) for name in _DECIDED}
        ticket.facts = IssuedFacts.of(certificate, **kept)
        ticket.generation = ca.generation

    def _current_issuer(self, ca_id: UUID) -> CertificateAuthority:
        """The cached CA brought up to date (under the lock) with the events other
        processes saved since: applying those few is far cheaper than a reload."""
        ca = self._cached_issuer(ca_id)
        for event in self._store.app.events.get(ca_id, gt=ca.version):
            assert isinstance(event, CertificateAuthority.Event)
            mutated = event.mutate(ca)
            assert isinstance(mutated, CertificateAuthority)
            ca = mutated
        self._issuers[ca_id] = ca
        return ca

    def _claimed_first(self, ticket: Ticket) -> bool:
        """Whether another request recorded this ticket's idempotency key (it repeats)."""
        key = ticket.request.idempotency_key
        if key is None or not self._store.holds(issuance_request_id(ticket.facts.ca_id, key)):
            return False
        ticket.repeated()
        return True

    def _find_repeated(self, ca_id: UUID, request: CertificateRequest) -> IssuedCertificate | None:
        assert request.idempotency_key is not None
        claim = self._store.find(issuance_request_id(ca_id, request.idempotency_key))
        if claim is None:
            return None
        assert isinstance(claim, IssuanceRequest)
        if claim.fingerprint != request.fingerprint():
            raise key_reused()
        certificate = self._store.get_certificate(claim.certificate_id)
        # The claim's own position is not at hand; the log's head is at or after it, so a
        # reader waiting for it also sees the first issuance.
        chain = self._store.chain_der(ca_id, certificate.certificate_der)
        return IssuedCertificate(certificate, chain, self._store.head())


@dataclass(frozen=True)
class _Checked:
    """A request that passed its profile and the CA's name constraints, with what they
    decided: the names, the subject (fixed fields set), the window and the CRL choice."""

    profile: CertificateProfile
    csr: x509.CertificateSigningRequest | None
    subject: values.Subject
    sans: tuple[SAN, ...]
    window: tuple[dt.datetime, dt.datetime]
    include_crl: bool

    @classmethod
    def of(
        cls, ca: CertificateAuthority, request: CertificateRequest, now: dt.datetime
    ) -> _Checked:
        """PolicyError (or another PCAError) at the first rule the request breaks."""
        profile = ca.issuing_profile(request.profile or DEFAULT_PROFILE)
        csr = certs.load_csr(request.csr_pem) if request.csr_pem is not None else None
        subject = normalize_subject(request.subject)
        requested_sans: Sequence[SAN] = request.sans
        if profile.policy.names_from is NamesFrom.CSR:
            subject, requested_sans = _names_from_csr(profile, request, subject, csr)
        sans = _sans_for(request.type, subject.common_name, requested_sans)
        policy.check_request(profile, request.type, subject, sans)
        check_names(ca.name_constraints, sans, subject.common_name)
        has_end = request.not_after is not None
        decided = policy.decide(
            profile, subject, request.validity_days, has_end, request.include_crl
        )
        window = ca.leaf_window(now, decided.validity_days, request.not_after)
        policy.check_validity(profile, window[1] - now, _validity_field(request))
        return cls(profile, csr, decided.subject, sans, window, decided.include_crl)


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
        try:
            ca.check_profile_current(ticket.facts.profile, ticket.facts.profile_version)
        except PCAError as error:
            self.refused.append((ticket, error))
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

    def sealed_keys(self) -> dict[str, object]:
        """The sealed keys, by key id, of the certificates this attempt records."""
        return {
            ticket.facts.key_id: ticket.sealed_key
            for ticket, _ in self.recorded
            if ticket.facts.key_id is not None and ticket.sealed_key is not None
        }

    def settle(self, position: int) -> None:
        for ticket, certificate in self.recorded:
            ticket.recorded(certificate, position)
        for ticket in self.twins:
            ticket.repeated()
        for ticket, error in self.refused:
            ticket.failed(error)


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


def _names_from_csr(
    profile: CertificateProfile,
    request: CertificateRequest,
    subject: values.Subject,
    csr: x509.CertificateSigningRequest | None,
) -> tuple[values.Subject, tuple[SAN, ...]]:
    """The subject and SANs under a profile that takes names from the CSR."""
    found = None
    if csr is not None:
        csr_common_name, csr_sans = certs.csr_names(csr)
        found = (csr_common_name, normalize_sans(request.type, csr_sans))
    body_sans = normalize_sans(request.type, request.sans)
    common_name, sans = policy.names_from_csr(profile, subject.common_name, body_sans, found)
    return normalize_subject(dataclasses.replace(subject, common_name=common_name)), sans


def _validity_field(request: CertificateRequest) -> str:
    return "validity_days" if request.not_after is None else "not_after"
