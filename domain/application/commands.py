"""Typed command inputs for the application service."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from domain.model.values import SAN, CertificateType, KeyAlgorithm, Subject


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
    validity_days: int
    sans: tuple[SAN, ...] = ()
    key_algorithm: KeyAlgorithm | None = None
    csr_pem: str | None = None
    name: str | None = None
    include_crl: bool = True
    idempotency_key: str | None = None

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
        encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(encoded).hexdigest()
