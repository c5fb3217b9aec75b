"""Keep-alive HTTP load for the HTTP benchmarks, the same for every server under test.

Single requests at a high rate go through wrk: C, one event loop, LuaJIT building each
body with a fresh name. It costs a few microseconds of CPU per request, so on a two-core
machine it leaves the servers nearly all of the CPU, where a Python client would take a
good part of a core (each run reports the generator's own CPU per request). Every
connection keeps one request in flight, so ``connections`` is the number of clients.

Batch requests, a few per second with bodies of up to 1000 items, go through http.client
in threads and are counted rather than timed, so no batch is cut off at the end of a run
(wrk drops requests still in flight when its time is up, which for batches of 1000 would
be a good share of the work).
"""

from __future__ import annotations

import http.client
import json
import re
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from string import Template

from bench.report import percentile

WRK_INSTALL_HINT = "apt-get install -y wrk"
NAME = "@NAME@"  # where a body template takes a fresh DNS name
_RESULT = re.compile(r"^WRK-RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$", re.MULTILINE)
_TIMEOUT = 60.0  # seconds; an RSA request under load can take a while

# One request() per request: a fresh name (unique per run) substituted into the body.
_SCRIPT = Template("""
local method = [==[$method]==]
local path = [==[$path]==]
local template = [==[$body]==]
local headers = {$headers}
local tag = [==[$tag]==]
local counter = 0

function request()
  counter = counter + 1
  if template == "" then
    return wrk.format(method, path, headers, nil)
  end
  local name = tag .. "-" .. counter .. ".example"
  return wrk.format(method, path, headers, (template:gsub("$name", name)))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK-RESULT %.0f %.0f %.0f %.0f %.0f %.0f\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect + e.read + e.write + e.timeout))
end
""")


@dataclass(frozen=True)
class Target:
    """One kind of request: where it goes and its body, with NAME where a name goes."""

    port: int
    method: str
    path: str
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)

    def with_name(self, name: str) -> bytes:
        return self.body.replace(NAME, name).encode()


@dataclass(frozen=True)
class Run:
    """What one timed run of the generator saw."""

    requests: int  # answered, whatever the status
    seconds: float
    p50_ms: float
    p99_ms: float
    refused: int  # answered with a status of 400 or above
    broken: int  # connection errors and timeouts
    client_cpu_us: float  # the generator's CPU time per request

    @property
    def succeeded(self) -> int:
        return self.requests - self.refused

    @property
    def failures(self) -> int:
        return self.refused + self.broken

    @property
    def rate(self) -> float:
        """Successful answers per second: a refusal is not a certificate."""
        return self.succeeded / self.seconds


def probe(target: Target, name: str = "probe.example") -> tuple[int, bytes]:
    """Send ``target`` once: its status and body (to check it works before a run)."""
    connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=_TIMEOUT)
    try:
        body = target.with_name(name) if target.body else None
        connection.request(target.method, target.path, body, dict(target.headers))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wrk(target: Target, connections: int, seconds: int, tag: str) -> Run:
    """Drive ``target`` with ``connections`` keep-alive clients for ``seconds``."""
    headers = ", ".join(f"[ [==[{k}]==] ] = [==[{v}]==]" for k, v in target.headers.items())
    script = _SCRIPT.substitute(
        method=target.method,
        path=target.path,
        body=target.body,
        headers=headers,
        tag=tag,
        name=NAME,
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as file:
        file.write(script)
        file.flush()
        before = _children_cpu()
        completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [
                executable("wrk"),
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                f"--timeout={_TIMEOUT:.0f}s",
                "-s",
                file.name,
                f"http://127.0.0.1:{target.port}{target.path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        cpu = _children_cpu() - before
    match = _RESULT.search(completed.stdout)
    if match is None:
        raise RuntimeError(f"wrk printed no result:\n{completed.stdout}\n{completed.stderr}")
    requests, duration_us, p50_us, p99_us, refused, broken = map(int, match.groups())
    return Run(
        requests,
        duration_us / 1e6,
        p50_us / 1000,
        p99_us / 1000,
        refused,
        broken,
        cpu / max(requests, 1) * 1e6,
    )


def executable(tool: str) -> str:
    """The absolute path of ``tool`` on the PATH."""
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{tool} is not on the PATH")
    return path


def _children_cpu() -> float:
    """CPU seconds of the children reaped so far (here: the wrk runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class BatchRun:
    """What one counted run of batch requests saw."""

    succeeded: int  # items answered as issued
    failed: int  # items answered as failed, or in a batch that failed as a whole
    seconds: float
    p50_ms: float  # per batch request
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.succeeded / self.seconds


def batches(target: Target, items: int, clients: int, per_client: int, tag: str) -> BatchRun:
    """``clients`` threads each POST ``per_client`` batches of ``items`` built from ``target``.

    Bodies are built before the clock starts; answers are parsed after it stops.
    """
    bodies = [
        [_batch_body(target, items, f"{tag}-{client}-{n}") for n in range(per_client)]
        for client in range(clients)
    ]
    answers: list[tuple[int, bytes]] = []
    latencies: list[float] = []
    start = threading.Barrier(clients + 1)

    def client(own: list[bytes]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=_TIMEOUT * 5)
        start.wait()
        for body in own:
            began = time.perf_counter()
            connection.request(target.method, target.path, body, dict(target.headers))
            response = connection.getresponse()
            answer = (response.status, response.read())
            latencies.append((time.perf_counter() - began) * 1000)
            answers.append(answer)
        connection.close()

    threads = [threading.Thread(target=client, args=(own,)) for own in bodies]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    succeeded = sum(_succeeded(status, raw) for status, raw in answers)
    return BatchRun(
        succeeded,
        len(answers) * items - succeeded,
        seconds,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
    )


def _batch_body(target: Target, items: int, prefix: str) -> bytes:
    entries = ",".join(target.body.replace(NAME, f"{prefix}-{i}.example") for i in range(items))
    return f'{{"items": [{entries}]}}'.encode()


def _succeeded(status: int, raw: bytes) -> int:
    if status != http.HTTPStatus.OK:
        return 0
    answer = json.loads(raw)
    return int(answer["succeeded"])
