"""Typed command inputs for the application service, their defaults, and their builders.

Every face (HTTP, CLI, quickstart) builds its commands here, from values it has parsed,
so a CA or a certificate requested through any of them gets the same defaults.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from domain.model.constraints import NameConstraints, name_constraints
from domain.model.errors import ValidationError
from domain.model.validation import parse_san_list
from domain.model.values import (
    SAN,
    CAKind,
    CertificateType,
    KeyAlgorithm,
    RevocationReason,
    Subject,
)

DEFAULT_CA_KEY_ALGORITHM = KeyAlgorithm.EC_P256
DEFAULT_LEAF_KEY_ALGORITHM = KeyAlgorithm.EC_P256  # when neither an algorithm nor a CSR is given
DEFAULT_INCLUDED_CERTIFICATES = 0
DEFAULT_REVOCATION_REASON = RevocationReason.UNSPECIFIED
INCLUDE_CRL_BY_DEFAULT = True


@dataclass(frozen=True)
class CADefaults:
    """The lifetime of a CA's certificate and its service period when none is given."""

    validity_years: int
    service_days: int


CA_DEFAULTS = {
    CAKind.ROOT: CADefaults(validity_years=20, service_days=3650),
    CAKind.INTERMEDIATE: CADefaults(validity_years=10, service_days=365),
}


@dataclass(frozen=True)
class CAProfile:
    """What an operator chooses when creating a CA."""

    subject: Subject
    key_algorithm: KeyAlgorithm
    validity_years: int
    service_days: int


@dataclass(frozen=True)
class CertificateRequest:
    """A request for one end-entity certificate.

    Exactly one of ``key_algorithm`` (the server generates and keeps the key) and ``csr_pem``
    (the requester keeps the key) is set.
    """

    type: CertificateType
    subject: Subject
    validity_days: int | None  # exactly one of validity_days and not_after
    sans: tuple[SAN, ...] = ()
    key_algorithm: KeyAlgorithm | None = None
    csr_pem: str | None = None
    name: str | None = None
    include_crl: bool = INCLUDE_CRL_BY_DEFAULT
    idempotency_key: str | None = None
    not_after: dt.datetime | None = None
    profile: str | None = None  # None: the CA's default profile

    def fingerprint(self) -> str:
        """SHA-256 over the parameters that define the certificate (not the idempotency key)."""
        canonical = {
            "type": self.type.value,
            "subject": [
                self.subject.common_name,
                self.subject.organization,
                self.subject.organizational_unit,
                self.subject.locality,
                self.subject.state,
                self.subject.country,
            ],
            "validity_days": self.validity_days,
            "sans": [[san.type.value, san.value] for san in self.sans],
            "key_algorithm": self.key_algorithm.value if self.key_algorithm else None,
            "csr": self.csr_pem.strip() if self.csr_pem else None,
            "name": self.name,
            "include_crl": self.include_crl,
        }
        if self.not_after is not None:  # absent otherwise: stored fingerprints stay valid
            canonical["not_after"] = self.not_after.isoformat()
        if self.profile is not None:
            canonical["profile"] = self.profile
        encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(encoded).hexdigest()


def ca_profile(
    kind: CAKind,
    subject: Subject,
    key_algorithm: str | None = None,
    validity_years: int | None = None,
    service_days: int | None = None,
) -> CAProfile:
    """The profile of a new ``kind`` CA; what is not given (None) takes the kind's default."""
    defaults = CA_DEFAULTS[kind]
    return CAProfile(
        subject,
        KeyAlgorithm(key_algorithm) if key_algorithm else DEFAULT_CA_KEY_ALGORITHM,
        defaults.validity_years if validity_years is None else validity_years,
        defaults.service_days if service_days is None else service_days,
    )


def ca_name_constraints(
    kind: CAKind, permitted: Sequence[tuple[str, str]], excluded: Sequence[tuple[str, str]]
) -> NameConstraints:
    """A new CA's name constraints from ``(type, value)`` pairs; only intermediates, which
    sign leaves, take them."""
    constraints = name_constraints(permitted, excluded)
    if constraints and kind is not CAKind.INTERMEDIATE:
        raise ValidationError(
            "name_constraints apply to intermediate CAs, which sign leaves; leave them out"
            " for a root.",
            field="name_constraints",
        )
    return constraints


def certificate_request(
    certificate_type: str,
    subject: Subject,
    validity_days: int | None,
    *,
    not_after: dt.datetime | None = None,
    sans: Sequence[tuple[str, str]] = (),
    key_algorithm: str | None = None,
    csr_pem: str | None = None,
    name: str | None = None,
    include_crl: bool | None = None,
    idempotency_key: str | None = None,
    profile: str | None = None,
) -> CertificateRequest:
    """A certificate request from a face's parsed values (type and algorithm by name, SANs
    as ``(type, value)`` pairs); None takes the default. SANError names an unknown SAN type
    (field ``sans[i].type``)."""
    return CertificateRequest(
        type=CertificateType(certificate_type),
        subject=subject,
        validity_days=validity_days,
        not_after=not_after,
        sans=tuple(parse_san_list(sans)),
        key_algorithm=KeyAlgorithm(key_algorithm) if key_algorithm else None,
        csr_pem=csr_pem,
        name=name,
        include_crl=INCLUDE_CRL_BY_DEFAULT if include_crl is None else include_crl,
        idempotency_key=idempotency_key,
        profile=profile,
    )
