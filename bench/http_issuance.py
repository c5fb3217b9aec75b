"""Certificate issuance over HTTP: `pca serve` against cfssl in the same run (issue 7).

    python -m bench.http_issuance [--duration 3] [--runs 3] [--workers 1,2,4]
                                  [--no-postgres | --postgres-url URL] [--update-docs]

Loopback only; about ten minutes with the defaults on a busy two-core machine. In one run:

* the ceiling: in-process cryptography, key generation plus the same leaf built and signed
  (bench/issuance.py's "bare" path), nothing stored, in 1 and in 2 processes;
* the load generator's own ceiling: wrk against a trivial endpoint (cfssl's scaninfo);
* cfssl ``serve`` with a fresh P-256 CA and a profile like ours (server auth, 90 days, CRL,
  OCSP and issuer URLs), ``POST /api/v1/cfssl/newcert`` (the server generates the key),
  twice: storing nothing, and storing every certificate durably in its own SQLite certdb
  (WAL, ``synchronous=FULL``: one fdatasync per certificate, as ours), each measured before
  and after ours, so drift on a shared machine shows in its spread;
* ``pca serve`` on SQLite (durable, the default) and on a throwaway PostgreSQL cluster, with
  each ``--workers`` count, ``POST /api/v1/cas/{id}/certificates`` (server-generated key,
  the name as DNS SAN, as cfssl's ``hosts``);
* RSA-2048 for both (key-generation bound) and, where the server has it, batch issuance
  through ``POST /api/v1/cas/{id}/certificates:batch``.

Every measurement: a probe request that must succeed, a warm-up, then ``--runs`` runs of
``--duration`` seconds at 1 and 4 keep-alive clients (bench/loadgen.py); the table shows
medians over the runs and the spread of req/s. Ratios are to each cfssl at the same key and
number of clients, and to the 2-process ceiling. The servers started here run without the
per-token issuance limit (``PCA_ISSUANCE_RATE_PER_SECOND=0``): this measures capacity.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import multiprocessing
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from importlib.metadata import version
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import psycopg

from bench import loadgen, report
from bench.common import postgres_url
from bench.issuance import _bare
from bench.loadgen import NAME, BatchRun, Run, Target
from domain.adapters.settings import Settings, open_service
from domain.model.values import KeyAlgorithm
from tests.builders import enabled_intermediate, enabled_root, server_request
from tests.live import LiveServer, free_port
from tests.pgserver import create_schema, drop_schema

TOOLS = {"cfssl": "apt-get install -y golang-cfssl", "wrk": loadgen.WRK_INSTALL_HINT}
EC, RSA = "EC_P256", "RSA_2048"
KEY_LABELS = {EC: "EC P-256", RSA: "RSA 2048"}
CFSSL_KEYS = {EC: {"algo": "ecdsa", "size": 256}, RSA: {"algo": "rsa", "size": 2048}}
QUOTA = 10_000_000  # the API's largest purchase; no run comes near it
BATCH_SIZES = (100, 1000)
BATCH_MISSING = (404, 405)
MARKER = "http_issuance"
JSON_HEADERS = {"Content-Type": "application/json"}
RATE_LIMIT_ENV = "PCA_ISSUANCE_RATE_PER_SECOND"


@dataclass(frozen=True)
class Row:
    """One line of the single-issuance table: a server setup at a number of clients."""

    server: str
    store: str
    workers: int  # 0 for cfssl
    key: str
    clients: int
    runs: list[Run]

    @property
    def rate(self) -> float:
        return statistics.median(run.rate for run in self.runs)


@dataclass(frozen=True)
class BatchRow:
    """One line of the batch table: a batch size on one store."""

    store: str
    workers: int
    items: int
    clients: int
    runs: list[BatchRun]

    @property
    def rate(self) -> float:
        return statistics.median(run.rate for run in self.runs)


@dataclass(frozen=True)
class Ceiling:
    """The bare in-process rate: what issuance would cost with nothing but cryptography."""

    key: str
    processes: int
    rates: list[float]  # certificates per second, summed over processes, per round
    p50_ms: float

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)


# --- the in-process ceiling ----------------------------------------------------------------


def _ceiling_process(
    key: str, rounds: int, seconds: float, barrier: Barrier, results: Queue[tuple[float, float]]
) -> None:
    """In a fresh process: the bare path on a real CA, ``rounds`` timed windows."""
    with tempfile.TemporaryDirectory() as directory:
        service = open_service(Settings(data_dir=Path(directory)))
        try:
            ca_id = enabled_intermediate(service, enabled_root(service))
            request = server_request("bench.example", key_algorithm=KeyAlgorithm(key))
            bare = _bare(service, ca_id, request)
            for _ in range(rounds):
                barrier.wait()
                latencies: list[float] = []
                began = time.perf_counter()
                while time.perf_counter() - began < seconds:
                    start = time.perf_counter()
                    bare()
                    latencies.append((time.perf_counter() - start) * 1000)
                elapsed = time.perf_counter() - began
                results.put((len(latencies) / elapsed, statistics.median(latencies)))
        finally:
            service.close()
            service.keystore.close()


def ceiling(key: str, processes: int, rounds: int, seconds: float) -> Ceiling:
    """Bare issuances per second in ``processes`` processes running at the same time."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results: Queue[tuple[float, float]] = context.Queue()
    workers = [
        context.Process(target=_ceiling_process, args=(key, rounds, seconds, barrier, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    answers = [results.get(timeout=120) for _ in range(rounds * processes)]
    for worker in workers:
        worker.join()
    # Processes finish a round together (the barrier), so answers arrive round by round.
    rates = [
        sum(rate for rate, _ in answers[n : n + processes])
        for n in range(0, len(answers), processes)
    ]
    return Ceiling(key, processes, rates, statistics.median(p50 for _, p50 in answers))


# --- the servers ---------------------------------------------------------------------------


# cfssl's own certdb schema for SQLite (certdb/sqlite/migrations/001_CreateCertificates.sql
# of the cfssl release Debian builds, whose inserts name these columns).
CFSSL_CERTDB = """
CREATE TABLE certificates (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  ca_label                 blob,
  status                   blob NOT NULL,
  reason                   int,
  created_at               timestamp,
  expiry                   timestamp,
  revoked_at               timestamp,
  pem                      blob NOT NULL,
  PRIMARY KEY(serial_number, authority_key_identifier)
);
CREATE INDEX certificates_created_at ON certificates (created_at);
CREATE INDEX certificates_revoked_at ON certificates (revoked_at);
CREATE TABLE ocsp_responses (
  serial_number            blob NOT NULL,
  authority_key_identifier blob NOT NULL,
  body                     blob NOT NULL,
  expiry                   timestamp,
  PRIMARY KEY(serial_number, authority_key_identifier),
  FOREIGN KEY(serial_number, authority_key_identifier)
    REFERENCES certificates(serial_number, authority_key_identifier)
);
"""
NO_STORE, CERTDB = "-", "SQLite certdb"


def certdb(directory: Path) -> Path:
    """A fresh cfssl certdb in WAL mode; the ``-db-config`` file that has cfssl commit
    every certificate with ``synchronous=FULL`` (go-sqlite3's ``_journal`` and
    ``_synchronous`` parameters): one fdatasync per certificate, as durable as ours."""
    database = directory / "certs.db"
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.executescript(CFSSL_CERTDB)
        connection.execute("PRAGMA journal_mode=WAL")
    source = f"file:{database}?_journal=WAL&_synchronous=FULL"
    config = directory / "db-config.json"
    config.write_text(json.dumps({"driver": "sqlite3", "data_source": source}))
    return config


def certdb_check(directory: Path, answered: int) -> str:
    """Whether the durable cfssl stored what it answered, in WAL mode."""
    with contextlib.closing(sqlite3.connect(directory / "certs.db")) as connection:
        (stored,) = connection.execute("SELECT count(*) FROM certificates").fetchone()
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
    verdict = "ok" if stored >= answered and mode == "wal" else "MISMATCH"
    return (
        f"cfssl certdb: {stored:,} certificates stored for {answered:,} answered, "
        f"journal_mode {mode}: {verdict}"
    )


@contextlib.contextmanager
def cfssl(directory: Path, *, durable: bool = False) -> Iterator[int]:
    """``cfssl serve`` with a fresh P-256 CA, storing every certificate in a SQLite certdb
    if ``durable``; its port."""
    directory.mkdir(mode=0o700, parents=True)
    csr = directory / "ca-csr.json"
    csr.write_text(json.dumps({"CN": "Bench cfssl CA", "key": CFSSL_KEYS[EC]}))
    made = json.loads(_run("cfssl", "genkey", "-initca", str(csr)))
    (directory / "ca.pem").write_text(made["cert"])
    key = directory / "ca-key.pem"
    key.touch(mode=0o600)
    key.write_text(made["key"])
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    profile = {
        "signing": {
            "default": {
                "usages": ["digital signature", "server auth"],
                "expiry": "2160h",  # 90 days
                "crl_url": f"{base}/crl/bench.crl",
                "ocsp_url": f"{base}/ocsp/bench",
                "issuer_urls": [f"{base}/ca/bench.crt"],
            }
        }
    }
    (directory / "profile.json").write_text(json.dumps(profile))
    storage = [f"-db-config={certdb(directory)}"] if durable else []
    log = (directory / "serve.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        [
            loadgen.executable("cfssl"),
            "serve",
            "-address",
            "127.0.0.1",
            f"-port={port}",
            f"-ca={directory / 'ca.pem'}",
            f"-ca-key={key}",
            f"-config={directory / 'profile.json'}",
            *storage,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for(Target(port, "GET", "/api/v1/cfssl/scaninfo"), process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def _run(tool: str, *args: str, check: bool = True) -> str:
    argv = [loadgen.executable(tool), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=check).stdout  # noqa: S603


def _wait_for(target: Target, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(OSError):
            if loadgen.probe(target)[0] == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{target.path} on port {target.port} did not answer")


@dataclass
class Ours:
    """A running `pca serve` set up for issuance: where to send what, and how many
    certificates it has answered with a success so far."""

    live: LiveServer
    operator: str
    issuing: str
    answered: int = 0
    in_flight: int = 0  # requests wrk left unanswered when its time was up, at most

    def target(self, key: str, path_suffix: str = "") -> Target:
        body = {
            "type": "server",
            "common_name": NAME,
            "sans": [{"type": "dns", "value": NAME}],
            "validity_days": 90,
            "key_algorithm": key,
        }
        return Target(
            self.live.port,
            "POST",
            f"/api/v1/cas/{self.issuing}/certificates{path_suffix}",
            json.dumps(body),
            {**JSON_HEADERS, "Authorization": f"Bearer {self.operator}"},
        )


@contextlib.contextmanager
def pca(settings: Settings, workers: int) -> Iterator[Ours]:
    """``pca serve --workers N`` with an enabled P-256 root and intermediate and ample quota."""
    settings.data_dir.parent.mkdir(parents=True, exist_ok=True)  # LiveServer's log goes there
    with LiveServer(settings, workers=workers) as live:
        admin = live.pca("tokens", "create", "--role", "admin", "--name", "bench").strip()
        operator = live.pca("tokens", "create", "--role", "operator", "--name", "load").strip()

        _, issuing = live.hierarchy(admin, "Bench", QUOTA)  # P-256 keys, the default
        yield Ours(live, operator, issuing)


def cfssl_target(port: int, key: str) -> Target:
    body = {"request": {"CN": NAME, "hosts": [NAME], "key": CFSSL_KEYS[key]}}
    return Target(port, "POST", "/api/v1/cfssl/newcert", json.dumps(body), JSON_HEADERS)


# --- measuring -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """How long and how often each measurement runs."""

    duration: int
    warmup: int
    runs: int
    batch_certificates: int

    def single(self, target: Target, clients: int, tag: str) -> tuple[list[Run], int]:
        """Probe, warm up, then ``runs`` timed runs of wrk at ``clients`` clients; the
        timed runs and the number of successful answers, probe and warm-up included."""
        status, body = loadgen.probe(target, f"{tag}-probe.example")
        if status >= 300:
            raise RuntimeError(f"{target.path} answered {status}: {body[:500]!r}")
        warm = loadgen.wrk(target, clients, self.warmup, f"{tag}-warm")
        runs = [
            loadgen.wrk(target, clients, self.duration, f"{tag}-r{n}") for n in range(self.runs)
        ]
        return runs, 1 + sum(run.succeeded for run in [warm, *runs])

    def batch(
        self, target: Target, items: int, clients: int, tag: str
    ) -> tuple[list[BatchRun], int]:
        """Like :meth:`single` for batches, counted: ``batch_certificates`` per run."""
        per_client = max(2, math.ceil(self.batch_certificates / (items * clients)))
        warm = loadgen.batches(target, items, clients, 1, f"{tag}-warm")
        runs = [
            loadgen.batches(target, items, clients, per_client, f"{tag}-r{n}")
            for n in range(self.runs)
        ]
        return runs, sum(run.succeeded for run in [warm, *runs])


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def measure_cfssl(
    port: int, plan: Plan, keys: Sequence[tuple[str, int]], tag: str, store: str = NO_STORE
) -> tuple[list[Row], int]:
    """cfssl's rows, and how many certificates it answered (probe and warm-up included)."""
    rows, answered = [], 0
    for key, clients in keys:
        name = f"cfssl-{tag}-{'db' if store == CERTDB else 'mem'}-{clients}"
        runs, succeeded = plan.single(cfssl_target(port, key), clients, name)
        answered += succeeded
        rows.append(Row("cfssl", store, 0, key, clients, runs))
        progress(f"cfssl {store} {KEY_LABELS[key]} {clients} clients: {rows[-1].rate:,.0f} req/s")
    return rows, answered


def measure_ours(
    ours: Ours, store: str, workers: int, plan: Plan, keys: Sequence[tuple[str, int]]
) -> list[Row]:
    rows = []
    for key, clients in keys:
        tag = f"{store.lower()}-w{workers}-{key.lower().replace('_', '')}-c{clients}"
        runs, answered = plan.single(ours.target(key), clients, tag)
        ours.answered += answered
        ours.in_flight += clients * (plan.runs + 1)
        rows.append(Row("pca", store, workers, key, clients, runs))
        progress(
            f"pca {store} {workers} workers {KEY_LABELS[key]} {clients} clients: "
            f"{rows[-1].rate:,.0f} req/s"
        )
    return rows


def measure_batches(ours: Ours, store: str, workers: int, plan: Plan) -> list[BatchRow] | str:
    """Batch rows, or why there are none."""
    target = ours.target(EC, ":batch")
    status, body = loadgen.probe(dataclasses.replace(target, body=f'{{"items": [{target.body}]}}'))
    if status in BATCH_MISSING:
        return "batch endpoint not available"
    if status != 200:
        return f"batch endpoint answered {status}: {body[:300]!r}"
    ours.answered += 1
    rows = []
    for items in BATCH_SIZES:
        runs, answered = plan.batch(target, items, 4, f"{store.lower()}-b{items}")
        ours.answered += answered
        rows.append(BatchRow(store, workers, items, 4, runs))
        progress(f"pca {store} batch of {items}: {rows[-1].rate:,.0f} certificates/s")
    return rows


def stored_check(ours: Ours) -> str:
    """Whether every success the clients saw is a certificate the service counts as issued.

    A last issuance gives the log position to wait for, so the count is not behind.
    """
    target = ours.target(EC)
    status, headers, _ = ours.live.request(
        "POST", target.path, ours.operator, json.loads(target.with_name("bench-last.example"))
    )
    ours.answered += int(status == HTTPStatus.CREATED)
    wait = {"X-Wait-For-Position": headers.get("X-Log-Position", "0")}
    issued = ours.live.json("GET", f"/api/v1/cas/{ours.issuing}", ours.operator, None, wait)
    issued = int(issued["quota"]["issued"])
    verdict = "ok" if ours.answered <= issued <= ours.answered + ours.in_flight else "MISMATCH"
    return (
        f"{issued:,} certificates issued for {ours.answered:,} successful answers "
        f"(+ at most {ours.in_flight} cut off in flight when wrk stopped): {verdict}"
    )


# --- the report ----------------------------------------------------------------------------


def _spread(rates: Sequence[float]) -> str:
    return f"{statistics.median(rates):,.0f} ({min(rates):,.0f}-{max(rates):,.0f})"


def single_table(rows: list[Row], ceilings: dict[str, Ceiling]) -> list[str]:
    cfssl_rate = {
        (row.store, row.key, row.clients): row.rate for row in rows if row.server == "cfssl"
    }
    lines = [
        "| server | store | workers | key | clients | req/s median (min-max) | p50 ms | p99 ms "
        "| / cfssl certdb | / cfssl no store | / ceiling (2 proc) | failed | wrk CPU µs/req |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        durable = cfssl_rate.get((CERTDB, row.key, row.clients))
        vs_durable = f"{row.rate / durable:.2f}" if durable else "-"
        vs_cfssl = row.rate / cfssl_rate[(NO_STORE, row.key, row.clients)]
        runs = row.runs
        lines.append(
            f"| {row.server} | {row.store} | {row.workers or '-'} | {KEY_LABELS[row.key]} "
            f"| {row.clients} | {_spread([r.rate for r in runs])} "
            f"| {statistics.median(r.p50_ms for r in runs):.2f} "
            f"| {statistics.median(r.p99_ms for r in runs):.2f} "
            f"| {vs_durable} | {vs_cfssl:.2f} | {row.rate / ceilings[row.key].rate:.2f} "
            f"| {sum(r.failures for r in runs)} "
            f"| {statistics.median(r.client_cpu_us for r in runs):.0f} |"
        )
    return lines


def best_workers(rows: list[Row]) -> list[str]:
    lines = []
    for store in dict.fromkeys(row.store for row in rows if row.server == "pca"):
        for clients in (1, 4):
            candidates = [
                row
                for row in rows
                if (row.server, row.store, row.key, row.clients) == ("pca", store, EC, clients)
            ]
            if candidates:
                best = max(candidates, key=lambda row: row.rate)
                every = ", ".join(f"{row.workers}: {row.rate:,.0f}" for row in candidates)
                lines.append(
                    f"- {store}, EC P-256, {clients} clients: best {best.workers} workers "
                    f"(req/s by workers: {every})"
                )
    return lines


def batch_table(rows: list[BatchRow], ceilings: dict[str, Ceiling]) -> list[str]:
    lines = [
        "| store | workers | items per batch | clients | certificates/s median (min-max) "
        "| batch p50 ms | batch p99 ms | / ceiling (2 proc) | failed items |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        runs = row.runs
        lines.append(
            f"| {row.store} | {row.workers} | {row.items} | {row.clients} "
            f"| {_spread([r.rate for r in runs])} "
            f"| {statistics.median(r.p50_ms for r in runs):.0f} "
            f"| {statistics.median(r.p99_ms for r in runs):.0f} "
            f"| {row.rate / ceilings[EC].rate:.2f} | {sum(r.failed for r in runs)} |"
        )
    return lines


def ceiling_table(ceilings: list[Ceiling], generator: list[tuple[int, Run]]) -> list[str]:
    lines = [
        "| ceiling | processes / clients | per second, median (min-max) | p50 ms | CPU µs/req |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| in-process {KEY_LABELS[c.key]} keygen + build + sign | {c.processes} "
        f"| {_spread(c.rates)} | {c.p50_ms:.2f} | |"
        for c in ceilings
    ]
    lines += [
        f"| wrk against cfssl GET /api/v1/cfssl/scaninfo (the generator) | {clients} "
        f"| {run.rate:,.0f} | {run.p50_ms:.2f} | {run.client_cpu_us:.0f} |"
        for clients, run in generator
    ]
    return lines


def versions(url: str | None) -> list[str]:
    cfssl_version = _run("cfssl", "version").splitlines()
    wanted = [line.split(":", 1)[1].strip() for line in cfssl_version if ":" in line]
    wrk_version = _run("wrk", "--version", check=False)  # prints its usage and exits 1
    extra = [f"cfssl {wanted[0]} ({wanted[-1]})", wrk_version.split(" [")[0]]
    extra.append(f"gunicorn {version('gunicorn')}")
    if url is not None:
        with psycopg.connect(url) as connection:
            row = connection.execute("SHOW server_version").fetchone()
        extra.append(f"PostgreSQL {row[0] if row else '?'} (tests/pgserver.py: fsync=off)")
    return extra


# --- the run -------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per timed run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rsa-duration", type=int, default=5)
    parser.add_argument("--workers", default="1,2,4", help="comma-separated --workers counts")
    parser.add_argument("--rsa-workers", type=int, default=2, help="workers for RSA and batch")
    parser.add_argument("--batch-certificates", type=int, default=8000, help="per batch run")
    parser.add_argument("--ceiling-seconds", type=float, default=2.0)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--postgres-url", help="an existing database instead of a throwaway")
    parser.add_argument("--checkout", type=Path, help="run pca serve from this checkout")
    parser.add_argument("--update-docs", action="store_true", help=f"rewrite {report.DOCS}")
    return parser.parse_args()


@dataclass
class Results:
    """Everything one run measured, in the order the report prints it."""

    ceilings: list[Ceiling]
    generator: list[tuple[int, Run]]
    rows: list[Row]
    batches: list[BatchRow]
    notes: list[str]


def run_all(args: argparse.Namespace, directory: Path, url: str | None) -> Results:
    plan = Plan(args.duration, args.warmup, args.runs, args.batch_certificates)
    rsa_plan = Plan(args.rsa_duration, args.warmup, args.runs, args.batch_certificates)
    ceilings = [
        ceiling(key, processes, args.runs, args.ceiling_seconds)
        for key in (EC, RSA)
        for processes in (1, 2)
    ]
    progress("ceilings: " + ", ".join(f"{c.key} x{c.processes} {c.rate:,.0f}/s" for c in ceilings))
    if args.checkout:
        report.run_from(args.checkout.resolve())
    results = Results(ceilings, [], [], [], [])
    with (
        cfssl(directory / "cfssl") as port,
        cfssl(directory / "cfssl-db", durable=True) as durable_port,
    ):
        trivial = Target(port, "GET", "/api/v1/cfssl/scaninfo")
        results.generator = [(c, loadgen.wrk(trivial, c, args.duration, "g")) for c in (1, 4)]
        stored = _measure_cfssl_pair(results, (port, durable_port), plan, "before")
        results.rows += measure_cfssl(port, rsa_plan, [(RSA, 4)], "rsa")[0]
        for store, settings in _stores(directory, url, [int(w) for w in args.workers.split(",")]):
            _measure_store(results, store, settings, args, (plan, rsa_plan))
        after: list[Row] = []
        stored += _measure_cfssl_pair(results, (port, durable_port), plan, "after", after)
    results.notes.append(certdb_check(directory / "cfssl-db", stored) + ".")
    results.rows = [_with_runs_after(row, after) for row in results.rows]
    results.rows.sort(
        key=lambda row: (row.key != EC, row.clients, row.server, row.store != "SQLite", row.workers)
    )
    return results


def _measure_cfssl_pair(
    results: Results,
    ports: tuple[int, int],
    plan: Plan,
    tag: str,
    after: list[Row] | None = None,
) -> int:
    """Both cfssl servers at 1 and 4 clients: rows into ``results`` (or, measured after
    ours, into ``after``); the number of certificates the durable one answered."""
    keys = [(EC, 1), (EC, 4)]
    rows, _ = measure_cfssl(ports[0], plan, keys, tag)
    durable, stored = measure_cfssl(ports[1], plan, keys, tag, CERTDB)
    (results.rows if after is None else after).extend(rows + durable)
    return stored


def _with_runs_after(row: Row, after: list[Row]) -> Row:
    """cfssl's row with the runs measured after ours added to those before."""
    for later in after:
        same = (later.store, later.key, later.clients) == (row.store, row.key, row.clients)
        if same and row.server == "cfssl":
            return dataclasses.replace(row, runs=row.runs + later.runs)
    return row


def _stores(
    directory: Path, url: str | None, workers: list[int]
) -> Iterator[tuple[str, tuple[int, Settings]]]:
    """(store, (workers, settings)) for each configuration, each on fresh storage."""
    for count in workers:
        yield "SQLite", (count, Settings(data_dir=directory / f"sqlite-w{count}" / "data"))
    if url is None:
        return
    for count in workers:
        schema = create_schema(url)
        try:
            data_dir = directory / f"pg-w{count}" / "data"
            settings = Settings(data_dir, database_url=url, database_schema=schema)
            yield "PostgreSQL", (count, settings)
        finally:
            drop_schema(url, schema)


def _measure_store(
    results: Results,
    store: str,
    configuration: tuple[int, Settings],
    args: argparse.Namespace,
    plans: tuple[Plan, Plan],
) -> None:
    workers, settings = configuration
    plan, rsa_plan = plans
    with pca(settings, workers) as ours:
        rows = measure_ours(ours, store, workers, plan, [(EC, 1), (EC, 4)])
        if workers == args.rsa_workers:
            rows += measure_ours(ours, store, workers, rsa_plan, [(RSA, 4)])
            batch = measure_batches(ours, store, workers, plan)
            if isinstance(batch, str):
                progress(f"{store}: {batch}")
                results.notes.append(f"{store}: {batch}.")
            else:
                results.batches += batch
        results.notes.append(f"{store}, {workers} workers: {stored_check(ours)}.")
        results.rows += rows


def render(
    results: Results, url: str | None, load: tuple[str, str], args: argparse.Namespace
) -> str:
    lines = [
        f"Command: `{' '.join(['python -m bench.http_issuance', *sys.argv[1:]])}`.",
        f"Commit: {report.commit()}; pca serve from "
        f"{report.commit(args.checkout.resolve()) if args.checkout else 'the same'}. "
        f"Machine: {report.machine(versions(url))}.",
        f"1-minute load average {load[0]} at the start, {load[1]} at the end; "
        f"{args.runs} runs of {args.duration} s (RSA {args.rsa_duration} s) after "
        f"{args.warmup} s of warm-up.",
        "",
        *ceiling_table(results.ceilings, results.generator),
        "",
        *single_table(results.rows, {c.key: c for c in results.ceilings if c.processes == 2}),
        "",
        "Best `--workers` (EC P-256):",
        "",
        *best_workers(results.rows),
        "",
    ]
    if results.batches:
        ceilings = {c.key: c for c in results.ceilings if c.processes == 2}
        lines += [*batch_table(results.batches, ceilings), ""]
    lines += ["Checks:", "", *(f"- {note}" for note in results.notes)]
    return "\n".join(lines)


def _exit_cleanly(signum: int, frame: object) -> None:
    """On SIGTERM, unwind, so the servers and the PostgreSQL cluster are stopped."""
    del frame
    raise SystemExit(128 + signum)


def main() -> None:
    missing = {tool: hint for tool, hint in TOOLS.items() if shutil.which(tool) is None}
    if missing:
        for tool, hint in missing.items():
            print(f"{tool} is not installed; install it with: {hint}", file=sys.stderr)
        raise SystemExit(2)
    args = parse_args()
    # A benchmark measures capacity: no per-token issuance limit in the servers it starts.
    os.environ[RATE_LIMIT_ENV] = "0"
    signal.signal(signal.SIGTERM, _exit_cleanly)
    started = report.load_average()
    wanted = argparse.Namespace(postgres_url=args.postgres_url, postgres=not args.no_postgres)
    with tempfile.TemporaryDirectory() as name, postgres_url(wanted, Path(name)) as url:
        results = run_all(args, Path(name), url)
        text = render(results, url, (started, report.load_average()), args)
    print(text, flush=True)
    if args.update_docs:
        report.update_docs(MARKER, text)


if __name__ == "__main__":
    main()
