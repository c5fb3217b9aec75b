"""Cost curves: issuance and certificate-list latency as the store grows (issue 7).

    python -m bench.cost_curves [--sizes 10000,100000,1000000] [--issues 300] [--samples 200]
                                [--postgres | --postgres-url URL] [--skip-sqlite]
                                [--update-docs]

The issue asks that issuance does not slow down as the store grows and that a certificate
list's p99 stays under 20 ms with a million certificates stored. For each size a fresh store
is filled by :func:`bench.projections.fill` (one real root and intermediate, then N
certificates written through the event store, 500 per save, 1 % revoked; about 4 minutes
for 1M here) and the read models are caught up; every store stays on disk. Then, in this
process, each measurement takes ROUNDS turns over all stores, so that a change in the load
of a shared machine falls on every size alike:

* issuance: ``PrivateCA.issue_certificate`` of new P-256 server certificates under the
  filled intermediate (its quota topped up first) on a freshly opened service. The first
  call is reported apart (it loads the CA from its latest snapshot); then ``--issues``
  calls without and with an idempotency key (which adds a keyed lookup and a claim),
  each interleaved with the bare cryptography of bench/issuance.py, whose latency does
  not depend on the store and so shows how noisy the machine was;
* lists: ``ReadModels.list_certificates`` of 50 rows: the first page, a page 95 % down
  through a cursor, and the status filters revoked (1 %) and issued; five warm-ups, then
  ``--samples`` timed calls.

Latencies are p50 / p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import functools
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import report
from bench.common import postgres_url
from bench.issuance import _bare
from bench.projections import Filled, fill
from domain.adapters.settings import Settings, open_service
from domain.application.service import PrivateCA
from projections.readmodels.models import CertificateFilter, CertificateViewStatus
from projections.readmodels.queries import ReadModels, encode_cursor
from projections.readmodels.store import open_view
from projections.readmodels.worker import catch_up
from tests.builders import ADMIN, OPERATOR, server_request
from tests.pgserver import create_schema, drop_schema

MARKER = "cost_curves"
LIST_P99_BUDGET_MS = 20.0
PAGE = 50
WARM_UPS = 5
ISSUANCE = "issuance p50 / p99"
LISTS = "list: "
ROUNDS = 10  # turns over the stores, for issuance and for lists


def _ms(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return (time.perf_counter() - began) * 1000


def _p50_p99(samples: list[float]) -> str:
    return f"{statistics.median(samples):.2f} / {report.percentile(samples, 0.99):.2f}"


@dataclass(frozen=True)
class Stored:
    """A filled store whose read models have caught up."""

    store: str
    size: int
    settings: Settings
    filled: Filled
    cells: dict[str, str]


def prepare(store: str, settings: Settings, size: int) -> Stored:
    """Fill a fresh store with ``size`` certificates and catch its read models up."""
    progress(f"{store}: filling {size:,} certificates (about 4 minutes per million here)")
    began = time.perf_counter()
    filled = fill(settings, size)
    filling = time.perf_counter() - began
    began = time.perf_counter()
    catch_up(settings, progress=_catch_up_progress())
    catching = time.perf_counter() - began
    with open_view(settings) as view:
        view.analyze()  # what autovacuum does soon after a bulk load
    cells = {
        "events in the log": f"{filled.events:,}",
        "fill + catch-up, s (not measured work)": f"{filling:.0f} + {catching:.0f}",
    }
    return Stored(store, size, settings, filled, cells)


class Issuing:
    """Issuance under one filled store's intermediate, measured a round at a time.

    Rounds of every store take turns, so a change in the machine's load lands on all sizes
    alike instead of on whichever size was measured at that moment.
    """

    def __init__(self, stored: Stored, count: int) -> None:
        service = open_service(stored.settings)
        try:
            root_id = service.get_ca(stored.filled.issuer_id).parent_id
            assert root_id is not None
            service.purchase_quota(ADMIN, root_id, 2 * count + 1)
            service.assign_quota(ADMIN, root_id, stored.filled.issuer_id, 2 * count + 1)
        finally:
            _close(service)
        self.service = open_service(stored.settings)  # again: the first call finds no cache
        self.issue = functools.partial(
            self.service.issue_certificate, OPERATOR, stored.filled.issuer_id
        )
        self.first = _ms(lambda: self.issue(server_request()))
        self.bare = _bare(self.service, stored.filled.issuer_id, server_request())
        self.plain: list[float] = []
        self.keyed: list[float] = []
        self.yardstick: list[float] = []

    def round(self, count: int) -> None:
        for _ in range(count):
            request = server_request(f"n{len(self.plain)}.bench.example")
            self.plain.append(_ms(functools.partial(self.issue, request)))
            with_key = dataclasses.replace(request, idempotency_key=f"bench-{len(self.keyed)}")
            self.keyed.append(_ms(functools.partial(self.issue, with_key)))
            self.yardstick.append(_ms(self.bare))

    def cells(self) -> dict[str, str]:
        return {
            "issuance: first call after opening (ms)": f"{self.first:.1f}",
            ISSUANCE: _p50_p99(self.plain),
            "issuance with an idempotency key, p50 / p99": _p50_p99(self.keyed),
            "bare cryptography p50 / p99 (the machine's noise)": _p50_p99(self.yardstick),
        }

    def close(self) -> None:
        _close(self.service)


def _close(service: PrivateCA) -> None:
    service.close()
    service.keystore.close()


class Listing:
    """Certificate lists of one filled store through its read models, a round at a time."""

    def __init__(self, stored: Stored) -> None:
        self.read_models = ReadModels.open(stored.settings)
        now = dt.datetime.now(dt.UTC)
        mine = CertificateFilter(issuer_id=stored.filled.issuer_id)
        pages = {
            "first page": (mine, None),
            "page 95 % down (cursor)": (mine, encode_cursor(stored.filled.deep_position)),
            "status=revoked (1 %)": (
                dataclasses.replace(mine, status=CertificateViewStatus.REVOKED),
                None,
            ),
            "status=issued": (
                dataclasses.replace(mine, status=CertificateViewStatus.ISSUED),
                None,
            ),
        }
        self.queries = {
            name: functools.partial(self._page, certificate_filter, now, cursor)
            for name, (certificate_filter, cursor) in pages.items()
        }
        self.samples: dict[str, list[float]] = {name: [] for name in pages}
        for name, query in self.queries.items():
            if not query():
                raise RuntimeError(f"{name}: the page is empty; the fill did not take")
            for _ in range(WARM_UPS):
                query()

    def _page(
        self, certificate_filter: CertificateFilter, now: dt.datetime, cursor: str | None
    ) -> int:
        return len(self.read_models.list_certificates(certificate_filter, now, PAGE, cursor).items)

    def round(self, count: int) -> None:
        for name, query in self.queries.items():
            self.samples[name] += [_ms(query) for _ in range(count)]

    def cells(self) -> dict[str, str]:
        return {f"{LISTS}{name}, p50 / p99": _p50_p99(s) for name, s in self.samples.items()}

    def close(self) -> None:
        self.read_models.close()


def measure(
    stores: list[Stored], args: argparse.Namespace
) -> dict[tuple[str, int], dict[str, str]]:
    """Issuance, then lists, in ROUNDS turns over every store; cells per (store, size)."""
    columns = {(s.store, s.size): dict(s.cells) for s in stores}
    with contextlib.ExitStack() as stack:
        progress("issuance on every store, in turns")
        issuing = [stack.enter_context(contextlib.closing(Issuing(s, args.issues))) for s in stores]
        _in_turns(issuing, args.issues)
        progress("lists on every store, in turns")
        listing = [stack.enter_context(contextlib.closing(Listing(s))) for s in stores]
        _in_turns(listing, args.samples)
        for stored, issued, listed in zip(stores, issuing, listing, strict=True):
            columns[stored.store, stored.size] |= issued.cells() | listed.cells()
    return columns


def _in_turns(measurers: list[Issuing] | list[Listing], total: int) -> None:
    per_round = math.ceil(total / ROUNDS)
    for _ in range(ROUNDS):
        for measurer in measurers:
            measurer.round(per_round)


def _catch_up_progress() -> Callable[[int, int], None]:
    """Print the catch-up's progress about every tenth of the log."""
    shown = [-1]

    def show(position: int, end: int) -> None:
        tenth = position * 10 // max(end, 1)
        if tenth != shown[0]:
            shown[0] = tenth
            progress(f"  catch-up {position:,} / {end:,} events")

    return show


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _stores(
    args: argparse.Namespace, directory: Path, url: str | None, stack: contextlib.ExitStack
) -> Iterator[tuple[str, int, Settings]]:
    """Fresh storage for each size: SQLite and, if asked, a PostgreSQL schema that ``stack``
    drops (the SQLite files go with ``directory``)."""
    for size in (int(size) for size in args.sizes.split(",")):
        if not args.skip_sqlite:
            yield "SQLite", size, Settings(data_dir=directory / f"sqlite-{size}")
        if url is not None:
            schema = create_schema(url)
            stack.callback(drop_schema, url, schema)
            settings = Settings(directory / f"pg-{size}", database_url=url, database_schema=schema)
            yield "PostgreSQL", size, settings


def _size(size: int) -> str:
    return f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"


def verdicts(columns: dict[tuple[str, int], dict[str, str]]) -> list[str]:
    """Whether issuance stayed flat and the lists met the budget, per store."""
    lines = []
    for store in dict.fromkeys(store for store, _ in columns):
        sizes = sorted(size for name, size in columns if name == store)
        smallest, largest = columns[store, sizes[0]], columns[store, sizes[-1]]

        def p50(cells: dict[str, str]) -> float:
            return float(cells[ISSUANCE].split(" / ")[0])

        worst = max(
            float(value.split(" / ")[1])
            for name, value in largest.items()
            if name.startswith(LISTS)
        )
        verdict = "under" if worst < LIST_P99_BUDGET_MS else "OVER"
        lines.append(
            f"- {store}: issuance p50 at {_size(sizes[-1])} is "
            f"{p50(largest) / p50(smallest):.2f}x that at {_size(sizes[0])}; the slowest "
            f"list p99 at {_size(sizes[-1])} is {worst:.2f} ms, {verdict} the "
            f"{LIST_P99_BUDGET_MS:.0f} ms budget."
        )
    return lines


def render(columns: dict[tuple[str, int], dict[str, str]], load: tuple[str, str]) -> str:
    names = list(next(iter(columns.values())))
    heads = [f"{store} {_size(size)}" for store, size in columns]
    lines = [
        f"Command: `{' '.join(['python -m bench.cost_curves', *sys.argv[1:]])}`.",
        f"Commit: {report.commit()}. Machine: {report.machine()}.",
        f"1-minute load average {load[0]} at the start, {load[1]} at the end.",
        "",
        f"| p50 / p99 ms unless noted | {' | '.join(heads)} |",
        f"|---|{'---:|' * len(heads)}",
        *(f"| {name} | {' | '.join(c[name] for c in columns.values())} |" for name in names),
        "",
        *verdicts(columns),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated")
    parser.add_argument("--issues", type=int, default=300, help="issuances timed per size")
    parser.add_argument("--samples", type=int, default=200, help="timed calls per list query")
    parser.add_argument("--postgres", action="store_true", help="also on a throwaway cluster")
    parser.add_argument("--postgres-url", help="also on this PostgreSQL database")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--update-docs", action="store_true", help=f"rewrite {report.DOCS}")
    args = parser.parse_args()
    started = report.load_average()
    with (
        tempfile.TemporaryDirectory() as name,
        postgres_url(args, Path(name)) as url,
        contextlib.ExitStack() as schemas,
    ):
        stores = [
            prepare(store, settings, size)
            for store, size, settings in _stores(args, Path(name), url, schemas)
        ]
        columns = measure(stores, args)
    ordered = sorted(columns.items(), key=lambda item: (item[0][0] != "SQLite", item[0][1]))
    text = render(dict(ordered), (started, report.load_average()))
    print(text, flush=True)
    if args.update_docs:
        report.update_docs(MARKER, text)


if __name__ == "__main__":
    main()
