"""The deployment's background jobs do not wait for each other: a revocation reaches the
served CRL while an audit checkpoint is still being signed (docs/BENCHMARKS.md, issue 22:
on a store of 3M events with no checkpoint yet, the first checkpoint's walk held the CRL
publisher back for two to five minutes). Nor does a revocation wait for the publisher's
next look: the read-model runner wakes it once the revocation is projected.

The checkpoint is made slow by a gate in front of ``AuditLog.create_checkpoint``, standing
for the long walk; everything else is the real deployment on the parametrised store.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
from cryptography import x509

from api.deployment import Deployment
from domain.adapters.settings import Settings
from domain.audit.checkpoints import Checkpoint
from domain.audit.verify import AuditLog
from domain.model.values import RevocationReason
from projections.revocation.crlstore import BASE, DELTA
from tests.builders import OPERATOR, enabled_intermediate, enabled_root, issue
from tests.conftest import SettableClock
from tests.polling import until

WAIT_SECONDS = 60.0  # generous: the publisher looks every 500 ms
POLL = dt.timedelta(seconds=2)  # the publisher's interval in the wake-up test
WOKEN_WITHIN = 1.0  # seconds; the next poll would come 1.7 s after the revocation


@dataclass
class Gate:
    """Holds every checkpoint signature until released."""

    entered: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    held = Gate()
    original = AuditLog.create_checkpoint

    def slow(log: AuditLog, *args: Any, **kwargs: Any) -> Checkpoint:
        held.entered.set()
        held.released.wait(4 * WAIT_SECONDS)
        return original(log, *args, **kwargs)

    monkeypatch.setattr(AuditLog, "create_checkpoint", slow)
    return held


@pytest.fixture
def deployment(settings: Settings, clock: SettableClock, gate: Gate) -> Iterator[Deployment]:
    opened = Deployment.open(settings, run_projections=True, publish=True, clock=clock)
    yield opened
    gate.released.set()  # before the close, which waits for the checkpoint's thread
    opened.close()


def _until(condition: Callable[[], bool]) -> bool:
    return until(condition, WAIT_SECONDS)


def _listed(deployment: Deployment, ca_id: UUID) -> set[int]:
    """The serials the served base and delta CRLs of ``ca_id`` list."""
    served = [deployment.crls.get(ca_id, kind) for kind in (BASE, DELTA)]
    return {
        entry.serial_number
        for crl in served
        if crl is not None
        for entry in x509.load_der_x509_crl(crl.der)
    }


def test_a_revocation_is_published_while_a_checkpoint_is_being_signed(
    deployment: Deployment, gate: Gate
) -> None:
    service = deployment.service
    ca_id = enabled_intermediate(service, enabled_root(service))
    certificate = issue(service, ca_id).certificate
    assert gate.entered.wait(WAIT_SECONDS), "the checkpoint job never started a checkpoint"
    service.revoke_certificate(OPERATOR, certificate.id, RevocationReason.KEY_COMPROMISE)
    serial = int(certificate.serial_number, 16)
    assert _until(lambda: serial in _listed(deployment, ca_id)), "the CRL waited"
    assert not gate.released.is_set()  # the checkpoint was still being signed all along


@pytest.fixture
def slow_polling(settings: Settings, clock: SettableClock) -> Iterator[Deployment]:
    """A deployment whose publisher looks for news every ``POLL`` when nothing wakes it."""
    publishing = dataclasses.replace(settings.publishing, debounce=POLL)
    opened = Deployment.open(
        dataclasses.replace(settings, publishing=publishing),
        run_projections=True,
        publish=True,
        clock=clock,
    )
    yield opened
    opened.close()


def test_a_revocation_after_a_quiet_spell_is_published_once_projected_not_at_the_next_poll(
    slow_polling: Deployment,
) -> None:
    service = slow_polling.service
    ca_id = enabled_intermediate(service, enabled_root(service))
    certificate = issue(service, ca_id).certificate
    assert _until(lambda: slow_polling.crls.get(ca_id, BASE) is not None)
    time.sleep(POLL.total_seconds() + 0.3)  # the publisher has looked again, found nothing
    service.revoke_certificate(OPERATOR, certificate.id, RevocationReason.KEY_COMPROMISE)
    revoked = time.monotonic()
    serial = int(certificate.serial_number, 16)
    assert _until(lambda: serial in _listed(slow_polling, ca_id))
    assert time.monotonic() - revoked < WOKEN_WITHIN
