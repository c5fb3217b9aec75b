"""Several processes on one store: quota never oversold, one certificate per idempotency key."""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import pytest

from domain.adapters.settings import Settings, open_service
from domain.application.commands import CertificateRequest
from domain.application.service import PrivateCA
from domain.model.errors import QuotaError
from tests.builders import OPERATOR, enabled_intermediate, enabled_root, server_request

PROCESSES = 2


THREADS = 8


def _issue_until_refused(settings: Settings, ca_id: UUID, attempts: int) -> list[str]:
    """In a fresh process: 8 threads issue; returns serials, or 'quota' for each refusal."""
    service = open_service(settings)

    def one(_: int) -> str:
        try:
            return service.issue_certificate(
                OPERATOR, ca_id, server_request()
            ).certificate.serial_number
        except QuotaError:
            return "quota"

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            return list(pool.map(one, range(attempts)))
    finally:
        service.close()
        service.keystore.close()


def _issue_with_key(settings: Settings, ca_id: UUID, request: CertificateRequest) -> list[str]:
    """In a fresh process: 8 threads send the same idempotent request; returns the ids."""
    service = open_service(settings)
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            futures = [
                pool.submit(service.issue_certificate, OPERATOR, ca_id, request)
                for _ in range(THREADS)
            ]
            return [str(future.result().certificate.id) for future in futures]
    finally:
        service.close()
        service.keystore.close()


def _in_processes(target: Callable[..., list[str]], *args: object) -> list[str]:
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        results = [pool.apply_async(target, args) for _ in range(PROCESSES)]
        return [item for result in results for item in result.get(timeout=300)]


@pytest.mark.slow
def test_two_processes_of_eight_threads_never_oversell_quota(
    service: PrivateCA, settings: Settings
) -> None:
    quota = 40
    ca_id = enabled_intermediate(service, enabled_root(service, quota=quota), remaining=quota)
    outcomes = _in_processes(_issue_until_refused, settings, ca_id, 40)
    serials = [outcome for outcome in outcomes if outcome != "quota"]
    assert len(serials) == quota
    assert len(set(serials)) == quota
    assert outcomes.count("quota") == PROCESSES * 40 - quota
    intermediate = service.get_ca(ca_id)
    assert (intermediate.quota_remaining, intermediate.issued_count) == (0, quota)


@pytest.mark.slow
def test_one_idempotency_key_gives_one_certificate_across_processes(
    service: PrivateCA, settings: Settings
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service), remaining=50)
    request = dataclasses.replace(server_request(), idempotency_key="order-4711")
    ids = _in_processes(_issue_with_key, settings, ca_id, request)
    assert len(ids) == PROCESSES * THREADS
    assert len(set(ids)) == 1
    assert service.get_ca(ca_id).quota_remaining == 49
