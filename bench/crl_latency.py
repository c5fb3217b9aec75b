"""Revocation -> listed in the served CRL, with a million certificates already revoked.

    python -m bench.crl_latency [--revoked 1000000] [--revocations 50] [--data-dir DIR]
                                [--postgres | --postgres-url URL] [--skip-sqlite]

The store is seeded the way bench.projections seeds it (events written straight through
the application's event store, 500 certificates a save) but with every certificate
revoked, then the read models catch up (timed) and a real ``pca serve`` (1 worker)
starts on it. Its publisher signs the first base CRL of every entry (timed until the base
is served). Then ``--revocations`` certificates are issued over HTTP and revoked one by
one: each latency runs from the revoke call's response until the CRL a validator must
fetch lists the serial. One more revocation goes first, reported apart: until issue 22's
evening it waited for the first audit checkpoint, which the publisher's thread signed
after walking the whole log of a freshly seeded store (124-305 s); checkpoints now have a
thread of their own and start from the link the start-up check verified. The certificate
names the base (CDP) and the base names the delta (freshestCRL): the delta is polled every
10 ms, and the base fetched again only when the delta names a base other than the one
held, as a delta-aware validator does.
``--data-dir`` keeps the seeded stores (PostgreSQL: schema bench_crl_<size>) for reuse.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

from cryptography import x509

from bench.common import postgres_url, print_rows, timed_catch_up
from bench.projections import BENCH, Filled, fill, fill_once, kept_schema
from domain.adapters.settings import Settings, open_service
from domain.model.tokens import Role
from tests.live import LiveServer

POLL_SECONDS = 0.01
FRESH_DAYS = 60  # seeded certificates were issued in these last days: none expired yet
BASE_TIMEOUT = 600.0  # seconds for the first base CRL of a million entries
START_TIMEOUT = 1800.0  # seconds: a starting server first verifies the whole audit chain


class SlowStartingServer(LiveServer):
    """``pca serve`` given time to verify an audit chain of millions of events at start
    (docs/BENCHMARKS.md, "Start-up check of the audit chain")."""

    def _wait_until_up(self, timeout: float = START_TIMEOUT) -> None:
        super()._wait_until_up(timeout)


class Validator:
    """What a delta-aware relying party holds for one CA: the base CRL it fetched."""

    def __init__(self, live: LiveServer, issuer_id: str) -> None:
        self._live = live
        self._base_path = f"/crl/{issuer_id}.crl"
        self._delta_path = f"/crl/{issuer_id}-delta.crl"
        self.base = self._fetch(self._base_path)

    def _fetch(self, path: str) -> x509.CertificateRevocationList | None:
        status, _, der = self._live.request("GET", path)
        return x509.load_der_x509_crl(der) if status == 200 else None

    def lists(self, serial: int) -> bool:
        """True once the delta, or a newer base it points at, lists ``serial``."""
        delta = self._fetch(self._delta_path)
        if delta is None:
            return False
        if delta.get_revoked_certificate_by_serial_number(serial) is not None:
            return True
        if self.base is None or _number(self.base) != _base_number(delta):
            self.base = self._fetch(self._base_path)
        return (
            self.base is not None
            and self.base.get_revoked_certificate_by_serial_number(serial) is not None
        )


def _number(crl: x509.CertificateRevocationList) -> int:
    return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)


def _base_number(delta: x509.CertificateRevocationList) -> int:
    return int(delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number)


def fill_revoked(settings: Settings, size: int) -> Filled:
    """``size`` certificates, every one revoked and none expired (so the base CRL lists
    them all)."""
    return fill(settings, size, revoked_share=1, age_days=FRESH_DAYS)


def _first_base(live: LiveServer, issuer_id: str) -> tuple[Validator, float]:
    """Wait for the first base CRL (the publisher signs it from the whole revocation index,
    which the catch-up completed before the server started); the validator holding it and
    the seconds it took."""
    started = time.perf_counter()
    deadline = started + BASE_TIMEOUT
    while time.perf_counter() < deadline:
        validator = Validator(live, issuer_id)
        if validator.base is not None:
            return validator, time.perf_counter() - started
        time.sleep(0.5)
    raise TimeoutError(f"no base CRL after {BASE_TIMEOUT:.0f} s")


def _prepare(settings: Settings, issuer_id: UUID, count: int) -> str:
    """Quota for ``count`` more certificates and an admin token, made in this process
    (`pca tokens create` would first verify the whole audit chain, minutes at millions
    of events); the token."""
    service = open_service(settings)
    try:
        root_id = service.get_ca(issuer_id).parent_id
        assert root_id is not None
        service.purchase_quota(BENCH, root_id, count)
        service.assign_quota(BENCH, root_id, issuer_id, count)
        token, _ = service.create_token(BENCH, "bench", Role.ADMIN)
    finally:
        service.close()
        service.keystore.close()
    return token


def _latencies(
    live: LiveServer, admin: str, issuer_id: str, validator: Validator, count: int
) -> list[float]:
    body = {"type": "server", "validity_days": 30, "key_algorithm": "EC_P256"}
    issued = [
        live.json(
            "POST",
            f"/api/v1/cas/{issuer_id}/certificates",
            admin,
            {**body, "common_name": f"r{n}.bench.example"},
        )
        for n in range(count)
    ]
    latencies = []
    for certificate in issued:
        serial = int(certificate["serial_number"], 16)
        path = f"/api/v1/certificates/{certificate['id']}/revoke"
        live.json("POST", path, admin, {"reason": "superseded"})
        start = time.perf_counter()
        while not validator.lists(serial):
            time.sleep(POLL_SECONDS)
        latencies.append(time.perf_counter() - start)
    return latencies


def measure(settings: Settings, label: str, size: int, revocations: int) -> Iterator[str]:
    """Markdown rows as they come: seeding, catch-up, start-up, the first base CRL, then
    the latencies. One worker: each worker verifies the whole chain before it serves."""
    filled, filling = fill_once(settings, size, fill_revoked)
    timing = timed_catch_up(settings)
    seeded = "reused" if filling is None else f"{filling:.0f} s"
    yield (
        f"| {label} | {size:,} revoked | seed ({seeded}), catch-up of {timing.events:,} "
        f"events | {timing.describe()} |"
    )
    admin = _prepare(settings, filled.issuer_id, revocations + 1)
    started = time.perf_counter()
    with SlowStartingServer(settings, workers=1) as live:
        yield (
            f"| {label} | {size:,} revoked | `pca serve` up (1 worker; the audit chain "
            f"verified first) | {time.perf_counter() - started:.0f} s |"
        )
        issuer_id = str(filled.issuer_id)
        validator, base_seconds = _first_base(live, issuer_id)
        assert validator.base is not None
        yield (
            f"| {label} | {size:,} revoked | first base CRL served ({len(validator.base):,} "
            f"entries) | {base_seconds:.1f} s |"
        )
        first, *rest = _latencies(live, admin, issuer_id, validator, revocations + 1)
    yield (
        f"| {label} | {size:,} revoked | the first revocation after start "
        f"(the first audit checkpoint is signed on its own thread meanwhile) "
        f"| {first * 1000:.0f} ms |"
    )
    ordered = sorted(rest)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    yield (
        f"| {label} | {size:,} revoked | revocation -> listed in the served CRL "
        f"(n={len(ordered)}) | p50 {statistics.median(ordered) * 1000:.0f} ms, "
        f"p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revoked", type=int, default=1_000_000)
    parser.add_argument("--revocations", type=int, default=50)
    parser.add_argument("--postgres", action="store_true", help="also on a throwaway cluster")
    parser.add_argument("--postgres-url", help="also on this PostgreSQL database")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--data-dir", type=Path, help="keep the seeded stores here and reuse them")
    args = parser.parse_args()
    print("| store | seeded | measure | result |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as directory, postgres_url(args, Path(directory)) as url:
        base = args.data_dir or Path(directory)
        size = args.revoked
        if not args.skip_sqlite:
            settings = Settings(data_dir=base / f"sqlite-crl-{size}")
            print_rows(measure(settings, "SQLite", size, args.revocations))
        if url is not None:
            with kept_schema(url, f"crl_{size:d}", keep=args.data_dir is not None) as schema:
                settings = Settings(
                    data_dir=base / f"pg-crl-{size}", database_url=url, database_schema=schema
                )
                print_rows(measure(settings, "PostgreSQL", size, args.revocations))


if __name__ == "__main__":
    main()
