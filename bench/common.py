"""Helpers shared by the benchmarks."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from domain.adapters.settings import Settings
from projections.readmodels.worker import catch_up
from tests.pgserver import PostgresServer


@contextmanager
def postgres_url(args: argparse.Namespace, directory: Path) -> Iterator[str | None]:
    """``--postgres-url``, or a throwaway server with ``--postgres`` (through its Unix
    socket with ``--postgres-socket``, where the bench offers it), or None."""
    if args.postgres_url:
        yield args.postgres_url
    elif args.postgres:
        with PostgresServer.start(directory / "postgres") as server:
            yield server.socket_url if getattr(args, "postgres_socket", False) else server.url
    else:
        yield None


def print_rows(rows: Iterable[str]) -> None:
    """Print table rows as they come (a long run shows progress)."""
    for row in rows:
        print(row, flush=True)


@dataclass(frozen=True)
class CatchUpTiming:
    """One timed catch-up: events projected, wall and process CPU seconds, bytes written."""

    events: int
    seconds: float
    cpu_seconds: float
    written: int

    def describe(self) -> str:
        """``N events/s (S s, C CPU s, W GB written)``."""
        return (
            f"{self.events / max(self.seconds, 1e-9):,.0f} events/s ({self.seconds:.1f} s, "
            f"{self.cpu_seconds:.1f} CPU s, {self.written / 1e9:.2f} GB written)"
        )


def timed_catch_up(settings: Settings) -> CatchUpTiming:
    """:func:`~projections.readmodels.worker.catch_up` of ``settings``'s read models, timed;
    bytes written are this process's (``write_bytes`` of ``/proc/self/io``)."""
    written, cpu, started = _written_bytes(), time.process_time(), time.perf_counter()
    events = catch_up(settings)
    return CatchUpTiming(
        events,
        time.perf_counter() - started,
        time.process_time() - cpu,
        _written_bytes() - written,
    )


def _written_bytes() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "write_bytes":
            return int(value)
    return 0
