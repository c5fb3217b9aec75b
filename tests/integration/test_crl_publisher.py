"""The CRL publisher's rules, driven with a settable clock: deltas after revocations, base
CRLs re-signed before nextUpdate, expired entries leaving after the grace."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from uuid import UUID

import pytest
from cryptography import x509

from domain.adapters.settings import PublishingSettings, Settings
from domain.application.service import PrivateCA
from domain.model.values import RevocationReason
from projections.readmodels.queries import ReadModels
from projections.readmodels.worker import catch_up
from projections.revocation.crlstore import BASE, DELTA, CRLStore, open_crl_store
from projections.revocation.publisher import CRLPublisher
from tests.builders import (
    ADMIN,
    OPERATOR,
    enabled_intermediate,
    enabled_root,
    issue,
    server_request,
)
from tests.conftest import SettableClock

CONFIG = PublishingSettings(validity=dt.timedelta(hours=24), expired_grace=dt.timedelta(days=2))


@pytest.fixture
def store(settings: Settings) -> Iterator[CRLStore]:
    crl_store = open_crl_store(settings)
    yield crl_store
    crl_store.close()


@pytest.fixture
def read_models(settings: Settings) -> Iterator[ReadModels]:
    with ReadModels.open(settings) as opened:
        yield opened


def _publisher(service: PrivateCA, read_models: ReadModels, store: CRLStore) -> CRLPublisher:
    return CRLPublisher(service, read_models, store, CONFIG)


def _served(store: CRLStore, ca_id: UUID, kind: str) -> x509.CertificateRevocationList:
    crl = store.get(ca_id, kind)
    assert crl is not None
    return x509.load_der_x509_crl(crl.der)


def _number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_a_revocation_goes_into_a_delta_against_the_base(
    service: PrivateCA, settings: Settings, read_models: ReadModels, store: CRLStore
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service), remaining=30)
    issued = [issue(service, ca_id).certificate for _ in range(22)]
    for certificate in issued[:20]:
        service.revoke_certificate(OPERATOR, certificate.id, RevocationReason.SUPERSEDED)
    catch_up(settings)
    publisher = _publisher(service, read_models, store)
    assert [p.kind for p in publisher.publish(ca_id)] == [BASE, DELTA]
    base = _served(store, ca_id, BASE)
    assert len(base) == 20
    service.revoke_certificate(OPERATOR, issued[20].id, RevocationReason.KEY_COMPROMISE)
    catch_up(settings)
    assert [p.kind for p in publisher.publish(ca_id)] == [DELTA]  # 1 is under 10% of 20
    delta = _served(store, ca_id, DELTA)
    indicator = delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value
    assert indicator.crl_number == _number(base)
    assert [entry.serial_number for entry in delta] == [int(issued[20].serial_number, 16)]
    assert _number(_served(store, ca_id, BASE)) == _number(base)


def test_nothing_new_publishes_nothing_until_the_base_is_half_way_to_next_update(
    service: PrivateCA,
    settings: Settings,
    read_models: ReadModels,
    store: CRLStore,
    clock: SettableClock,
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    catch_up(settings)
    publisher = _publisher(service, read_models, store)
    publisher.publish(ca_id)
    first = _served(store, ca_id, BASE)
    assert publisher.publish(ca_id) == []
    clock.advance(hours=13)
    assert [p.kind for p in publisher.publish(ca_id)] == [BASE, DELTA]
    again = _served(store, ca_id, BASE)
    assert _number(again) > _number(first)
    assert again.next_update_utc is not None
    assert again.next_update_utc - clock.now == dt.timedelta(hours=24)


def test_expired_certificates_leave_the_crl_after_the_grace(
    service: PrivateCA,
    settings: Settings,
    read_models: ReadModels,
    store: CRLStore,
    clock: SettableClock,
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    short = issue(service, ca_id, server_request(validity_days=1)).certificate
    long = issue(service, ca_id, server_request(validity_days=90)).certificate
    for certificate in (short, long):
        service.revoke_certificate(OPERATOR, certificate.id, RevocationReason.SUPERSEDED)
    catch_up(settings)
    publisher = _publisher(service, read_models, store)
    publisher.publish(ca_id)
    assert len(_served(store, ca_id, BASE)) == 2
    clock.advance(days=4)  # expired 3 days ago, past the 2-day grace
    publisher.publish(ca_id, force_base=True)
    remaining = _served(store, ca_id, BASE)
    assert [entry.serial_number for entry in remaining] == [int(long.serial_number, 16)]


def test_each_crl_is_an_event_with_its_hash(
    service: PrivateCA, settings: Settings, read_models: ReadModels, store: CRLStore
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    catch_up(settings)
    _publisher(service, read_models, store).publish(ca_id)
    served = store.get(ca_id, BASE)
    assert served is not None
    published = [
        event
        for event in service.events.get(service.publication(OPERATOR, ca_id).id)
        if type(event).__name__ == "CRLPublished"
    ]
    assert published[0].sha256 == served.sha256  # type: ignore[attr-defined]
    assert published[0].number == served.number  # type: ignore[attr-defined]


def test_publish_due_covers_every_key_of_every_ca_then_only_the_ones_with_news(
    service: PrivateCA, settings: Settings, read_models: ReadModels, store: CRLStore
) -> None:
    root_id = enabled_root(service)
    ca_id = enabled_intermediate(service, root_id, remaining=5)
    service.roll_over_ca_key(ADMIN, ca_id)
    certificate = issue(service, ca_id).certificate
    catch_up(settings)
    publisher = _publisher(service, read_models, store)
    first = {(p.ca_id, p.generation, p.kind) for p in publisher.publish_due()}
    keys = {(root_id, 1), (ca_id, 1), (ca_id, 2)}
    assert first == {(*key, kind) for key in keys for kind in (BASE, DELTA)}
    service.revoke_certificate(OPERATOR, certificate.id, RevocationReason.SUPERSEDED)
    catch_up(settings)
    assert {p.ca_id for p in publisher.publish_due()} == {ca_id}  # the root has no news
    assert publisher.publish_due() == []
