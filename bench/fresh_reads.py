"""Fresh reads: what the default wait for the log head costs a list that needs no wait.

    python -m bench.fresh_reads [--size 10000] [--samples 300] [--postgres | --postgres-url URL]
                                [--skip-sqlite]

A store is filled as in bench/projections.py (``size`` certificates under one intermediate,
then caught up), and an app is made on it with its in-process runner, as ``pca serve``
runs. Requests go through Flask's test client (the WSGI app, no socket) with an auditor's
token, so the figures are the app's own cost: authentication, the freshness check, the
query and the JSON. Each list is asked ``samples`` times with the default (strong) and
with ``Prefer: consistency=eventual`` alternately (in turn first), in the same run, after
warm-ups; the
log does not move meanwhile, so the default never waits and the difference is the check:
one ``MAX`` over the log and one read of the read models' position, timed alone too.
Last, "read right after a write": an issuance through the service, then at once the
default first page (which waits until the runner, nudged, has projected the issuance).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient

from api.deployment import Deployment
from api.http.app import create_app
from bench.common import postgres_url, print_rows
from bench.projections import fill
from domain.adapters.settings import Settings
from domain.model.tokens import Role
from projections.readmodels.worker import catch_up
from tests.builders import ADMIN, enabled_intermediate, enabled_root, issue
from tests.pgserver import create_schema, drop_schema

WARM_UPS = 20
WRITES = 50
EVENTUAL = {"Prefer": "consistency=eventual"}


def _percentiles(timings: list[float]) -> str:
    cuts = statistics.quantiles(timings, n=100)
    return f"{statistics.median(timings):.2f} / {cuts[98]:.2f}"


def _timed(call: Callable[[], object]) -> float:
    begin = time.perf_counter()
    call()
    return (time.perf_counter() - begin) * 1000


def _get(client: FlaskClient, path: str, headers: dict[str, str]) -> Callable[[], object]:
    def call() -> object:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response

    return call


def _pair(
    label: str, default: Callable[[], object], eventual: Callable[[], object], samples: int
) -> list[str]:
    """Rows for one list asked both ways, alternately, so load affects both alike."""
    for _ in range(WARM_UPS):
        default()
        eventual()
    strong: list[float] = []
    fast: list[float] = []
    for sample in range(samples):  # which goes first alternates too
        if sample % 2:
            fast.append(_timed(eventual))
        strong.append(_timed(default))
        if not sample % 2:
            fast.append(_timed(eventual))
    extra = statistics.median(strong) - statistics.median(fast)
    return [
        f"| {label} | {_percentiles(fast)} | {_percentiles(strong)} | {extra:+.2f} |",
    ]


def measure(settings: Settings, store: str, size: int, samples: int) -> list[str]:
    """Markdown rows for one store."""
    filled = fill(settings, size)
    catch_up(settings)
    app = create_app(settings)
    deployment: Deployment = app.extensions["pca"]
    try:
        service = deployment.service
        token, _ = service.create_token(ADMIN, "bench-auditor", Role.AUDITOR)
        auth = {"Authorization": f"Bearer {token}"}
        writer = enabled_intermediate(service, enabled_root(service, WRITES), WRITES)
        if not deployment.caught_up():
            raise RuntimeError("the read models did not catch up")
        client = app.test_client()
        page = f"/api/v1/cas/{filled.issuer_id}/certificates"
        rows = [f"| **{store}, {size:,} certificates** | | | |"]
        rows += _pair(
            "first page (50)",
            _get(client, page, auth),
            _get(client, page, {**auth, **EVENTUAL}),
            samples,
        )
        rows += _pair(
            "one certificate (`limit=1`)",
            _get(client, page + "?limit=1", auth),
            _get(client, page + "?limit=1", {**auth, **EVENTUAL}),
            samples,
        )
        rows += _pair(
            "CA list",
            _get(client, "/api/v1/cas", auth),
            _get(client, "/api/v1/cas", {**auth, **EVENTUAL}),
            samples,
        )
        head = [_timed(service.recorder.max_notification_id) for _ in range(samples)]
        position = [_timed(deployment.read_models.position) for _ in range(samples)]
        check = [_timed(deployment.caught_up) for _ in range(samples)]
        rows.append(f"| the check alone: `MAX` over the log | | {_percentiles(head)} | |")
        rows.append(f"| the check alone: read models' position | | {_percentiles(position)} | |")
        rows.append(f"| the check alone: `Deployment.caught_up()` | | {_percentiles(check)} | |")
        written = _get(client, f"/api/v1/cas/{writer}/certificates?limit=1", auth)
        after_write: list[float] = []
        for _ in range(WRITES):
            issued = issue(service, writer).certificate.id
            begin = time.perf_counter()
            response = written()
            after_write.append((time.perf_counter() - begin) * 1000)
            assert str(issued) in response.get_data(as_text=True)  # type: ignore[attr-defined]
        rows.append(f"| read right after a write (n={WRITES}) | | {_percentiles(after_write)} | |")
        return rows
    finally:
        deployment.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000, help="certificates in the store")
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--postgres", action="store_true", help="also on a throwaway cluster")
    parser.add_argument("--postgres-url", help="also on this PostgreSQL database")
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    print("| ms, p50 / p99 | `Prefer: consistency=eventual` | default (fresh) | p50 difference |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as directory, postgres_url(args, Path(directory)) as url:
        if not args.skip_sqlite:
            settings = Settings(data_dir=Path(directory) / "sqlite")
            print_rows(measure(settings, "SQLite", args.size, args.samples))
        if url is not None:
            schema = create_schema(url)
            try:
                settings = Settings(
                    data_dir=Path(directory) / "pg", database_url=url, database_schema=schema
                )
                print_rows(measure(settings, "PostgreSQL", args.size, args.samples))
            finally:
                drop_schema(url, schema)


if __name__ == "__main__":
    main()
