"""A read right after a write sees it, with no header, whichever `pca serve` worker answers.

Lists come from the read models, which wait for the log's head by default; one
certificate is its aggregate, loaded from the event store (its cached copy brought up to
date), so it needs no wait.

Each request goes out on a connection of its own, so the server hands writes and reads to
whichever of its workers accepts first; the access log (``pid=``, ``rid=``) shows which one
answered, and the test checks that many reads were answered by a worker other than the
writer's, which learned of the write only through the store.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from domain.adapters.settings import Settings
from tests.live import LiveServer

ROUNDS = 200
WORKERS = 3
MIN_CROSS_WORKER_READS = ROUNDS // 4  # of 4 * ROUNDS reads; about 2/3 when spread evenly
_ACCESS = re.compile(r"pid=<?(\d+)>? rid=(\S+)")

pytestmark = pytest.mark.slow


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings, workers=WORKERS) as server:
        yield server


class Client:
    """A REST client that sends no consistency header, tagging each request by its id."""

    def __init__(self, live: LiveServer, admin: str, operator: str) -> None:
        self.live = live
        self.admin = admin
        self.operator = operator
        self.pairs: list[tuple[str, str]] = []  # (write's request id, read's request id)

    def write(self, tag: str, path: str, body: object, token: str) -> Any:
        return self._call("POST", path, token, body, f"{tag}-write")

    def read(self, tag: str, path: str, after: str | None = None) -> Any:
        """GET ``path`` just after the write tagged ``after`` (by default ``tag``)."""
        self.pairs.append((f"{after or tag}-write", f"{tag}-read"))
        return self._call("GET", path, self.operator, None, f"{tag}-read")

    def _call(self, method: str, path: str, token: str, body: object, rid: str) -> Any:
        return self.live.json(method, path, token, body, {"X-Request-Id": rid})


def _answering_workers(log: Path) -> dict[str, str]:
    """Request id -> pid of the worker that answered it, from the access log."""
    return {match[2]: match[1] for match in _ACCESS.finditer(log.read_text())}


def test_every_write_is_in_the_next_read_from_any_worker(live: LiveServer) -> None:
    admin = live.pca("tokens", "create", "--role", "admin", "--name", "fresh-admin").strip()
    operator = live.pca("tokens", "create", "--role", "operator", "--name", "fresh-op").strip()
    root, issuing = live.hierarchy(admin, "Fresh", quota=10 * ROUNDS, remaining=2 * ROUNDS)
    client = Client(live, admin, operator)
    listed = f"/api/v1/cas/{issuing}/certificates"
    for round_ in range(ROUNDS):
        body = {"type": "server", "common_name": f"r{round_}.fresh.test", "validity_days": 30}
        issued = client.write(f"issue{round_}", listed, body, operator)["id"]
        newest = client.read(f"issue{round_}", f"{listed}?limit=1")["items"]
        assert [item["id"] for item in newest] == [issued], f"round {round_}: issue not listed"

        client.write(f"revoke{round_}", f"/api/v1/certificates/{issued}/revoke", {}, operator)
        revoked = client.read(f"revoke{round_}", f"{listed}?status=revoked&limit=1")["items"]
        assert [item["id"] for item in revoked] == [issued], f"round {round_}: revocation"
        # One certificate is its aggregate, read from the event store.
        one = client.read(f"get{round_}", f"/api/v1/certificates/{issued}", f"revoke{round_}")
        assert one["status"] == "revoked", f"round {round_}: revocation not in the certificate"

        remaining = ROUNDS + round_
        assignment = {"intermediate_id": issuing, "remaining": remaining}
        client.write(f"assign{round_}", f"/api/v1/cas/{root}/quota/assignments", assignment, admin)
        cas = {ca["id"]: ca for ca in client.read(f"assign{round_}", "/api/v1/cas")["items"]}
        assert cas[issuing]["quota"]["remaining"] == remaining, f"round {round_}: assignment"

    live.stop()  # flushes the access log
    workers = _answering_workers(live.log)
    crossed = sum(1 for write, read in client.pairs if workers[write] != workers[read])
    assert len(set(workers.values())) == WORKERS
    assert crossed >= MIN_CROSS_WORKER_READS, f"only {crossed} reads reached another worker"
