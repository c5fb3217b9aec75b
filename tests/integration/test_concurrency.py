"""Quota is never oversold and idempotency keys hold under concurrency and across restarts
(across processes: tests/e2e/test_concurrency_processes.py)."""

from __future__ import annotations

import dataclasses

import pytest

from domain.adapters.settings import Settings, open_service
from domain.application.service import PrivateCA
from domain.model.errors import IdempotencyKeyReusedError
from tests.builders import OPERATOR, enabled_intermediate, enabled_root, server_request
from tests.conftest import SettableClock


def test_a_repeated_key_returns_the_first_certificate_after_a_restart(
    settings: Settings, clock: SettableClock
) -> None:
    first = open_service(settings, clock=clock)
    ca_id = enabled_intermediate(first, enabled_root(first), remaining=5)
    request = dataclasses.replace(server_request(), idempotency_key="k-1")
    original = first.issue_certificate(OPERATOR, ca_id, request).certificate
    first.close()
    first.keystore.close()

    second = open_service(settings, clock=clock)
    try:
        again = second.issue_certificate(OPERATOR, ca_id, request).certificate
        assert again.id == original.id
        assert again.certificate_der == original.certificate_der
        assert second.get_ca(ca_id).quota_remaining == 4
    finally:
        second.close()
        second.keystore.close()


def test_a_key_reused_with_other_parameters_is_refused(service: PrivateCA) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service), remaining=5)
    request = dataclasses.replace(server_request(), idempotency_key="k-2")
    service.issue_certificate(OPERATOR, ca_id, request)
    changed = dataclasses.replace(request, validity_days=30)
    with pytest.raises(IdempotencyKeyReusedError, match="use a new key") as caught:
        service.issue_certificate(OPERATOR, ca_id, changed)
    assert caught.value.field == "Idempotency-Key"
    assert service.get_ca(ca_id).quota_remaining == 4


def test_the_same_key_on_another_ca_is_another_request(service: PrivateCA) -> None:
    root_id = enabled_root(service)
    first_ca = enabled_intermediate(service, root_id, remaining=2)
    second_ca = enabled_intermediate(service, root_id, remaining=2)
    request = dataclasses.replace(server_request(), idempotency_key="shared")
    one = service.issue_certificate(OPERATOR, first_ca, request).certificate
    two = service.issue_certificate(OPERATOR, second_ca, request).certificate
    assert one.id != two.id


def test_quota_assigned_by_another_process_is_seen_by_one_that_ran_out(
    service: PrivateCA, settings: Settings
) -> None:
    """A process that issued its CA's last unit keeps a copy of that CA; quota assigned by
    another process must still let it issue."""
    root_id = enabled_root(service, quota=5)
    ca_id = enabled_intermediate(service, root_id, remaining=1)
    service.issue_certificate(OPERATOR, ca_id, server_request())
    other = open_service(settings)
    try:
        other.assign_quota(OPERATOR, root_id, ca_id, 2)
    finally:
        other.close()
        other.keystore.close()
    service.issue_certificate(OPERATOR, ca_id, server_request())
    outcomes = service.issue_certificates(OPERATOR, ca_id, [server_request()] * 2)
    assert [type(outcome).__name__ for outcome in outcomes] == ["IssuedCertificate", "QuotaError"]
