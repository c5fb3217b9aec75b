"""Read models: catch-up from position 0 alone, on stores filled beforehand.

    python -m bench.catchup DIR [DIR ...] [--runs 2] [--postgres-url URL --schema NAME]

Each DIR is a data directory bench.projections filled (``--data-dir``; its ``sqlite-N``
directories). Per run and store, in turn, the read models are reset and
:func:`projections.readmodels.worker.catch_up` projects the whole log from position 0:
events per second, the process's CPU seconds and bytes written (``/proc/self/io``), and
the load average at the start. With ``--postgres-url`` the store is that database's schema
``--schema`` (bench.projections keeps ``bench_<size>``) and DIR only holds its key files.

To compare two versions of the code in one session, run this file over each version's
tree (``PYTHONPATH``) on copies of the same store, alternating.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.common import print_rows
from bench.projections import reset_and_catch_up
from domain.adapters.settings import Settings


def _settings(directory: Path, url: str | None, schema: str | None) -> Settings:
    if url is None:
        return Settings(data_dir=directory)
    return Settings(data_dir=directory, database_url=url, database_schema=schema or "public")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", type=Path, nargs="+", help="filled data directories")
    parser.add_argument("--runs", type=int, default=1, help="runs per store, in turn")
    parser.add_argument("--postgres-url", help="the store is this database's --schema")
    parser.add_argument("--schema", help="with --postgres-url: the filled schema")
    args = parser.parse_args()
    print("| run | store | load (1 min) | catch-up from 0 |")
    print("|---|---|---:|---|")
    for run in range(1, args.runs + 1):
        for store in args.stores:
            load = os.getloadavg()[0]
            timing = reset_and_catch_up(_settings(store, args.postgres_url, args.schema))
            print_rows([f"| {run} | {store} | {load:.1f} | {timing.describe()} |"])


if __name__ == "__main__":
    main()
