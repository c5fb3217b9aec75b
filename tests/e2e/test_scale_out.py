"""Several `pca serve` worker processes on one store never oversell quota, over real HTTP.

The domain-level race (processes calling the service directly) is in test_concurrency.py;
here the requests go through pca serve's workers, each with its own service, pools and
per-CA lock, so only the event store's optimistic concurrency keeps them apart. With
``PCA_API_ONLY`` the workers run no background jobs and one `pca projections run`
process keeps the read models, the CRLs and the audit checkpoints. Two `pca serve`
instances with data directories of their own on one PostgreSQL schema stand for two API
hosts (docs/DEPLOYMENT.md).
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from domain.adapters.settings import API_ONLY_ENV, Settings
from tests.conftest import make_settings
from tests.live import LiveServer, free_port, settings_env

QUOTA = 60
CLIENTS = 10
WORKERS = 3
QUOTA_PROBLEM = "https://pca.dev/problems/quota"
NOT_READY_PROBLEM = "https://pca.dev/problems/not-ready"
CATCH_UP_SECONDS = 60.0  # a bound, not a pace: standby runners retry every 5 s


@dataclass(frozen=True)
class Outcome:
    """One answer to an issuance request, as the client saw it."""

    status: int
    body: dict[str, Any]
    position: int


@dataclass(frozen=True)
class Deployment:
    """Live servers on one store, tokens, and an intermediate holding QUOTA units."""

    hosts: tuple[LiveServer, ...]
    admin: str
    operator: str
    intermediate_id: str

    @property
    def live(self) -> LiveServer:
        """The server that set the deployment up."""
        return self.hosts[0]

    @property
    def reader(self) -> LiveServer:
        """The server that reads back (another host, where there are several)."""
        return self.hosts[-1]


def _setup(*hosts: LiveServer) -> Deployment:
    live = hosts[0]
    admin = live.pca("tokens", "create", "--role", "admin", "--name", "scale-admin").strip()
    operator = live.pca("tokens", "create", "--role", "operator", "--name", "scale-op").strip()
    _, intermediate = live.hierarchy(admin, "Scale", QUOTA)
    return Deployment(hosts, admin, operator, intermediate)


def _issue_until_refused(deployment: Deployment, client: int) -> list[Outcome]:
    """One client on one keep-alive connection to one of the hosts, in turn: issue until
    the first answer that is not a certificate (a quota refusal, or whatever else)."""
    host = deployment.hosts[client % len(deployment.hosts)]
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=60)
    path = f"/api/v1/cas/{deployment.intermediate_id}/certificates"
    headers = {
        "Authorization": f"Bearer {deployment.operator}",
        "Content-Type": "application/json",
    }
    outcomes: list[Outcome] = []
    try:
        while not outcomes or outcomes[-1].status == 201:
            name = f"host-{client}-{len(outcomes)}.scale.test"
            body = {"type": "server", "common_name": name, "validity_days": 30}
            connection.request("POST", path, json.dumps(body), headers)
            response = connection.getresponse()
            payload = json.loads(response.read())
            position = int(response.headers.get("X-Log-Position", "0"))
            outcomes.append(Outcome(response.status, payload, position))
    finally:
        connection.close()
    return outcomes


def _race(deployment: Deployment) -> list[Outcome]:
    with ThreadPoolExecutor(CLIENTS) as pool:
        runs = pool.map(lambda client: _issue_until_refused(deployment, client), range(CLIENTS))
        return [outcome for run in runs for outcome in run]


def _assert_never_oversold(deployment: Deployment, outcomes: list[Outcome]) -> None:
    """Exactly QUOTA certificates, every other answer the quota problem, and the read
    models (waited for) agree with what the clients were given."""
    live, intermediate = deployment.reader, deployment.intermediate_id
    issued = [outcome for outcome in outcomes if outcome.status == 201]
    refused = [outcome for outcome in outcomes if outcome.status != 201]
    assert [(o.status, o.body.get("type")) for o in refused] == [(409, QUOTA_PROBLEM)] * CLIENTS
    assert len(issued) == QUOTA
    assert len({outcome.body["serial_number"] for outcome in issued}) == QUOTA
    ids = {outcome.body["id"] for outcome in issued}
    assert len(ids) == QUOTA
    wait = {"X-Wait-For-Position": str(max(outcome.position for outcome in issued))}
    listed = _caught_up_json(live, "/api/v1/cas", deployment.admin, wait)["items"]
    (view,) = [item for item in listed if item["id"] == intermediate]
    assert view["quota"] == {"remaining": 0, "issued": QUOTA}
    assert view["certificates"]["issued"] == QUOTA
    assert _listed_certificate_ids(deployment, wait) == ids
    command_side = live.json("GET", f"/api/v1/cas/{intermediate}", deployment.admin)
    assert command_side["quota"] == {"remaining": 0, "issued": QUOTA}
    assert len(_issuing_workers(deployment)) > 1  # the race really crossed processes


def _issuing_workers(deployment: Deployment) -> set[str]:
    """The worker processes that answered issuance requests, from the access log. Its
    lines reach the log in batches, at least once a second (api/wsgi_middleware.py), so
    it is read until it holds a line for every answer of the race (QUOTA certificates
    and each client's refusal)."""
    path = f"/api/v1/cas/{deployment.intermediate_id}/certificates"
    line = re.compile(rf'"POST {path} HTTP/1.1" .* pid=<(\d+)>')
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while True:
        pids = [pid for host in deployment.hosts for pid in line.findall(host.log.read_text())]
        if len(pids) >= QUOTA + CLIENTS or time.monotonic() > deadline:
            return set(pids)
        time.sleep(0.2)


def _listed_certificate_ids(deployment: Deployment, headers: dict[str, str]) -> set[str]:
    ids: set[str] = set()
    query = "?limit=25"
    while True:
        page = _caught_up_json(
            deployment.reader,
            f"/api/v1/cas/{deployment.intermediate_id}/certificates{query}",
            deployment.admin,
            headers,
        )
        ids |= {item["id"] for item in page["items"]}
        if not page["next_cursor"]:
            return ids
        query = f"?limit=25&cursor={page['next_cursor']}"


def _caught_up_json(live: LiveServer, path: str, token: str, headers: dict[str, str]) -> Any:
    """A query that waits for a position (``X-Wait-For-Position``), asked again after a
    "not ready" 503 as the API tells clients to: a runner apart that is still starting on
    a loaded machine may take longer than the server waits for it in one request."""
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while True:
        status, _, raw = live.request("GET", path, token, headers=headers)
        not_ready = status == 503 and json.loads(raw).get("type") == NOT_READY_PROBLEM
        if not (not_ready and time.monotonic() < deadline):
            assert status < 300, (status, raw[:500])
            return json.loads(raw)
        time.sleep(0.5)


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen in {CATCH_UP_SECONDS} s"
        time.sleep(0.2)


@contextmanager
def _projections_apart(live: LiveServer) -> Iterator[Path]:
    """`pca projections run` against the live server's store until the block ends, then
    SIGTERM, which it must obey with status 0; yields the file its JSON output goes to."""
    output = live.log.with_name(f"projections-{live.port}.json")
    errors = output.with_suffix(".log")
    with output.open("wb") as stdout, errors.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli.main", "--json", "projections", "run"],
            env=live.env,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        yield output
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, errors.read_text()


def _crl_lists(live: LiveServer, ca_id: str, serial_hex: str) -> bool:
    """Whether the CA's base or delta CRL, as served, lists the serial."""
    for path in (f"/crl/{ca_id}.crl", f"/crl/{ca_id}-delta.crl"):
        status, _, der = live.request("GET", path)
        crl = x509.load_der_x509_crl(der) if status == 200 else None
        if crl and crl.get_revoked_certificate_by_serial_number(int(serial_hex, 16)):
            return True
    return False


@pytest.mark.slow
def test_three_workers_never_oversell_quota_over_http(settings: Settings) -> None:
    with LiveServer(settings, workers=WORKERS) as live:
        deployment = _setup(live)
        outcomes = _race(deployment)
        _assert_never_oversold(deployment, outcomes)


@pytest.mark.slow
def test_api_only_workers_leave_reads_crls_and_checkpoints_to_one_process_apart(
    settings: Settings,
) -> None:
    settings = dataclasses.replace(settings, api_only=True)
    with LiveServer(settings, workers=WORKERS) as live:
        deployment = _setup(live)
        intermediate, admin = deployment.intermediate_id, deployment.admin
        # No worker follows the log or publishes: the lists as they are stay empty, a list
        # with every write in it cannot be had (503 once its wait is over), no CRL exists.
        eventual = {"Prefer": "consistency=eventual"}
        assert live.json("GET", "/api/v1/cas", admin, None, eventual)["items"] == []
        assert live.request("GET", "/api/v1/cas", admin)[0] == 503
        assert live.request("GET", f"/crl/{intermediate}.crl")[0] == 503  # not yet published
        assert live.json("GET", "/api/v1/audit/checkpoints", admin)["items"] == []
        with _projections_apart(live) as output:
            outcomes = _race(deployment)
            _assert_never_oversold(deployment, outcomes)
            revoked = next(o.body for o in outcomes if o.status == 201)
            live.json(
                "POST",
                f"/api/v1/certificates/{revoked['id']}/revoke",
                deployment.operator,
                {"reason": "key_compromise"},
            )
            _eventually(
                lambda: _crl_lists(live, intermediate, revoked["serial_number"]),
                "a CRL listing the revoked certificate",
            )
            _eventually(
                lambda: bool(live.json("GET", "/api/v1/audit/checkpoints", admin)["items"]),
                "a signed audit checkpoint",
            )
    assert json.loads(output.read_text())["stopped_at_position"] > 0


@pytest.mark.slow
def test_two_api_hosts_on_one_postgresql_never_oversell_quota(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # What hosts share: the database and schema, and the master key (no master.keys file).
    host_a = dataclasses.replace(
        make_settings("postgres", request, tmp_path / "host-a"),
        master_key=base64.b64encode(os.urandom(32)).decode(),
    )
    host_b = dataclasses.replace(host_a, data_dir=tmp_path / "host-b")
    with LiveServer(host_a, workers=2) as live_a, LiveServer(host_b, workers=2) as live_b:
        deployment = _setup(live_a, live_b)
        outcomes = _race(deployment)
        _assert_never_oversold(deployment, outcomes)
        issued_via_a = outcomes[0].body  # client 0 talks to host A
        path = f"/api/v1/certificates/{issued_via_a['id']}"
        assert live_b.json("GET", path, deployment.admin)["id"] == issued_via_a["id"]
    # A host keeps nothing but its Prometheus files: any host can be replaced or added.
    assert [path.name for path in (tmp_path / "host-b").iterdir()] == ["metrics"]


def test_an_api_only_setting_that_is_neither_yes_nor_no_stops_the_start(
    sqlite_settings: Settings,
) -> None:
    port = free_port()
    env = {**settings_env(sqlite_settings, port), API_ONLY_ENV: "sometimes"}
    done = subprocess.run(
        [sys.executable, "-m", "api.cli.main", "serve", "--port", str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert f"[{API_ONLY_ENV}]: use 1 or 0" in done.stderr
