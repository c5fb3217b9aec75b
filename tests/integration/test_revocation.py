"""Revoking and deleting end-entity certificates: immediate, final, key destroyed."""

from __future__ import annotations

import pytest

from domain.application.service import PrivateCA
from domain.model.errors import CertificateStateError, NotFoundError
from domain.model.values import CertificateStatus, RevocationReason
from tests.builders import OPERATOR, enabled_intermediate, enabled_root, issue, server_request
from tests.conftest import SettableClock


def test_revocation_is_immediate_and_records_time_and_reason(
    service: PrivateCA, clock: SettableClock
) -> None:
    certificate_id = issue(
        service, enabled_intermediate(service, enabled_root(service))
    ).certificate.id
    service.revoke_certificate(OPERATOR, certificate_id, RevocationReason.KEY_COMPROMISE)
    revoked = service.get_certificate(certificate_id)
    assert revoked.status is CertificateStatus.REVOKED
    assert revoked.revoked_at == clock.now
    assert revoked.revocation_reason is RevocationReason.KEY_COMPROMISE


def test_revocation_cannot_be_repeated_or_undone(service: PrivateCA) -> None:
    certificate_id = issue(
        service, enabled_intermediate(service, enabled_root(service))
    ).certificate.id
    service.revoke_certificate(OPERATOR, certificate_id, RevocationReason.SUPERSEDED)
    with pytest.raises(CertificateStateError, match="already revoked"):
        service.revoke_certificate(OPERATOR, certificate_id, RevocationReason.UNSPECIFIED)


def test_a_valid_certificate_cannot_be_deleted(service: PrivateCA) -> None:
    certificate_id = issue(
        service, enabled_intermediate(service, enabled_root(service))
    ).certificate.id
    with pytest.raises(CertificateStateError, match="revoke it first"):
        service.delete_certificate(OPERATOR, certificate_id)


def test_deleting_a_revoked_certificate_destroys_its_key(service: PrivateCA) -> None:
    issued = issue(service, enabled_intermediate(service, enabled_root(service))).certificate
    assert issued.key_id is not None
    service.keystore.get(issued.key_id)
    service.revoke_certificate(OPERATOR, issued.id, RevocationReason.CESSATION_OF_OPERATION)
    service.delete_certificate(OPERATOR, issued.id)
    deleted = service.get_certificate(issued.id)
    assert deleted.status is CertificateStatus.DELETED
    assert deleted.key_id is None
    with pytest.raises(NotFoundError):
        service.keystore.get(issued.key_id)
    events = list(service.events.get(issued.id))
    assert events[-1].key_destroyed  # type: ignore[attr-defined]


def test_an_expired_certificate_can_be_deleted_without_revocation(
    service: PrivateCA, clock: SettableClock
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    certificate_id = issue(service, ca_id, server_request(validity_days=1)).certificate.id
    clock.advance(days=2)
    service.delete_certificate(OPERATOR, certificate_id)
    assert service.get_certificate(certificate_id).status is CertificateStatus.DELETED


def test_deletion_cannot_be_repeated(service: PrivateCA) -> None:
    certificate_id = issue(
        service, enabled_intermediate(service, enabled_root(service))
    ).certificate.id
    service.revoke_certificate(OPERATOR, certificate_id, RevocationReason.SUPERSEDED)
    service.delete_certificate(OPERATOR, certificate_id)
    with pytest.raises(CertificateStateError, match="already deleted"):
        service.delete_certificate(OPERATOR, certificate_id)
    with pytest.raises(CertificateStateError, match="deleted"):
        service.revoke_certificate(OPERATOR, certificate_id, RevocationReason.SUPERSEDED)


def test_unknown_certificates_are_not_found(service: PrivateCA) -> None:
    missing = enabled_root(service)  # a CA id is not a certificate id
    with pytest.raises(NotFoundError, match="No certificate"):
        service.revoke_certificate(OPERATOR, missing, RevocationReason.SUPERSEDED)
