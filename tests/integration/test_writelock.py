"""The per-CA issuance lock excludes every other process sharing the store."""

from __future__ import annotations

import threading
import time
from uuid import uuid4

from domain.adapters.settings import Settings, open_service
from domain.application.service import PrivateCA


def test_a_second_holder_waits_until_the_first_lets_go(
    service: PrivateCA, settings: Settings
) -> None:
    """Two services stand for two processes: separate files or separate server sessions."""
    other = open_service(settings)
    ca_id = uuid4()
    order: list[str] = []
    first_holds = threading.Event()

    def first() -> None:
        with service._write_locks.hold(ca_id):
            order.append("first in")
            first_holds.set()
            time.sleep(0.3)
            order.append("first out")

    def second() -> None:
        first_holds.wait()
        with other._write_locks.hold(ca_id):
            order.append("second in")

    try:
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert order == ["first in", "first out", "second in"]
        with other._write_locks.hold(uuid4()):  # another CA is not held up
            pass
    finally:
        other.close()
        other.keystore.close()
