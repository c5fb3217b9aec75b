"""A harness for crash tests: `pca serve` and `pca projections run` processes that can be
killed with SIGKILL and started again on the same port, and REST clients that keep issuing
and revoking while that happens, writing down every answer they were given."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from cryptography import x509

from domain.adapters.settings import Settings
from tests.live import LOG_FILES, AnswerHeaders, free_port, run_pca, settings_env

CLIENT_TIMEOUT = 30.0  # seconds; a request that takes this long counts as a hang
PAUSE_AFTER_REFUSAL = 0.05  # seconds a client waits when nobody listens on the port


class _Process:
    """A `pca` command in a session of its own, so one signal reaches it and its children."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self._args = args
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        LOG_FILES.append(log)  # searched for secrets when the run ends

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "api.cli.main", *self._args],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL the process and everything it started: nothing gets to clean up."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):  # the whole group is gone
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, as a supervisor stops a service; SIGKILL if it does not end in time."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, characters: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-characters:]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class CrashableServer(_Process):
    """`pca serve` that keeps its port across restarts, so the URLs written into the
    certificates (CRL distribution points) keep pointing at it."""

    def __init__(self, settings: Settings, *, workers: int = 2, api_only: bool = False) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        args = ["serve", "--port", str(self.port), "--workers", str(workers)]
        env = settings_env(settings, self.port)
        super().__init__(
            [*args, "--api-only"] if api_only else args,
            env,
            settings.data_dir.parent / f"serve-{self.port}.log",
        )

    def start(self) -> None:
        super().start()
        self.wait_until_up()

    def wait_until_up(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if request(self.base, "GET", "/healthz", timeout=2).status == 200:
                return
            assert self.process is not None
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"pca serve did not come up:\n{self.tail()}")

    def worker_pids(self) -> list[int]:
        """The worker processes: the children of the `pca serve` process."""
        children: list[int] = []
        for task in Path(f"/proc/{self.pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                children += [int(pid) for pid in task.read_text().split()]
        return children

    def pca(self, *args: str) -> str:
        """Run a `pca` command against the same storage; its stdout (stderr goes to the
        server's log)."""
        return run_pca(self.env, self.log, *args)


class ProjectionProcess(_Process):
    """`pca projections run`: the read models, CRLs and checkpoints apart from the API."""

    def __init__(self, server: CrashableServer) -> None:
        super().__init__(
            ["projections", "run"], server.env, server.log.with_name(f"{server.log.stem}-rm.log")
        )

    def supervise(self) -> None:
        """Start it again if it is not running, as a process supervisor would; it exits at
        once while a previous runner's lease is still held, so this is called again."""
        if self.process is None or self.process.poll() is not None:
            self.start()


@dataclass(frozen=True)
class Answer:
    """One HTTP exchange as the client saw it; status 0 when no answer came."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    started: float  # time.monotonic() when the request was sent
    seconds: float
    failure: str = ""

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    base: str,
    method: str,
    path: str,
    token: str | None = None,
    body: object = None,
    *,
    timeout: float = CLIENT_TIMEOUT,
) -> Answer:
    """One request on a fresh connection; connection failures are answers with status 0."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    prepared = urllib.request.Request(base + path, data, headers, method=method)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(prepared, timeout=timeout) as response:
            payload = response.read()
            status, answered = response.status, AnswerHeaders(response.headers)
    except urllib.error.HTTPError as error:
        status, answered, payload = error.code, AnswerHeaders(error.headers), error.read()
    except (OSError, http.client.HTTPException) as error:  # refused, reset, cut short
        failure = f"{type(error).__name__}: {error}"
        return Answer(0, {}, b"", started, _since(started), failure)
    return Answer(status, answered, payload, started, _since(started))


def _since(started: float) -> float:
    return time.monotonic() - started


@dataclass(frozen=True)
class Hierarchy:
    """A root with intermediates that have quota to spare, and an operator's token."""

    root_id: str
    intermediate_ids: tuple[str, ...]
    operator: str
    admin: str


def set_up_hierarchy(server: CrashableServer, intermediates: int = 2) -> Hierarchy:
    admin = server.pca("tokens", "create", "--role", "admin", "--name", "crash-admin").strip()
    operator = server.pca("tokens", "create", "--role", "operator", "--name", "crash-op").strip()
    root = _ok(
        server,
        "POST",
        "/api/v1/cas",
        admin,
        {
            "kind": "root",
            "subject": {"common_name": "Crash Root CA"},
            "included_certificates": 10,
        },
    )
    _ok(server, "POST", f"/api/v1/cas/{root['id']}/enable", admin)
    _ok(server, "POST", f"/api/v1/cas/{root['id']}/quota/purchases", admin, {"count": 1_000_000})
    ids = []
    for number in range(intermediates):
        ca = _ok(
            server,
            "POST",
            "/api/v1/cas",
            admin,
            {
                "kind": "intermediate",
                "parent_id": root["id"],
                "subject": {"common_name": f"Crash Issuing CA {number}"},
            },
        )
        _ok(server, "POST", f"/api/v1/cas/{ca['id']}/enable", admin)
        _ok(
            server,
            "POST",
            f"/api/v1/cas/{root['id']}/quota/assignments",
            admin,
            {
                "intermediate_id": ca["id"],
                "remaining": 100_000,
            },
        )
        ids.append(ca["id"])
    return Hierarchy(root["id"], tuple(ids), operator, admin)


def _ok(server: CrashableServer, method: str, path: str, token: str, body: object = None) -> Any:
    answer = request(server.base, method, path, token, body)
    assert 200 <= answer.status < 300, (answer.status, answer.body[:500])
    return answer.json()


@dataclass(frozen=True)
class Acknowledged:
    """A certificate the service answered 201 for."""

    id: str
    ca_id: str
    serial_number: str
    crl_url: str


@dataclass
class Ledger:
    """Everything the clients were told, shared by the client threads."""

    issued: dict[str, Acknowledged] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    timeline: list[tuple[float, float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, answer: Answer, what: str) -> None:
        """Count ``answer``; keep it aside if a client should never see it."""
        with self.lock:
            self.statuses[answer.status] += 1
            self.timeline.append((answer.started, answer.seconds, answer.status))
            problem = _problem_with(answer)
            if problem:
                self.unexpected.append(f"{what}: {problem}")

    def acknowledge(self, issued: Acknowledged) -> None:
        with self.lock:
            if issued.id in self.issued:
                self.unexpected.append(f"certificate {issued.id} acknowledged twice")
            self.issued[issued.id] = issued

    @property
    def slowest(self) -> float:
        """The longest a client waited for an answer, in seconds."""
        with self.lock:
            return max((seconds for _, seconds, _ in self.timeline), default=0.0)

    def revoked_serials(self) -> dict[str, set[int]]:
        """The acknowledged revocations by CA: serial numbers as integers."""
        serials: dict[str, set[int]] = {}
        for certificate_id in self.revoked:
            issued = self.issued[certificate_id]
            serials.setdefault(issued.ca_id, set()).add(int(issued.serial_number, 16))
        return serials


def _problem_with(answer: Answer) -> str:
    """Why a client must not get ``answer`` even while processes die; empty if fine."""
    if answer.status == 0 or 200 <= answer.status < 300:
        return ""
    summary = f"{answer.status} {answer.body[:300]!r}"
    if answer.status != 503:
        return summary
    if "Retry-After" not in answer.headers:
        return f"503 without Retry-After: {summary}"
    if answer.headers.get("Content-Type") != "application/problem+json":
        return f"503 that is not problem+json: {summary}"
    return ""


class Load:
    """Client threads that issue certificates and revoke every other one they got, until
    stopped; each 2xx goes into the :class:`Ledger`."""

    def __init__(self, base: str, hierarchy: Hierarchy, clients: int = 4) -> None:
        self.ledger = Ledger()
        self._base = base
        self._hierarchy = hierarchy
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(n,), name=f"crash-client-{n}")
            for n in range(clients)
        ]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def acknowledged(self) -> int:
        """How many issuances were acknowledged so far."""
        with self.ledger.lock:
            return len(self.ledger.issued)

    def _client(self, number: int) -> None:
        ca_ids = self._hierarchy.intermediate_ids
        sequence = 0
        while not self._stop.is_set():
            ca_id = ca_ids[(number + sequence) % len(ca_ids)]
            issued = self._issue(ca_id, f"c{number}-{sequence}")
            if issued is not None and sequence % 2 == 0:
                self._revoke(issued)
            sequence += 1

    def _issue(self, ca_id: str, name: str) -> Acknowledged | None:
        answer = request(
            self._base,
            "POST",
            f"/api/v1/cas/{ca_id}/certificates",
            self._hierarchy.operator,
            {
                "type": "server",
                "common_name": f"{name}.crash.test",
                "sans": [{"type": "dns", "value": f"{name}.crash.test"}],
                "validity_days": 30,
                "key_algorithm": "EC_P256",
            },
        )
        self.ledger.note(answer, f"issue {name}")
        if answer.status != 201:
            self._pause(answer)
            return None
        shape = answer.json()
        issued = Acknowledged(shape["id"], ca_id, shape["serial_number"], crl_url(shape))
        self.ledger.acknowledge(issued)
        return issued

    def _revoke(self, issued: Acknowledged) -> None:
        answer = request(
            self._base,
            "POST",
            f"/api/v1/certificates/{issued.id}/revoke",
            self._hierarchy.operator,
            {"reason": "key_compromise"},
        )
        self.ledger.note(answer, f"revoke {issued.id}")
        if answer.status == 200:
            with self.ledger.lock:
                self.ledger.revoked.add(issued.id)
        else:
            self._pause(answer)

    def _pause(self, answer: Answer) -> None:
        if answer.status == 0:
            self._stop.wait(PAUSE_AFTER_REFUSAL)


def crl_url(shape: dict[str, Any]) -> str:
    """The CRL distribution point written into an issued certificate."""
    certificate = x509.load_pem_x509_certificate(shape["certificate_pem"].encode())
    points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    name = points[0].full_name
    assert name is not None
    return str(name[0].value)


def served_serials(url: str, issuer: x509.Certificate) -> set[int] | None:
    """The serial numbers the CRL at ``url`` and its delta (freshestCRL) list, after
    checking both signatures against ``issuer``; None while none is published."""
    serials: set[int] = set()
    while url:
        answer = request("", "GET", url)
        if answer.status != 200:
            return None
        crl = x509.load_der_x509_crl(answer.body)
        assert crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
        serials |= {entry.serial_number for entry in crl}
        url = _freshest_url(crl)
    return serials


def _freshest_url(crl: x509.CertificateRevocationList) -> str:
    try:
        freshest = crl.extensions.get_extension_for_class(x509.FreshestCRL).value
    except x509.ExtensionNotFound:
        return ""
    name = freshest[0].full_name
    return str(name[0].value) if name else ""
