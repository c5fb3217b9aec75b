"""Small builders that walk the reference product's initial configuration in tests."""

from __future__ import annotations

from uuid import UUID

from domain.application.commands import CAProfile, CertificateRequest
from domain.application.service import IssuedCertificate, PrivateCA
from domain.model.values import (
    SAN,
    CertificateType,
    KeyAlgorithm,
    RequestContext,
    SANType,
    Subject,
)
from projections.audit.history import HistoryFilter, read_history

ADMIN = RequestContext(actor="alice (admin)", request_id="req-admin")
OPERATOR = RequestContext(actor="bob (operator)", request_id="req-operator")


def root_profile(
    key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256, service_days: int = 3650
) -> CAProfile:
    return CAProfile(
        Subject("Example Root CA", organization="Example Corp", country="DE"),
        key_algorithm,
        validity_years=20,
        service_days=service_days,
    )


def intermediate_profile(
    key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256, service_days: int = 730
) -> CAProfile:
    return CAProfile(
        Subject("Example Issuing CA", organization="Example Corp", country="DE"),
        key_algorithm,
        validity_years=10,
        service_days=service_days,
    )


def enabled_root(
    service: PrivateCA, quota: int = 100, key_algorithm: KeyAlgorithm = KeyAlgorithm.EC_P256
) -> UUID:
    """An enabled root with ``quota`` certificates in its pool."""
    root_id = service.create_root(ADMIN, root_profile(key_algorithm)).id
    service.enable_ca(ADMIN, root_id)
    if quota:
        service.purchase_quota(ADMIN, root_id, quota)
    return root_id


def enabled_intermediate(
    service: PrivateCA, root_id: UUID, remaining: int = 10, service_days: int = 730
) -> UUID:
    """An enabled intermediate under ``root_id`` with ``remaining`` quota."""
    ca_id = service.create_intermediate(
        ADMIN, root_id, intermediate_profile(service_days=service_days)
    ).id
    service.enable_ca(ADMIN, ca_id)
    if remaining:
        service.assign_quota(ADMIN, root_id, ca_id, remaining)
    return ca_id


def server_request(
    common_name: str = "www.example.com",
    validity_days: int = 90,
    key_algorithm: KeyAlgorithm | None = KeyAlgorithm.EC_P256,
) -> CertificateRequest:
    """A server certificate request for ``common_name`` with the name as DNS SAN."""
    return CertificateRequest(
        type=CertificateType.SERVER,
        subject=Subject(common_name, organization="Example Corp"),
        validity_days=validity_days,
        sans=(SAN(SANType.DNS, common_name),),
        key_algorithm=key_algorithm,
    )


def client_request(email: str = "dev@example.com") -> CertificateRequest:
    """A client certificate request identified by ``email``."""
    return CertificateRequest(
        type=CertificateType.CLIENT,
        subject=Subject("Dev Client"),
        validity_days=30,
        sans=(SAN(SANType.EMAIL, email),),
        key_algorithm=KeyAlgorithm.EC_P256,
    )


def issue(
    service: PrivateCA, ca_id: UUID, request: CertificateRequest | None = None
) -> IssuedCertificate:
    """Issue ``request`` (a default server request) as the operator."""
    return service.issue_certificate(OPERATOR, ca_id, request or server_request())


ISSUANCE_EVENTS = ("CertificateIssued", "QuotaSpent", "IssuanceRequested")


def issuance_events_after(service: PrivateCA, position: int) -> list[str]:
    """The issuance events recorded after log ``position`` (background publishing of
    CRLs and checkpoints may record others meanwhile)."""
    page = read_history(service, position, 100, HistoryFilter(types=ISSUANCE_EVENTS))
    return [item.type for item in page.items]
