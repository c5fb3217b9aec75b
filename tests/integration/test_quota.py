"""Quota: purchase for a root, assign to intermediates, consume one per issuance."""

from __future__ import annotations

import pytest

from domain.application.service import PrivateCA
from domain.model.errors import CANotEnabledError, CAStateError, QuotaError, ValidationError
from domain.model.values import RevocationReason
from tests.builders import ADMIN, OPERATOR, enabled_intermediate, enabled_root, issue, root_profile


def test_purchases_add_to_the_roots_total_and_available(service: PrivateCA) -> None:
    root_id = service.create_root(ADMIN, root_profile(), included_certificates=10).id
    service.purchase_quota(ADMIN, root_id, 90)
    root = service.get_ca(root_id)
    assert (root.quota_total, root.quota_available, root.quota_assigned) == (100, 100, 0)


def test_assigning_draws_the_difference_from_the_pool(service: PrivateCA) -> None:
    root_id = enabled_root(service, quota=100)
    intermediate_id = enabled_intermediate(service, root_id, remaining=30)
    assert service.get_ca(root_id).quota_available == 70
    service.assign_quota(ADMIN, root_id, intermediate_id, 50)
    assert service.get_ca(root_id).quota_available == 50
    assert service.get_ca(intermediate_id).quota_remaining == 50


def test_lowering_an_assignment_returns_quota_to_the_pool(service: PrivateCA) -> None:
    root_id = enabled_root(service, quota=100)
    intermediate_id = enabled_intermediate(service, root_id, remaining=30)
    service.assign_quota(ADMIN, root_id, intermediate_id, 5)
    assert service.get_ca(root_id).quota_available == 95
    assert service.get_ca(intermediate_id).quota_remaining == 5


def test_the_pool_cannot_be_overdrawn(service: PrivateCA) -> None:
    root_id = enabled_root(service, quota=10)
    intermediate_id = enabled_intermediate(service, root_id, remaining=0)
    with pytest.raises(QuotaError, match="has 10 unassigned") as caught:
        service.assign_quota(ADMIN, root_id, intermediate_id, 11)
    assert caught.value.field == "remaining"
    assert service.get_ca(root_id).quota_available == 10


def test_assignment_needs_both_cas_enabled(service: PrivateCA) -> None:
    root_id = enabled_root(service, quota=10)
    intermediate_id = enabled_intermediate(service, root_id, remaining=0)
    service.disable_ca(ADMIN, intermediate_id)
    with pytest.raises(CANotEnabledError, match="intermediate"):
        service.assign_quota(ADMIN, root_id, intermediate_id, 5)
    service.enable_ca(ADMIN, intermediate_id)
    service.disable_ca(ADMIN, root_id)
    with pytest.raises(CANotEnabledError, match="root"):
        service.assign_quota(ADMIN, root_id, intermediate_id, 5)


def test_quota_is_assigned_only_from_the_intermediates_own_root(service: PrivateCA) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service))
    other_root = enabled_root(service)
    with pytest.raises(CAStateError, match="from its own root"):
        service.assign_quota(ADMIN, other_root, intermediate_id, 1)


def test_quota_is_bought_for_roots_only(service: PrivateCA) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service))
    with pytest.raises(CAStateError, match="purchased for a root"):
        service.purchase_quota(ADMIN, intermediate_id, 10)


@pytest.mark.parametrize("count", [0, -5])
def test_a_purchase_must_be_positive(service: PrivateCA, count: int) -> None:
    root_id = enabled_root(service)
    with pytest.raises(ValidationError) as caught:
        service.purchase_quota(ADMIN, root_id, count)
    assert caught.value.field == "count"


def test_each_issuance_consumes_exactly_one_unit(service: PrivateCA) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service), remaining=3)
    issue(service, intermediate_id)
    issue(service, intermediate_id)
    intermediate = service.get_ca(intermediate_id)
    assert (intermediate.quota_remaining, intermediate.issued_count) == (1, 2)


def test_issuance_stops_at_zero_remaining(service: PrivateCA) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service), remaining=1)
    issue(service, intermediate_id)
    with pytest.raises(QuotaError, match="assign more from its root"):
        issue(service, intermediate_id)


def test_revocation_and_deletion_refund_nothing(service: PrivateCA) -> None:
    intermediate_id = enabled_intermediate(service, enabled_root(service), remaining=2)
    certificate = issue(service, intermediate_id).certificate
    service.revoke_certificate(OPERATOR, certificate.id, RevocationReason.SUPERSEDED)
    service.delete_certificate(OPERATOR, certificate.id)
    assert service.get_ca(intermediate_id).quota_remaining == 1


def test_a_root_never_issues_end_entity_certificates(service: PrivateCA) -> None:
    root_id = enabled_root(service)
    with pytest.raises(CAStateError, match="Root CAs never issue"):
        issue(service, root_id)
