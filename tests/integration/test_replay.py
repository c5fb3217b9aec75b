"""Replay: rebuilding every aggregate from the log gives exactly the state that was saved."""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import CanMutateAggregate

from domain.adapters.settings import Settings, open_service
from domain.application.service import PrivateCA
from domain.model.authority import CertificateAuthority
from domain.model.values import RevocationReason
from tests.builders import ADMIN, OPERATOR, enabled_intermediate, enabled_root, issue
from tests.conftest import SettableClock


def _replayed(service: PrivateCA, aggregate_id: UUID) -> Any:
    """Fold the stored events by hand, without cache or snapshots."""
    aggregate = None
    for stored in service.events.get(aggregate_id):
        assert isinstance(stored, CanMutateAggregate)
        aggregate = stored.mutate(aggregate)
    return aggregate


def _busy_history(service: PrivateCA) -> list[UUID]:
    root_id = enabled_root(service, quota=50)
    ca_id = enabled_intermediate(service, root_id, remaining=20)
    issued = [issue(service, ca_id).certificate.id for _ in range(4)]
    service.revoke_certificate(OPERATOR, issued[0], RevocationReason.KEY_COMPROMISE)
    service.delete_certificate(OPERATOR, issued[0])
    service.revoke_certificate(OPERATOR, issued[1], RevocationReason.SUPERSEDED)
    service.assign_quota(ADMIN, root_id, ca_id, 7)
    service.renew_ca(ADMIN, ca_id, 90)
    service.disable_ca(ADMIN, ca_id)
    other = enabled_intermediate(service, root_id, remaining=3)
    service.revoke_ca(ADMIN, other, RevocationReason.CESSATION_OF_OPERATION)
    return [root_id, ca_id, other, *issued]


def test_replaying_the_log_rebuilds_exactly_the_saved_state(
    settings: Settings, clock: SettableClock
) -> None:
    writer = open_service(settings, clock=clock)
    ids = _busy_history(writer)
    saved: dict[UUID, Any] = {
        aggregate_id: writer.repository.get(aggregate_id) for aggregate_id in ids
    }
    writer.close()
    writer.keystore.close()

    reader = open_service(settings, clock=clock)
    try:
        for aggregate_id in ids:
            rebuilt = _replayed(reader, aggregate_id)
            assert rebuilt == saved[aggregate_id]
            assert reader.repository.get(aggregate_id) == saved[aggregate_id]
    finally:
        reader.close()
        reader.keystore.close()


def test_a_snapshot_gives_the_same_state_as_the_events(service: PrivateCA) -> None:
    ids = _busy_history(service)
    ca_id = ids[1]
    service.take_snapshot(ca_id)
    issue_after = service.get_ca(ca_id)
    assert service.snapshots is not None
    assert list(service.snapshots.get(ca_id))
    assert _replayed(service, ca_id) == issue_after


def test_a_snapshot_is_taken_beside_the_save_that_crossed_its_interval(
    service: PrivateCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    crossing = service.get_ca(ca_id).version + 1
    monkeypatch.setattr(service, "snapshotting_intervals", {CertificateAuthority: crossing})
    release, taken = threading.Event(), threading.Event()
    take_snapshot = service.take_snapshot

    def held_snapshot(aggregate_id: UUID, version: int | None = None) -> None:
        release.wait(10)
        take_snapshot(aggregate_id, version)
        taken.set()

    monkeypatch.setattr(service, "take_snapshot", held_snapshot)
    issue(service, ca_id)  # crosses the interval, and returns while the snapshot waits
    assert not taken.is_set()
    release.set()
    assert taken.wait(10)
    assert service.snapshots is not None
    (snapshot,) = service.snapshots.get(ca_id)
    assert snapshot.originator_version == crossing
