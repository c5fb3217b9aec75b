"""Read models: catch-up speed and list-query latency at growing numbers of certificates.

    python -m bench.projections --sizes 10000,100000,1000000 [--postgres | --postgres-url URL]
                                [--samples 200] [--skip-sqlite]

For each size, a fresh store gets one real root and intermediate (made by the service),
then ``size`` certificates written straight through the application's event store: for
each, the intermediate's QuotaConsumed and a CertificateIssued with realistic fields
(random 159-bit serial, DNS or e-mail SAN, 90 % server, not_before spread over 400 days,
90- or 365-day validity, so about half are expired) and one of 16 real certificate DERs
reused; 1 % are then revoked. Saves carry 500 certificates each, so filling is not the
cost of issuance (see bench/issuance.py for that).

Then :func:`projections.readmodels.worker.catch_up` projects the whole log from position 0 (events
per second over all events, wall clock), the planner statistics are refreshed, and each
query runs ``samples`` times (fewer, at least 20, for queries slower than 15 s in total)
after five warm-ups, through the public ReadModels API: p50 and p99 in milliseconds.
``--postgres`` starts a throwaway PostgreSQL cluster (tests/pgserver.py: fsync off, so
writes are faster than on a durable server).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from uuid import UUID

import psycopg
from psycopg import sql

from bench.common import CatchUpTiming, postgres_url, print_rows, timed_catch_up
from domain.adapters.settings import Settings, open_service
from domain.application.service import PrivateCA
from domain.model.authority import CertificateAuthority
from domain.model.certificate import Certificate
from domain.model.values import (
    SAN,
    CertificateType,
    RequestContext,
    RevocationReason,
    SANType,
)
from projections.readmodels.models import CertificateFilter, CertificateViewStatus
from projections.readmodels.queries import ReadModels, encode_cursor
from projections.readmodels.sql import LIKE, like_pattern
from projections.readmodels.store import open_view
from projections.readmodels.view import ReadModelView
from tests.builders import client_request, enabled_intermediate, enabled_root, issue
from tests.pgserver import create_schema, drop_schema
from tests.projection_helpers import logged_certificate

BENCH = RequestContext(actor="bench", request_id="bench")
SAVE_SIZE = 500
SAMPLE_DERS = 16
REVOKED_SHARE = 100  # one in this many
AGE_DAYS = 400  # not_before spread over this many days, so about half are expired
QUERY_BUDGET = 15.0  # seconds per query and size, once MIN_SAMPLES are taken
MIN_SAMPLES = 20


@dataclass(frozen=True)
class Filled:
    """What a filled store holds, for the queries to aim at."""

    issuer_id: UUID
    deep_position: int  # a certificate with about 5 % of the list older than it
    rare_text: str  # the name of one certificate
    revoked_serial: str
    events: int


def fill(
    settings: Settings,
    size: int,
    seed: int = 7,
    *,
    revoked_share: int = REVOKED_SHARE,
    age_days: int = AGE_DAYS,
) -> Filled:
    """A fresh store with ``size`` certificates under one intermediate (module docstring),
    one in ``revoked_share`` of them revoked, issued over the last ``age_days``."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    service = open_service(settings)
    quota = size + SAMPLE_DERS
    try:
        root_id = enabled_root(service, quota=quota)
        issuer_id = enabled_intermediate(service, root_id, remaining=quota)
        ders = [
            issue(
                service, issuer_id, client_request() if n % 4 == 0 else None
            ).certificate.certificate_der
            for n in range(SAMPLE_DERS)
        ]
        positions, revoked_serial = _write_certificates(
            service, issuer_id, _Shape(size, revoked_share, age_days), ders, rng
        )
        events = service.recorder.max_notification_id() or 0
    finally:
        service.close()
        service.keystore.close()
    return Filled(issuer_id, positions[size // 20], "host4242.", revoked_serial, events)


FILLED_FILE = "filled.json"


def fill_once(
    settings: Settings, size: int, filler: Callable[[Settings, int], Filled] = fill
) -> tuple[Filled, float | None]:
    """``filler`` fills the store of ``settings`` unless an earlier run left it filled (its
    data directory holds FILLED_FILE); what it holds, and the seconds filling took (None if
    reused)."""
    marker = settings.data_dir / FILLED_FILE
    if marker.exists():
        saved = json.loads(marker.read_text())
        return replace(Filled(**saved), issuer_id=UUID(saved["issuer_id"])), None
    started = time.perf_counter()
    filled = filler(settings, size)
    seconds = time.perf_counter() - started
    marker.write_text(json.dumps({**asdict(filled), "issuer_id": str(filled.issuer_id)}))
    return filled, seconds


def _write_certificates(
    service: PrivateCA,
    issuer_id: UUID,
    shape: _Shape,
    ders: list[bytes],
    rng: random.Random,
) -> tuple[list[int], str]:
    """Save ``shape.size`` certificates SAVE_SIZE at a time; their positions and a revoked
    serial."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    positions: list[int] = []
    revoked_serial = ""
    for start in range(0, shape.size, SAVE_SIZE):
        ca = service.get_ca(issuer_id)
        certificates = [
            _certificate(ca, n, ders[n % len(ders)], (now, shape.age_days), rng)
            for n in range(start, min(shape.size, start + SAVE_SIZE))
        ]
        for certificate in certificates[:: shape.revoked_share]:
            certificate.revoke(BENCH, RevocationReason.KEY_COMPROMISE, now)
            revoked_serial = certificate.serial_number
        recordings = service.save(ca, *certificates)
        positions.extend(
            r.notification.id
            for r in recordings
            if isinstance(r.domain_event, Certificate.CertificateIssued)
        )
    return positions, revoked_serial


@dataclass(frozen=True)
class _Shape:
    size: int
    revoked_share: int  # one in this many is revoked
    age_days: int  # issued over this many days before now


def _certificate(
    ca: CertificateAuthority,
    n: int,
    der: bytes,
    issued: tuple[dt.datetime, int],
    rng: random.Random,
) -> Certificate:
    """Certificate ``n``, issued in the ``issued[1]`` days before ``issued[0]``."""
    now, age_days = issued
    serial = format(rng.getrandbits(158) | (1 << 158), "x")
    is_server = n % 10 != 0
    name = f"host{n}.example.com" if is_server else f"User {n}"
    san = SAN(SANType.DNS, name) if is_server else SAN(SANType.EMAIL, f"user{n}@example.com")
    not_before = now - dt.timedelta(days=rng.randrange(age_days), seconds=rng.randrange(86400))
    # The events only; the issuance rules and signing are not what this benchmark measures.
    validity = (not_before, rng.choice((90, 365)))
    return logged_certificate(BENCH, ca, serial, (name, san), validity, der)


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return f"{statistics.median(ordered):.2f} / {p99:.2f}"


def _queries(
    filled: Filled, now: dt.datetime, view: ReadModelView
) -> dict[str, Callable[[ReadModels], object]]:
    mine = CertificateFilter(issuer_id=filled.issuer_id)
    scan = view.sql.certificate_page(["ca_id = ?", LIKE], cursor=False)
    scan_params = (str(filled.issuer_id), like_pattern(filled.rare_text), 51)
    deep = encode_cursor(filled.deep_position)

    def page(
        certificate_filter: CertificateFilter, cursor: str | None = None
    ) -> Callable[[ReadModels], object]:
        return lambda rm: rm.list_certificates(certificate_filter, now, 50, cursor)

    return {
        "first page": page(mine),
        "deep page (cursor, 95 % down)": page(mine, deep),
        "status=revoked": page(replace(mine, status=CertificateViewStatus.REVOKED)),
        "status=expired": page(replace(mine, status=CertificateViewStatus.EXPIRED)),
        "status=issued, expiring in 30 days": page(
            replace(
                mine,
                status=CertificateViewStatus.ISSUED,
                expiring_before=now + dt.timedelta(days=30),
            )
        ),
        "type=client": page(replace(mine, type=CertificateType.CLIENT)),
        "text, common (example)": page(replace(mine, text="example")),
        "text, one match": page(replace(mine, text=filled.rare_text)),
        "text, one match, scanned as before the index": lambda _: view.fetch(scan, scan_params),
        "CA list (counts expired)": lambda rm: rm.list_cas(now),
        "revocation status (OCSP)": lambda rm: rm.revocation_status(
            filled.issuer_id, filled.revoked_serial
        ),
    }


def _time(
    query: Callable[[ReadModels], object], read_models: ReadModels, samples: int
) -> list[float]:
    """Up to ``samples`` timings in ms, fewer once QUERY_BUDGET seconds are spent."""
    timings: list[float] = []
    deadline = time.perf_counter() + QUERY_BUDGET
    while len(timings) < samples and (len(timings) < MIN_SAMPLES or time.perf_counter() < deadline):
        begin = time.perf_counter()
        query(read_models)
        timings.append((time.perf_counter() - begin) * 1000)
    return timings


def measure(
    settings: Settings, label: str, size: int, samples: int, *, queries_only: bool = False
) -> list[str]:
    """Markdown rows: fill, catch-up, then each query's p50 / p99; with ``queries_only``
    the read models a previous run left are queried as they are (opening them creates any
    index this release adds), without projecting the log again."""
    filled, filling = fill_once(settings, size)
    rows = [] if queries_only else [_catch_up_row(settings, label, size, filling)]
    with open_view(settings) as view:
        view.analyze()  # what autovacuum does soon after a bulk load; rebuild does it too
    now = dt.datetime.now(dt.UTC)
    with ReadModels.open(settings) as read_models, open_view(settings) as view:
        for name, query in _queries(filled, now, view).items():
            for _ in range(5):
                query(read_models)
            timings = _time(query, read_models, samples)
            rows.append(
                f"| {label} | {size:,} | {name} (n={len(timings)}) | {_percentiles(timings)} |"
            )
    return rows


def _catch_up_row(settings: Settings, label: str, size: int, filling: float | None) -> str:
    timing = reset_and_catch_up(settings)
    fill_note = "store reused" if filling is None else f"fill took {filling:.0f} s"
    return (
        f"| {label} | {size:,} | catch-up of {timing.events:,} events "
        f"({fill_note}) | {timing.describe()} |"
    )


def reset_and_catch_up(settings: Settings) -> CatchUpTiming:
    """Empty the read models, then time their catch-up from position 0."""
    with open_view(settings) as view:
        view.reset()
    return timed_catch_up(settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated sizes")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--postgres", action="store_true", help="also on a throwaway cluster")
    parser.add_argument("--postgres-url", help="also on this PostgreSQL database")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--queries-only",
        action="store_true",
        help="with --data-dir: query the read models a previous run left, without catch-up",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep the filled stores here (PostgreSQL: schemas bench_<size>) and reuse them",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    only = args.queries_only and args.data_dir is not None
    print("| store | certificates | measure | result (p50 / p99 ms) |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as directory, postgres_url(args, Path(directory)) as url:
        base = args.data_dir or Path(directory)
        for size in sizes:
            if not args.skip_sqlite:
                settings = Settings(data_dir=base / f"sqlite-{size}")
                print_rows(measure(settings, "SQLite", size, args.samples, queries_only=only))
            if url is not None:
                with kept_schema(url, f"{size:d}", keep=args.data_dir is not None) as schema:
                    settings = Settings(
                        data_dir=base / f"pg-{size}", database_url=url, database_schema=schema
                    )
                    print_rows(
                        measure(settings, "PostgreSQL", size, args.samples, queries_only=only)
                    )


@contextmanager
def kept_schema(url: str, name: str, *, keep: bool) -> Iterator[str]:
    """A fresh schema dropped afterwards, or with ``keep`` schema bench_<name> kept."""
    if keep:
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(f"bench_{name}"))
            )
        yield f"bench_{name}"
        return
    schema = create_schema(url)
    try:
        yield schema
    finally:
        drop_schema(url, schema)


if __name__ == "__main__":
    main()
