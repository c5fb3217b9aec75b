"""CA hierarchy and lifecycle rules (DESIGN §2), on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from uuid import uuid4

import pytest
from cryptography import x509

from domain.application.commands import CAProfile
from domain.application.service import PrivateCA
from domain.model.errors import (
    CANotEnabledError,
    CAStateError,
    LifetimeError,
    NotFoundError,
    ServicePeriodError,
    SubjectError,
    ValidationError,
)
from domain.model.values import CAKind, CAStatus, KeyAlgorithm, RevocationReason, Subject
from tests.builders import (
    ADMIN,
    enabled_intermediate,
    enabled_root,
    intermediate_profile,
    issue,
    root_profile,
    server_request,
)
from tests.conftest import SettableClock


def test_a_new_root_is_pending_and_has_no_certificate(service: PrivateCA) -> None:
    root_id = service.create_root(ADMIN, root_profile(), included_certificates=10).id
    root = service.get_ca(root_id)
    assert root.status is CAStatus.PENDING
    assert root.kind is CAKind.ROOT
    assert root.certificate_der is None
    assert root.quota_total == 10


def test_enabling_a_root_makes_a_self_signed_ca_certificate(service: PrivateCA) -> None:
    root = service.get_ca(enabled_root(service))
    assert root.status is CAStatus.ENABLED
    assert root.certificate_der is not None
    certificate = x509.load_der_x509_certificate(root.certificate_der)
    certificate.verify_directly_issued_by(certificate)
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca


def test_an_intermediate_needs_an_enabled_root(service: PrivateCA) -> None:
    root_id = service.create_root(ADMIN, root_profile()).id
    with pytest.raises(CANotEnabledError, match="enable it first"):
        service.create_intermediate(ADMIN, root_id, intermediate_profile())


def test_an_intermediate_cannot_be_created_under_an_intermediate(service: PrivateCA) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service))
    with pytest.raises(CAStateError, match="under a root CA"):
        service.create_intermediate(ADMIN, intermediate_id, intermediate_profile())


def test_an_unknown_parent_is_reported_by_field(service: PrivateCA) -> None:
    with pytest.raises(NotFoundError) as caught:
        service.create_intermediate(ADMIN, uuid4(), intermediate_profile())
    assert caught.value.field == "parent_id"


def test_an_intermediate_may_not_outlive_its_root(service: PrivateCA) -> None:
    root_id = enabled_root(service)
    too_long = CAProfile(Subject("Long Issuing CA"), KeyAlgorithm.EC_P256, 30, 365)
    with pytest.raises(LifetimeError, match="choose fewer years"):
        service.create_intermediate(ADMIN, root_id, too_long)


def test_intermediate_certificate_is_signed_by_the_root_with_path_length_zero(
    service: PrivateCA,
) -> None:
    root_id = enabled_root(service)
    intermediate = service.get_ca(enabled_intermediate(service, root_id))
    root = service.get_ca(root_id)
    assert intermediate.certificate_der is not None
    assert root.certificate_der is not None
    certificate = x509.load_der_x509_certificate(intermediate.certificate_der)
    certificate.verify_directly_issued_by(x509.load_der_x509_certificate(root.certificate_der))
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.path_length == 0


def test_disable_then_enable_keeps_the_same_key_and_certificate(service: PrivateCA) -> None:
    root_id = enabled_root(service)
    before = service.get_ca(root_id).certificate_der
    service.disable_ca(ADMIN, root_id)
    assert service.get_ca(root_id).status is CAStatus.DISABLED
    service.enable_ca(ADMIN, root_id)
    after = service.get_ca(root_id)
    assert after.status is CAStatus.ENABLED
    assert after.certificate_der == before


def test_enabling_twice_is_refused(service: PrivateCA) -> None:
    root_id = enabled_root(service)
    with pytest.raises(CAStateError, match="already enabled"):
        service.enable_ca(ADMIN, root_id)


def test_disabling_a_pending_ca_is_refused(service: PrivateCA) -> None:
    root_id = service.create_root(ADMIN, root_profile()).id
    with pytest.raises(CAStateError, match="Only an enabled CA"):
        service.disable_ca(ADMIN, root_id)


def test_a_disabled_intermediate_does_not_issue(service: PrivateCA) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service))
    service.disable_ca(ADMIN, intermediate_id)
    with pytest.raises(CANotEnabledError, match="disabled"):
        issue(service, intermediate_id)


def test_renewal_extends_the_service_period_from_its_end(
    service: PrivateCA, clock: SettableClock
) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service), service_days=30)
    end = service.get_ca(intermediate_id).service_until
    assert end is not None
    service.renew_ca(ADMIN, intermediate_id, 60)
    assert service.get_ca(intermediate_id).service_until == end + dt.timedelta(days=60)


def test_an_intermediate_stops_issuing_when_its_service_period_ends(
    service: PrivateCA, clock: SettableClock
) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service), service_days=30)
    clock.advance(days=31)
    with pytest.raises(ServicePeriodError, match="renew it"):
        issue(service, intermediate_id)
    service.renew_ca(ADMIN, intermediate_id, 30)
    renewed = issue(service, intermediate_id, server_request(validity_days=20))
    assert renewed.certificate.ca_id == intermediate_id


def test_revoking_an_intermediate_is_final(service: PrivateCA) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service))
    service.revoke_ca(ADMIN, intermediate_id, RevocationReason.KEY_COMPROMISE)
    intermediate = service.get_ca(intermediate_id)
    assert intermediate.status is CAStatus.REVOKED
    assert intermediate.revocation_reason is RevocationReason.KEY_COMPROMISE
    with pytest.raises(CAStateError, match="cannot be enabled again"):
        service.enable_ca(ADMIN, intermediate_id)
    with pytest.raises(CAStateError, match="was revoked; revocation is final"):
        issue(service, intermediate_id)


def test_a_root_cannot_be_revoked(service: PrivateCA) -> None:
    with pytest.raises(CAStateError, match="disable it instead"):
        service.revoke_ca(ADMIN, enabled_root(service), RevocationReason.SUPERSEDED)


@pytest.mark.parametrize(
    ("profile", "field"),
    [
        (CAProfile(Subject("R"), KeyAlgorithm.EC_P256, 0, 365), "validity_years"),
        (CAProfile(Subject("R"), KeyAlgorithm.EC_P256, 51, 365), "validity_years"),
        (CAProfile(Subject("R"), KeyAlgorithm.EC_P256, 10, 0), "service_days"),
    ],
)
def test_ca_lifetimes_out_of_range_name_the_field(
    service: PrivateCA, profile: CAProfile, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        service.create_root(ADMIN, profile)
    assert caught.value.field == field


def test_a_ca_without_common_name_is_refused(service: PrivateCA) -> None:
    with pytest.raises(SubjectError):
        service.create_root(ADMIN, CAProfile(Subject(" "), KeyAlgorithm.EC_P256, 10, 365))


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", [KeyAlgorithm.RSA_2048, KeyAlgorithm.EC_P384])
def test_cas_can_use_rsa_and_p384_keys(service: PrivateCA, algorithm: KeyAlgorithm) -> None:
    root = service.get_ca(enabled_root(service, key_algorithm=algorithm))
    assert root.certificate_der is not None
    certificate = x509.load_der_x509_certificate(root.certificate_der)
    expected = "sha384" if algorithm is KeyAlgorithm.EC_P384 else "sha256"
    assert certificate.signature_hash_algorithm is not None
    assert certificate.signature_hash_algorithm.name == expected
