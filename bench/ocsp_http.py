"""OCSP over HTTP: `pca serve` against the dedicated responder `pca ocsp-serve`, in one run.

    python -m bench.ocsp_http [--seconds 5] [--requests 2000] [--connections 1]
                              [--postgres [--postgres-socket] | --postgres-url URL]

Both servers run on one deployment (2 workers each), with one leaf to ask about. Each is
driven by wrk (C, keep-alive, GET form: the base64 request in the path) and by Python's
http.client (one keep-alive connection, POST), with the answer kept by the responder (no
nonce) and with a nonce (signed anew each time; wrk repeats one nonce, which the
responder signs anew all the same). Every rate is divided by bare ``respond()`` on one
core measured in the same run (bench.crl), before and after, median of the two.

With ``--rounds N`` the servers stay up and every measurement is repeated N times, bare
``respond()`` measured again before and after each round: a row shows the median rate and
the median of the rounds' ratios, with their range. One client's rate is mostly wake-up
latency between processes, which a shared virtual machine varies by 1.5x from one
minute to the next (docs/BENCHMARKS.md); the rounds show how much.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from bench.common import postgres_url, print_rows
from bench.loadgen import Target, probe, wrk
from bench.revocation_latency import bare_rate, issue_leaves, ocsp_payloads, ocsp_rate
from domain.adapters.settings import Settings
from tests.live import LiveServer

SERVERS = ("serve", "ocsp-serve")
KINDS = {False: "kept answer", True: "with nonce"}


def _get_target(server: LiveServer, issuing: str, request_der: bytes) -> Target:
    encoded = urllib.parse.quote(base64.b64encode(request_der).decode(), safe="")
    return Target(server.port, "GET", f"/ocsp/{issuing}/{encoded}")


def _rows(
    servers: dict[str, LiveServer],
    issuing: str,
    payloads: dict[bool, list[bytes]],
    args: argparse.Namespace,
) -> Iterator[tuple[str, str, str, float]]:
    """(server, kind, client, responses/s) for every combination."""
    for nonce, kind in KINDS.items():
        for name, server in servers.items():
            target = _get_target(server, issuing, payloads[nonce][0])
            status, _ = probe(target)
            assert status == 200, (name, status)
            run = wrk(target, args.connections, args.seconds, f"ocsp-{name}")
            assert run.failures == 0, run
            yield name, kind, f"wrk -c{args.connections} GET", run.rate
            rate = ocsp_rate(server, issuing, payloads[nonce], args.requests)
            yield name, kind, "http.client POST", rate


Row = tuple[str, str]  # what answered, the client


def _measure(settings: Settings, args: argparse.Namespace) -> dict[Row, list[tuple[float, float]]]:
    """(rate, rate ÷ bare) per row, one per round."""
    samples: dict[Row, list[tuple[float, float]]] = {}
    with LiveServer(settings, workers=2) as serve:
        admin, issuing, issued = issue_leaves(serve, 1)
        chain = serve.json("GET", f"/api/v1/cas/{issuing}", admin)["certificate_pem"]
        payloads = {
            nonce: ocsp_payloads(issued[0], chain, args.requests, nonce=nonce) for nonce in KINDS
        }
        with LiveServer(settings, workers=2, command="ocsp-serve") as responder:
            servers = dict(zip(SERVERS, (serve, responder), strict=True))
            for _ in range(args.rounds):
                before = bare_rate()
                rows = list(_rows(servers, issuing, payloads, args))
                bare = statistics.median([before, bare_rate()])
                samples.setdefault(("bare respond() on one core (bench.crl)", ""), []).append(
                    (bare, 1.0)
                )
                for name, kind, client, rate in rows:
                    samples.setdefault((f"pca {name}, {kind}", client), []).append(
                        (rate, rate / bare)
                    )
    return samples


def _median(values: list[float], form: str) -> str:
    """The median of ``values``, and their range if there are several."""
    middle = format(statistics.median(values), form)
    if len(values) == 1:
        return middle
    return f"{middle} ({format(min(values), form)}-{format(max(values), form)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=5, help="per wrk run")
    parser.add_argument("--requests", type=int, default=2000, help="per http.client run")
    parser.add_argument("--connections", type=int, default=1, help="wrk's keep-alive clients")
    parser.add_argument("--rounds", type=int, default=1, help="of every measurement")
    parser.add_argument("--postgres", action="store_true", help="a throwaway PostgreSQL")
    parser.add_argument("--postgres-url", help="an existing PostgreSQL (an empty schema)")
    parser.add_argument(
        "--postgres-socket", action="store_true", help="with --postgres: over its Unix socket"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, postgres_url(args, Path(directory)) as url:
        settings = Settings(data_dir=Path(directory) / "data", database_url=url)
        samples = _measure(settings, args)
    store = "SQLite" if url is None else "PostgreSQL"
    print_rows(
        [
            f"| {store} | {what} | {client} | {_median([rate for rate, _ in rounds], ',.0f')}/s"
            f" | {_median([ratio for _, ratio in rounds], '.2f')} |"
            for (what, client), rounds in samples.items()
        ]
    )


if __name__ == "__main__":
    main()
