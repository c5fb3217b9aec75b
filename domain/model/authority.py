"""The CertificateAuthority aggregate: lifecycle, service period and quota of a root or an
intermediate CA, with the rules of DESIGN §2.

Public methods check the rules and then trigger an event; each event's ``apply`` only assigns.
Times, keys and certificates are made by the caller and travel in the events. The read-only
rules on what a CA may sign, and the limits of its numbers, are in :mod:`domain.model.ca_rules`.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Sequence
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate

from domain.model.ca_rules import (
    MAX_QUOTA_STEP,
    MAX_SERVICE_DAYS,
    SigningRules,
    check_lifetime,
    check_range,
    no_quota_left,
)
from domain.model.certificate_facts import (
    authority_key_identifier,
    certificate_facts,
    subject_key_identifier,
)
from domain.model.constraints import UNCONSTRAINED, NameConstraints, check_policy_within
from domain.model.errors import (
    CANotEnabledError,
    CAStateError,
    LifetimeError,
    NotFoundError,
    QuotaError,
)
from domain.model.events import AuditedCreated, AuditedEvent
from domain.model.policy import (
    DEFAULT_PROFILE,
    CertificateProfile,
    IssuancePolicy,
    check_profile_name,
)
from domain.model.values import (
    CAKind,
    CAStatus,
    KeyAlgorithm,
    KeyGeneration,
    KeyRef,
    KeyStorage,
    RequestContext,
    RevocationReason,
    Subject,
)

# no_quota_left stays importable from here, where the application layer takes it from.
__all__ = ["CertificateAuthority", "no_quota_left"]


class CertificateAuthority(SigningRules, Aggregate):
    """A root (self-signed, holds the quota pool) or an intermediate (issues leaves)."""

    # Snapshots taken before keys could be retired have no such attribute: none retired.
    retired_generations: tuple[int, ...] = ()

    class CACreated(AuditedCreated):
        kind: CAKind
        parent_id: UUID | None
        subject: Subject
        key_algorithm: KeyAlgorithm
        validity_years: int
        service_days: int
        included_certificates: int
        name_constraints: NameConstraints = UNCONSTRAINED  # none in older logs

    class CAEnabled(AuditedEvent):
        key_id: str | None
        certificate_der: bytes | None
        service_until: dt.datetime | None
        # Events stored before keys could live in a token have no key_storage: software.
        key_storage: KeyStorage = KeyStorage.SOFTWARE

        def apply(self, ca: CertificateAuthority) -> None:
            ca.status = CAStatus.ENABLED
            if self.certificate_der is not None:
                ca.key_id = self.key_id
                ca.key_storage = self.key_storage
                ca.certificate_der = self.certificate_der
                ca.service_until = self.service_until

    class CAKeyRolledOver(AuditedEvent):
        """A new key and certificate under the same name; the previous ones stay, for the
        CRLs and OCSP answers about what they signed. ``link_certificates`` (roots only):
        the new key certified by the old one and the old key by the new one."""

        key_id: str
        key_storage: KeyStorage
        certificate_der: bytes
        link_certificates: tuple[bytes, ...]

        def apply(self, ca: CertificateAuthority) -> None:
            ca.previous_generations = (*ca.previous_generations, ca.current_generation)
            ca.key_id = self.key_id
            ca.key_storage = self.key_storage
            ca.certificate_der = self.certificate_der
            ca.link_certificates = tuple(self.link_certificates)

    class CAKeyRetired(AuditedEvent):
        """A previous key retired once its CA certificate expired (so has everything it
        signed): no CRL or OCSP answer is signed with it again, and its material was
        destroyed after this was saved."""

        generation: int
        key_id: str
        key_storage: KeyStorage

        def apply(self, ca: CertificateAuthority) -> None:
            ca.retired_generations = (*ca.retired_generations, self.generation)

    class CADisabled(AuditedEvent):
        def apply(self, ca: CertificateAuthority) -> None:
            ca.status = CAStatus.DISABLED

    class CAServiceRenewed(AuditedEvent):
        service_days: int
        service_until: dt.datetime

        def apply(self, ca: CertificateAuthority) -> None:
            ca.service_days = self.service_days
            ca.service_until = self.service_until

    class CARevoked(AuditedEvent):
        reason: RevocationReason
        revoked_at: dt.datetime

        def apply(self, ca: CertificateAuthority) -> None:
            ca.status = CAStatus.REVOKED
            ca.revoked_at = self.revoked_at
            ca.revocation_reason = self.reason

    class QuotaPurchased(AuditedEvent):
        count: int

        def apply(self, ca: CertificateAuthority) -> None:
            ca.quota_total += self.count
            ca.quota_available += self.count

    class QuotaAssigned(AuditedEvent):
        """Recorded on the root: ``remaining`` is the intermediate's new remaining quota."""

        intermediate_id: UUID
        previous_remaining: int
        remaining: int

        def apply(self, ca: CertificateAuthority) -> None:
            ca.quota_available -= self.remaining - self.previous_remaining

    class QuotaReceived(AuditedEvent):
        """Recorded on the intermediate in the same save as the root's ``QuotaAssigned``."""

        root_id: UUID
        remaining: int

        def apply(self, ca: CertificateAuthority) -> None:
            ca.quota_remaining = self.remaining

    class QuotaConsumed(AuditedEvent):
        """One unit spent on the certificate saved together with this event.

        Written before group commit; logs from then on use :class:`QuotaSpent`, and both
        are read (replay, read models, reports) so older logs keep their meaning.
        """

        certificate_id: UUID
        serial_number: str

        def apply(self, ca: CertificateAuthority) -> None:
            ca.quota_remaining -= 1
            ca.issued_count += 1

    class QuotaSpent(AuditedEvent):
        """One unit per certificate saved together with this event, all for one request.

        One event per request and group rather than per certificate: a batch of 1000 adds
        one event to the CA, not 1000, so the CA stays cheap to save, load and replay.
        """

        certificate_ids: list[UUID]
        serial_numbers: list[str]

        def apply(self, ca: CertificateAuthority) -> None:
            ca.quota_remaining -= len(self.certificate_ids)
            ca.issued_count += len(self.certificate_ids)

    class ProfileCreated(AuditedEvent):
        name: str
        policy: IssuancePolicy

        def apply(self, ca: CertificateAuthority) -> None:
            ca.named_profiles = {
                **ca.profiles,
                self.name: CertificateProfile(self.name, 1, self.policy),
            }

    class ProfileUpdated(AuditedEvent):
        name: str
        version: int
        policy: IssuancePolicy

        def apply(self, ca: CertificateAuthority) -> None:
            profile = CertificateProfile(self.name, self.version, self.policy)
            ca.named_profiles = {**ca.profiles, self.name: profile}

    class ProfileRetired(AuditedEvent):
        name: str

        def apply(self, ca: CertificateAuthority) -> None:
            profile = ca.profile_named(self.name)
            retired = CertificateProfile(profile.name, profile.version, profile.policy, True)
            ca.named_profiles = {**ca.profiles, self.name: retired}

    def __init__(
        self,
        kind: CAKind,
        parent_id: UUID | None,
        subject: Subject,
        key_algorithm: KeyAlgorithm,
        validity_years: int,
        service_days: int,
        included_certificates: int,
        name_constraints: NameConstraints = UNCONSTRAINED,
    ) -> None:
        self.kind = kind
        self.parent_id = parent_id
        self.subject = subject
        self.key_algorithm = key_algorithm
        self.validity_years = validity_years
        self.service_days = service_days
        self.status = CAStatus.PENDING
        self.key_id: str | None = None
        self.key_storage = KeyStorage.SOFTWARE
        self.previous_generations: tuple[KeyGeneration, ...] = ()
        self.retired_generations = ()
        self.link_certificates: tuple[bytes, ...] = ()
        self.certificate_der: bytes | None = None
        self.service_until: dt.datetime | None = None
        self.revoked_at: dt.datetime | None = None
        self.revocation_reason: RevocationReason | None = None
        self.quota_total = included_certificates
        self.quota_available = included_certificates
        self.quota_remaining = 0
        self.issued_count = 0
        self.named_profiles: dict[str, CertificateProfile] = {}  # replaced, never changed
        self.constraints = name_constraints

    def __deepcopy__(self, memo: dict[int, object]) -> CertificateAuthority:
        # The repository deep-copies cached aggregates on every load. All attributes are
        # immutable values (frozen dataclasses, enums, bytes, datetimes), so a shallow copy
        # with its own pending-event list is a deep copy, at a fraction of the cost.
        clone = copy.copy(self)
        clone.__dict__["_pending_events"] = list(self.pending_events)
        return clone

    # --- creation -------------------------------------------------------------------------

    @classmethod
    def create_root(
        cls,
        ctx: RequestContext,
        subject: Subject,
        key_algorithm: KeyAlgorithm,
        lifetime: tuple[int, int],
        included_certificates: int = 0,
    ) -> CertificateAuthority:
        """A pending root; ``lifetime`` is (validity_years, service_days)."""
        check_lifetime(*lifetime)
        check_range("included_certificates", included_certificates, 0, MAX_QUOTA_STEP)
        return cls._create_ca(
            ctx, CAKind.ROOT, None, subject, key_algorithm, lifetime, included_certificates
        )

    @classmethod
    def create_intermediate(
        cls,
        ctx: RequestContext,
        parent: CertificateAuthority,
        subject: Subject,
        key_algorithm: KeyAlgorithm,
        lifetime: tuple[int, int],
        now: dt.datetime,
        name_constraints: NameConstraints = UNCONSTRAINED,
    ) -> CertificateAuthority:
        """A pending intermediate under ``parent``, which must be an enabled root; its
        certificate will carry ``name_constraints`` (critical) and it signs only inside them."""
        check_lifetime(*lifetime)
        if parent.kind is not CAKind.ROOT:
            raise CAStateError(
                "Intermediates are created under a root CA; pass a root's id as parent_id.",
                field="parent_id",
            )
        parent.require_enabled(now)
        parent.check_child_validity(now, lifetime[0])
        return cls._create_ca(
            ctx,
            CAKind.INTERMEDIATE,
            parent.id,
            subject,
            key_algorithm,
            lifetime,
            0,
            name_constraints,
        )

    @classmethod
    def _create_ca(
        cls,
        ctx: RequestContext,
        kind: CAKind,
        parent_id: UUID | None,
        subject: Subject,
        key_algorithm: KeyAlgorithm,
        lifetime: tuple[int, int],
        included_certificates: int,
        name_constraints: NameConstraints = UNCONSTRAINED,
    ) -> CertificateAuthority:
        return cls._create(
            cls.CACreated,
            id=uuid4(),
            actor=ctx.actor,
            request_id=ctx.request_id,
            kind=kind,
            parent_id=parent_id,
            subject=subject,
            key_algorithm=key_algorithm,
            validity_years=lifetime[0],
            service_days=lifetime[1],
            included_certificates=included_certificates,
            name_constraints=name_constraints,
        )

    # --- lifecycle ------------------------------------------------------------------------

    def enable(
        self,
        ctx: RequestContext,
        now: dt.datetime,
        key: KeyRef | None = None,
        certificate_der: bytes | None = None,
    ) -> None:
        """Enable; the first time, ``key`` and ``certificate_der`` must be given."""
        if self.status is CAStatus.REVOKED:
            raise CAStateError("This CA was revoked; a revoked CA cannot be enabled again.")
        if self.status is CAStatus.ENABLED:
            raise CAStateError("This CA is already enabled.")
        if self.needs_certificate != (certificate_der is not None):
            raise CAStateError("A CA gets its key and certificate at its first enablement only.")
        service_until = None
        if certificate_der is not None:  # the service never outlives the CA's certificate
            service_end = now + dt.timedelta(days=self.service_days)
            service_until = min(service_end, certificate_facts(certificate_der).not_after)
        self.trigger_event(
            self.CAEnabled,
            actor=ctx.actor,
            request_id=ctx.request_id,
            key_id=key.key_id if key else None,
            certificate_der=certificate_der,
            service_until=service_until,
            key_storage=key.storage if key else KeyStorage.SOFTWARE,
        )

    def roll_over_key(
        self, ctx: RequestContext, key: KeyRef, certificate_der: bytes, links: tuple[bytes, ...]
    ) -> None:
        """Sign from now on with ``key``, certified by ``certificate_der`` (same name, new
        key); ``links`` are a root's link certificates."""
        if self.status is CAStatus.REVOKED:
            raise CAStateError("This CA was revoked; a revoked CA's key cannot be rolled over.")
        self.signing_identity()  # CANotEnabledError before the first key
        self.trigger_event(
            self.CAKeyRolledOver,
            actor=ctx.actor,
            request_id=ctx.request_id,
            key_id=key.key_id,
            key_storage=key.storage,
            certificate_der=certificate_der,
            link_certificates=links,
        )

    @property
    def generation(self) -> int:
        """The number of the key the CA signs with now (1 until its first rollover)."""
        return len(self.previous_generations) + 1

    @property
    def current_generation(self) -> KeyGeneration:
        """The key the CA signs with now, and its certificate."""
        certificate_der, key = self.signing_identity()
        return KeyGeneration(self.generation, key, certificate_der)

    @property
    def generations(self) -> tuple[KeyGeneration, ...]:
        """Every key the CA has, oldest first (none before its first enablement); retired
        keys are gone."""
        if self.certificate_der is None:
            return ()
        kept = (g for g in self.previous_generations if g.number not in self.retired_generations)
        return (*kept, self.current_generation)

    def retire_key(self, ctx: RequestContext, number: int, now: dt.datetime) -> KeyGeneration:
        """Retire the previous key ``number`` and return it, for its material to be
        destroyed. Refused (CAStateError) for the current key, and while its CA certificate
        is valid: nothing a key signed outlives its certificate, so its end is when the
        last certificate it signed has expired at the latest."""
        if number == self.generation:
            raise CAStateError(
                f"Key generation {number} is the one this CA signs with; roll the key over "
                "first, and retire this generation once its certificate has expired."
            )
        if number in self.retired_generations:
            raise CAStateError(f"Key generation {number} of this CA is already retired.")
        generation = self.key_generation(number)
        not_after = certificate_facts(generation.certificate_der).not_after
        if now < not_after:
            raise CAStateError(
                f"Key generation {number} may still be needed: what it signed may be valid "
                f"until {not_after.isoformat()}; retire it after that."
            )
        self.trigger_event(
            self.CAKeyRetired,
            actor=ctx.actor,
            request_id=ctx.request_id,
            generation=number,
            key_id=generation.key.key_id,
            key_storage=generation.key.storage,
        )
        return generation

    def generation_signing(self, issued_der: bytes) -> KeyGeneration:
        """The generation whose key signed ``issued_der`` (by its authorityKeyIdentifier);
        the current one if none matches."""
        wanted = authority_key_identifier(issued_der)
        for generation in self.generations:
            if subject_key_identifier(generation.certificate_der) == wanted:
                return generation
        return self.current_generation

    def key_generation(self, number: int) -> KeyGeneration:
        """Generation ``number``; NotFoundError if the CA has none of that number."""
        for generation in self.generations:
            if generation.number == number:
                return generation
        raise NotFoundError(f"CA {self.id} has no key generation {number}.")

    def disable(self, ctx: RequestContext) -> None:
        """Stop issuing (and assigning) until enabled again."""
        if self.status is not CAStatus.ENABLED:
            raise CAStateError(
                f"Only an enabled CA can be disabled; this one is {self.status.value}."
            )
        self.trigger_event(self.CADisabled, actor=ctx.actor, request_id=ctx.request_id)

    def renew_service(self, ctx: RequestContext, service_days: int, now: dt.datetime) -> None:
        """Extend the service period by ``service_days`` from its end (or from now if over),
        never past the CA's certificate: an expired CA, or an extension that would outlive
        the certificate, is refused with what to do instead."""
        check_range("service_days", service_days, 1, MAX_SERVICE_DAYS)
        if self.status is CAStatus.REVOKED:
            raise CAStateError("A revoked CA cannot be renewed; revocation is final.")
        if self.service_until is None:
            raise CANotEnabledError("Enable the CA first; its service period starts then.")
        not_after = self.not_after
        assert not_after is not None  # a CA with a service period has its certificate
        if now >= not_after:
            raise CAStateError(
                f"The CA's certificate expired on {not_after.isoformat()}; an expired CA cannot"
                " be renewed (its certificate would have to be re-issued). Create and enable a"
                " new CA to take its place and assign its quota there."
            )
        start = max(now, self.service_until)
        if start + dt.timedelta(days=service_days) > not_after:
            left = (not_after - start).days
            advice = (
                f"ask for at most {left} days"
                if left >= 1
                else "it already runs to within a day of it and cannot be extended further"
            )
            raise LifetimeError(
                f"service_days {service_days} would run the service period past the CA's"
                f" certificate, which ends on {not_after.isoformat()}; {advice}.",
                field="service_days",
            )
        self.trigger_event(
            self.CAServiceRenewed,
            actor=ctx.actor,
            request_id=ctx.request_id,
            service_days=service_days,
            service_until=start + dt.timedelta(days=service_days),
        )

    def revoke(self, ctx: RequestContext, reason: RevocationReason, now: dt.datetime) -> None:
        """Revoke an intermediate's certificate: final, and it stops issuing."""
        if self.kind is CAKind.ROOT:
            raise CAStateError("A root CA cannot be revoked here; disable it instead.")
        if self.status is CAStatus.REVOKED:
            raise CAStateError("This CA is already revoked; revocation is final.")
        if self.certificate_der is None:
            raise CAStateError("This CA has no certificate yet; there is nothing to revoke.")
        self.trigger_event(
            self.CARevoked,
            actor=ctx.actor,
            request_id=ctx.request_id,
            reason=reason,
            revoked_at=now,
        )

    # --- quota ----------------------------------------------------------------------------

    def purchase_quota(self, ctx: RequestContext, count: int) -> None:
        """Add ``count`` certificates to a root's pool."""
        check_range("count", count, 1, MAX_QUOTA_STEP)
        if self.kind is not CAKind.ROOT:
            raise CAStateError("Quota is purchased for a root CA, then assigned to intermediates.")
        if self.status is CAStatus.REVOKED:
            raise CAStateError("A revoked CA cannot receive quota.")
        self.trigger_event(
            self.QuotaPurchased, actor=ctx.actor, request_id=ctx.request_id, count=count
        )

    def assign_quota(
        self,
        ctx: RequestContext,
        intermediate: CertificateAuthority,
        remaining: int,
        now: dt.datetime,
    ) -> None:
        """Set ``intermediate``'s remaining quota; the difference moves to or from the pool."""
        check_range("remaining", remaining, 0, MAX_QUOTA_STEP)
        if intermediate.parent_id != self.id:
            raise CAStateError(
                f"CA {intermediate.id} is not an intermediate of root {self.id}; "
                "assign quota from its own root.",
                field="intermediate_id",
            )
        self.require_enabled(now)
        intermediate.require_enabled(now)
        previous = intermediate.quota_remaining
        needed = remaining - previous
        if needed > self.quota_available:
            raise QuotaError(
                f"The root has {self.quota_available} unassigned certificates but raising the "
                f"intermediate from {previous} to {remaining} needs {needed}; purchase more "
                "quota or assign less.",
                field="remaining",
            )
        self.trigger_event(
            self.QuotaAssigned,
            actor=ctx.actor,
            request_id=ctx.request_id,
            intermediate_id=intermediate.id,
            previous_remaining=previous,
            remaining=remaining,
        )
        intermediate.trigger_event(
            intermediate.QuotaReceived,
            actor=ctx.actor,
            request_id=ctx.request_id,
            root_id=self.id,
            remaining=remaining,
        )

    @property
    def quota_assigned(self) -> int:
        """Certificates a root has moved from its pool to its intermediates."""
        return self.quota_total - self.quota_available

    # --- issuance -------------------------------------------------------------------------

    def spend_quota(
        self, ctx: RequestContext, spent: Sequence[tuple[UUID, str]], now: dt.datetime
    ) -> None:
        """Spend one unit per (certificate id, serial number), re-checking every rule."""
        self.check_can_sign(now)
        if len(spent) > self.quota_remaining:
            raise no_quota_left()
        self.trigger_event(
            self.QuotaSpent,
            actor=ctx.actor,
            request_id=ctx.request_id,
            certificate_ids=[certificate_id for certificate_id, _ in spent],
            serial_numbers=[serial_number for _, serial_number in spent],
        )

    # --- profiles -------------------------------------------------------------------------

    @property
    def name_constraints(self) -> NameConstraints:
        """The subtrees this CA signs names in (a snapshot older than them has none)."""
        found: NameConstraints = self.__dict__.get("constraints", UNCONSTRAINED)
        return found

    @property
    def profiles(self) -> dict[str, CertificateProfile]:
        """Profiles made by events, by name (a snapshot taken before profiles existed
        has none)."""
        named: dict[str, CertificateProfile] = self.__dict__.get("named_profiles", {})
        return named

    def profile_named(self, name: str) -> CertificateProfile:
        """The profile ``name``, retired or not; every intermediate has ``default``."""
        profile = self.profiles.get(name)
        if profile is not None:
            return profile
        if name == DEFAULT_PROFILE and self.kind is CAKind.INTERMEDIATE:
            return CertificateProfile(DEFAULT_PROFILE)
        raise NotFoundError(
            f"CA {self.id} has no profile {name!r}; its profiles are: "
            f"{', '.join(p.name for p in self.all_profiles())}.",
            field="profile",
        )

    def issuing_profile(self, name: str) -> CertificateProfile:
        """The profile a request names, if it may still be used."""
        profile = self.profile_named(name)
        if profile.retired:
            raise CAStateError(
                f"Profile {name!r} of CA {self.id} is retired; request under another profile.",
                field="profile",
            )
        return profile

    def check_profile_current(self, name: str, version: int) -> None:
        """Raise if profile ``name`` changed or retired since a request was checked
        against its ``version`` (the check and the save may be in different processes)."""
        profile = self.issuing_profile(name)
        if profile.version != version:
            raise CAStateError(
                f"Profile {name!r} changed to version {profile.version} while this request"
                " was being signed; send it again to have it checked against the new rules.",
                field="profile",
            )

    def all_profiles(self) -> list[CertificateProfile]:
        """Every profile of an intermediate, the default first, then by name."""
        if self.kind is not CAKind.INTERMEDIATE:
            return []
        named = dict(sorted(self.profiles.items()))
        default = named.pop(DEFAULT_PROFILE, CertificateProfile(DEFAULT_PROFILE))
        return [default, *named.values()]

    def create_profile(self, ctx: RequestContext, name: str, policy: IssuancePolicy) -> None:
        """A new profile on an intermediate; ``default`` exists already (update it)."""
        check_profile_name(name)
        if self.kind is not CAKind.INTERMEDIATE:
            raise CAStateError(
                "Profiles belong to intermediates, which issue; a root issues no leaves."
            )
        check_policy_within(self.name_constraints, policy)
        if name == DEFAULT_PROFILE or name in self.profiles:
            raise CAStateError(
                f"CA {self.id} already has a profile {name!r}; update it instead, or choose"
                " another name.",
                field="name",
            )
        self.trigger_event(
            self.ProfileCreated,
            actor=ctx.actor,
            request_id=ctx.request_id,
            name=name,
            policy=policy,
        )

    def update_profile(self, ctx: RequestContext, name: str, policy: IssuancePolicy) -> None:
        """A new version of profile ``name``; certificates keep the version they had."""
        profile = self.issuing_profile(name)
        check_policy_within(self.name_constraints, policy)
        self.trigger_event(
            self.ProfileUpdated,
            actor=ctx.actor,
            request_id=ctx.request_id,
            name=name,
            version=profile.version + 1,
            policy=policy,
        )

    def retire_profile(self, ctx: RequestContext, name: str) -> None:
        """Stop issuing under profile ``name`` (final); ``default`` cannot be retired."""
        self.issuing_profile(name)
        if name == DEFAULT_PROFILE:
            raise CAStateError(
                "The default profile cannot be retired; update it to narrow what it allows.",
                field="name",
            )
        self.trigger_event(
            self.ProfileRetired, actor=ctx.actor, request_id=ctx.request_id, name=name
        )
