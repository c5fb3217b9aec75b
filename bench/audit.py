"""Audit replay and compliance exports: speed and peak memory at growing numbers of
certificates.

    python -m bench.audit --sizes 100000,1000000 [--postgres | --postgres-url URL]
                          [--postgres-sizes 100000] [--skip-sqlite] [--full-sizes 100000]
                          [--startup-only]

Each size gets a fresh store filled the way bench/projections.py fills it (one real root
and intermediate, then N certificates written straight through the application's event
store, 500 per save: QuotaConsumed + CertificateIssued each, with realistic fields and one
of 16 real DERs, 1 % revoked), so N certificates are about 2N events.

Then every measurement runs in a fresh interpreter (``multiprocessing`` spawn), so its peak
resident set size (``VmHWM`` in /proc/self/status, Linux) is its own; "RSS at start" is its
resident size once the modules are imported, before the work. The "floor" row is an
interpreter that only opens the log and reads its head.

- **start-up check**: what a server does before serving (``create_app``): open the service
  and verify the whole audit chain and its checkpoints (``ChainGuard.verify_new``, the first
  call); events per second, wall clock. ``--startup-only`` measures only this.
- **replay**: :func:`projections.audit.pointintime.state_at` at the end of the log; events per
  second over every event in the log, wall clock.
- **exports**: :func:`projections.audit.reports.write_report` at the end of the log into a sink
  that only counts bytes (the body is still hashed and the manifest signed); rows per
  second and the body's size. Every kind in both formats at the sizes in ``--full-sizes``;
  at other sizes inventory (CSV and JSON), revocations, expiring, quota-ledger and
  activity as CSV. ``certificates/s`` divides the size by the time: what a report that
  writes few rows (revocations, expiring) still has to get through.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.common import postgres_url, print_rows
from bench.projections import fill_once
from domain.adapters.settings import Settings, open_service
from domain.audit.guard import ChainGuard
from projections.audit.logcut import LogReader
from projections.audit.pointintime import state_at
from projections.audit.reports import ReportFormat, ReportKind, ReportParameters, write_report
from tests.pgserver import create_schema, drop_schema

CSV, JSON = ReportFormat.CSV, ReportFormat.JSON
LARGE_EXPORTS = (
    (ReportKind.INVENTORY, CSV),
    (ReportKind.INVENTORY, JSON),
    (ReportKind.REVOCATIONS, CSV),
    (ReportKind.EXPIRING, CSV),
    (ReportKind.QUOTA_LEDGER, CSV),
    (ReportKind.ACTIVITY, CSV),
)


@dataclass(frozen=True)
class Measured:
    """One measurement, as its child process reports it."""

    seconds: float
    count: int  # events replayed or rows written
    body_bytes: int
    start_rss_mb: float  # resident when the work began (interpreter and imports)
    peak_rss_mb: float


class _CountingSink:
    """A binary file that keeps nothing and counts what it was given."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


def _peak_rss_mb() -> float:
    """This process image's peak resident set size (VmHWM). Not ``ru_maxrss``: Linux
    carries that across exec, so a spawned child would report its parent's size too."""
    return _status_kb("VmHWM") / 1024


def _rss_now_mb() -> float:
    return _status_kb("VmRSS") / 1024


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(field)


def _baseline(settings: Settings) -> Measured:
    start = _rss_now_mb()
    with LogReader.open(settings) as reader:
        count = reader.head()
    return Measured(0.0, count, 0, start, _peak_rss_mb())


def _startup_check(settings: Settings) -> Measured:
    start = _rss_now_mb()
    started = time.perf_counter()
    service = open_service(settings)
    try:
        breach = ChainGuard.of(service).verify_new()
        events = service.recorder.max_notification_id() or 0
    finally:
        service.close()
        service.keystore.close()
    seconds = time.perf_counter() - started
    assert breach is None, breach
    return Measured(seconds, events, 0, start, _peak_rss_mb())


def _replay(settings: Settings) -> Measured:
    start = _rss_now_mb()
    with LogReader.open(settings) as reader:
        events = reader.head()
    started = time.perf_counter()
    state = state_at(settings, events)
    seconds = time.perf_counter() - started
    assert state.position == events
    return Measured(seconds, events, 0, start, _peak_rss_mb())


def _export(settings: Settings, kind: ReportKind, fmt: ReportFormat, at: int) -> Measured:
    start = _rss_now_mb()
    sink = _CountingSink()
    started = time.perf_counter()
    manifest = write_report(settings, kind, fmt, ReportParameters(at=at), sink)
    seconds = time.perf_counter() - started
    return Measured(seconds, manifest.row_count, sink.size, start, _peak_rss_mb())


def _in_child(function: Callable[..., Measured], *args: object) -> Measured:
    """Run ``function`` (of this module) in a fresh interpreter, for its own peak RSS."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        result: Measured = pool.apply(function, args)
    return result


def measure(
    settings: Settings,
    label: str,
    size: int,
    every_kind: bool,
    startup_only: bool = False,
    replay_only: bool = False,
) -> list[str]:
    """Markdown rows: fill (or the store an earlier run left, see bench.projections's
    fill_once), floor, start-up check, replay, then each export; ``replay_only`` leaves out
    the start-up check and the exports."""
    filled, filling = fill_once(settings, size)
    head = f"| {label} | {size:,} |"
    fill_seconds = "reused" if filling is None else f"{filling:.0f}"
    rows = [f"{head} fill: {filled.events:,} events | | {fill_seconds} | | | | | |"]
    floor = _in_child(_baseline, settings)
    rows.append(
        f"{head} floor: interpreter, open the log, read its head | | | | | | "
        f"{floor.start_rss_mb:.0f} | {floor.peak_rss_mb:.0f} |"
    )
    if replay_only:
        return [*rows, _replay_row(settings, head, size)]
    check = _in_child(_startup_check, settings)
    rows.append(
        f"{head} start-up check (open, verify chain and checkpoints) | {check.count:,} events"
        f" | {check.seconds:.1f} | {check.count / check.seconds:,.0f} events/s | "
        f"{size / check.seconds:,.0f} | | {check.start_rss_mb:.0f} | {check.peak_rss_mb:.0f} |"
    )
    if startup_only:
        return rows
    rows.append(_replay_row(settings, head, size))
    exports = (
        [(kind, fmt) for kind in ReportKind for fmt in ReportFormat]
        if every_kind
        else list(LARGE_EXPORTS)
    )
    for kind, fmt in exports:
        done = _in_child(_export, settings, kind, fmt, filled.events)
        rows.append(
            f"{head} export {kind.value} {fmt.value} | {done.count:,} rows | "
            f"{done.seconds:.1f} | {done.count / done.seconds:,.0f} rows/s | "
            f"{size / done.seconds:,.0f} | {done.body_bytes / 1e6:,.1f} | "
            f"{done.start_rss_mb:.0f} | {done.peak_rss_mb:.0f} |"
        )
    return rows


def _replay_row(settings: Settings, head: str, size: int) -> str:
    replay = _in_child(_replay, settings)
    return (
        f"{head} replay to the end (`state_at`) | {replay.count:,} events | "
        f"{replay.seconds:.1f} | {replay.count / replay.seconds:,.0f} events/s | "
        f"{size / replay.seconds:,.0f} | | {replay.start_rss_mb:.0f} | {replay.peak_rss_mb:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100000", help="comma-separated sizes (SQLite)")
    parser.add_argument("--full-sizes", default="100000", help="sizes that export every kind")
    parser.add_argument("--postgres", action="store_true", help="also on a throwaway cluster")
    parser.add_argument("--postgres-url", help="also on this PostgreSQL database")
    parser.add_argument("--postgres-sizes", default="100000", help="sizes on PostgreSQL")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--startup-only", action="store_true", help="only the start-up check")
    parser.add_argument("--replay-only", action="store_true", help="only the replay")
    parser.add_argument(
        "--data-dir", type=Path, help="keep the filled SQLite stores here and reuse them"
    )
    args = parser.parse_args()
    full = {int(size) for size in args.full_sizes.split(",") if size}
    print(f"started {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}Z", flush=True)
    print(
        "| store | certificates | measure | output | seconds | output rate "
        "| certificates/s | body MB | RSS at start MB | peak RSS MB |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as directory, postgres_url(args, Path(directory)) as url:
        if not args.skip_sqlite:
            for size in (int(size) for size in args.sizes.split(",")):
                base = args.data_dir or Path(directory)
                settings = Settings(data_dir=base / f"sqlite-{size}")
                print_rows(
                    measure(
                        settings, "SQLite", size, size in full, args.startup_only, args.replay_only
                    )
                )
        if url is not None:
            for size in (int(size) for size in args.postgres_sizes.split(",")):
                found = _on_postgres(url, Path(directory) / f"pg-{size}", size, size in full, args)
                print_rows(found)


def _on_postgres(
    url: str, data_dir: Path, size: int, every_kind: bool, args: argparse.Namespace
) -> list[str]:
    schema = create_schema(url)
    try:
        settings = Settings(data_dir=data_dir, database_url=url, database_schema=schema)
        return measure(settings, "PostgreSQL", size, every_kind, args.startup_only)
    finally:
        drop_schema(url, schema)


if __name__ == "__main__":
    main()
