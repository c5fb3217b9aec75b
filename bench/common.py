"""Helpers shared by the benchmarks."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.pgserver import PostgresServer


@contextmanager
def postgres_url(args: argparse.Namespace, directory: Path) -> Iterator[str | None]:
    """``--postgres-url``, or a throwaway server with ``--postgres``, or None."""
    if args.postgres_url:
        yield args.postgres_url
    elif args.postgres:
        with PostgresServer.start(directory / "postgres") as server:
            yield server.url
    else:
        yield None


def print_rows(rows: Iterable[str]) -> None:
    """Print table rows as they come (a long run shows progress)."""
    for row in rows:
        print(row, flush=True)
