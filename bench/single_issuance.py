"""The single-request hot path: one certificate per call, as an HTTP request makes it.

    python -m bench.single_issuance [--count 400] [--threads 1 4] [--postgres-url URL]

Each thread calls ``PrivateCA.issue_certificate`` for one server-made P-256 key at a
time, so groups are as small as the concurrency makes them. Reports microseconds per
issuance, wall time and this process's CPU time (the steadier figure on a shared
machine), and the log positions per certificate. To count fsyncs, run it
under ``strace -f -c -e trace=fdatasync,fsync``. Run it from two trees (before and
after a change) in one shell loop to compare on the same machine state.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from bench.signers import issue_batch
from domain.adapters.settings import Settings, open_service
from tests.builders import enabled_intermediate, enabled_root


def measure(settings: Settings, count: int, threads: int) -> str:
    """One line: store, threads, µs (wall, CPU) per issuance, log positions per certificate."""
    service = open_service(settings)
    try:
        ca_id = enabled_intermediate(service, enabled_root(service, quota=10 * count), 10 * count)
        issue_batch(service, ca_id, 40, threads)  # warm caches
        head, cpu = service.recorder.max_notification_id() or 0, time.process_time()
        seconds = issue_batch(service, ca_id, count, threads)
        cpu = time.process_time() - cpu
        events = (service.recorder.max_notification_id() or 0) - head
    finally:
        service.close()
        service.keystore.close()
    store = "postgres" if settings.uses_postgres else "sqlite"
    return (
        f"{store:8} threads={threads} {seconds / count * 1e6:8.0f} us/issuance"
        f" {cpu / count * 1e6:6.0f} us CPU/issuance  events/cert={events / count:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--postgres-url", help="also measure on this PostgreSQL database")
    parser.add_argument("--schema", default="bench_single")
    arguments = parser.parse_args()
    for threads in arguments.threads:
        with tempfile.TemporaryDirectory() as directory:
            settings = Settings(data_dir=Path(directory) / "data", public_url="http://pca.test")
            print(measure(settings, arguments.count, threads), flush=True)
            if arguments.postgres_url:
                schema = f"{arguments.schema}_{threads}_{time.monotonic_ns()}"
                pg = dataclasses.replace(
                    settings, database_url=arguments.postgres_url, database_schema=schema
                )
                print(measure(pg, arguments.count, threads), flush=True)


if __name__ == "__main__":
    main()
