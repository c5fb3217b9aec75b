"""The audit chain under several writer processes: one chain however they interleave, and
processes starting together on an existing store all start."""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any
from uuid import UUID

import pytest

from domain.adapters.settings import Settings, open_service
from domain.application.service import PrivateCA
from domain.model.tokens import Role
from tests.builders import ADMIN, enabled_root
from tests.integration.test_audit_chain import RawStore, verify

PROCESSES, THREADS, SAVES_PER_THREAD = 2, 4, 25
STARTERS = 6


@pytest.fixture
def raw(settings: Settings) -> RawStore:
    return RawStore(settings)


def _write_concurrently(settings: Settings, root_id: UUID) -> None:
    """One process: THREADS threads, each saving tokens and contending for the root."""
    service = open_service(settings)
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for n in range(SAVES_PER_THREAD):
                service.create_token(ADMIN, f"t{thread}-{n}", Role.AUDITOR)
                if n % 5 == 0:
                    service.purchase_quota(ADMIN, root_id, 1)  # conflicts across processes
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    service.close()
    service.keystore.close()
    if errors:
        raise errors[0]


@pytest.mark.slow
def test_concurrent_writers_in_several_processes_keep_one_chain(
    settings: Settings, service: PrivateCA, raw: RawStore
) -> None:
    root_id = enabled_root(service, quota=0)
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_write_concurrently, args=(settings, root_id))
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=300)
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES

    report = verify(service)
    tokens = PROCESSES * THREADS * SAVES_PER_THREAD
    purchases = PROCESSES * THREADS * len(range(0, SAVES_PER_THREAD, 5))
    assert report.ok, report.detail
    assert report.checked == 2 + tokens + purchases  # + the root's creation and enabling
    assert [p for p, _ in raw.links()] == raw.positions()


def _start_after(barrier: Any, settings: Settings) -> None:
    barrier.wait(timeout=60)
    service = open_service(settings)
    service.close()
    service.keystore.close()


@pytest.mark.slow
def test_processes_starting_together_on_an_existing_store_all_start(
    settings: Settings, service: PrivateCA
) -> None:
    service.create_token(ADMIN, "before", Role.AUDITOR)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(STARTERS)
    starters = [
        context.Process(target=_start_after, args=(barrier, settings)) for _ in range(STARTERS)
    ]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join(timeout=120)
    assert [starter.exitcode for starter in starters] == [0] * STARTERS
    assert verify(service).ok
