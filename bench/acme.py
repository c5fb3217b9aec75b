"""Full ACME flows per second next to plain REST issuance, in the same run.

    python -m bench.acme [--flows 60] [--clients 1 4]

One `pca serve` (2 workers) on fresh SQLite storage, an http-01 answer server and a DNS
server on loopback (tests/acme_client.py). An ACME flow is what certbot does for one
name, with the Python client of the test suite (ES256 account, registered once with EAB):
newOrder, POST-as-GET of the authorization, the http-01 challenge (the server fetches the
answer), finalize with a P-256 CSR, and the certificate download; each of those POSTs
spends one nonce, taken from the previous answer's Replay-Nonce. A REST issuance is one
``POST /api/v1/cas/{id}/certificates`` with the same kind of CSR. The two alternate in
rounds (ACME flows, then REST issuances) so drift on a shared machine hits both; each
client count runs its own threads, one flow or issuance in flight per thread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from domain.adapters.settings import Settings
from tests.acme_client import AcmeClient, ChallengeServer, LoopbackDNS, csr_for, http_transport
from tests.live import LiveServer

ROUNDS = 3


def _flow(client: AcmeClient, web: ChallengeServer, name: str) -> None:
    order = client.order(name)
    client.answer_challenges(order.json(), "http-01", web.answers)
    _, csr = csr_for(name)
    final = client.finalize(order.headers["Location"], csr)
    chain = client.post(final.json()["certificate"], None)
    assert chain.status == 200, chain.body


def _rest(live: LiveServer, operator: str, ca_id: str, name: str) -> None:
    _, csr = csr_for(name)
    csr_pem = x509.load_der_x509_csr(csr).public_bytes(Encoding.PEM).decode()
    body = {"type": "server", "common_name": name, "validity_days": 90, "csr": csr_pem}
    live.json("POST", f"/api/v1/cas/{ca_id}/certificates", operator, body)


def _rate(clients: int, count: int, one: Callable[[int, int], None]) -> float:
    """Items per second with ``clients`` threads doing ``count`` items in all."""
    each = count // clients
    start = time.perf_counter()

    def work(thread: int) -> None:
        for item in range(each):
            one(thread, item)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return each * clients / (time.perf_counter() - start)


def run(flows: int, client_counts: list[int]) -> list[str]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        LoopbackDNS(Path(tmp) / "dns") as dns,
        ChallengeServer() as web,
    ):
        os.environ.update(
            PCA_ACME_HTTP_PORT=str(web.port),
            PCA_ACME_RESOLVER=f"127.0.0.1:{dns.port}",
            PCA_ACME_ORDERS_PER_ACCOUNT="0",
            PCA_ACME_ORDERS_PER_IDENTIFIER="0",
            PCA_ISSUANCE_RATE_PER_SECOND="0",
        )
        with LiveServer(Settings(data_dir=Path(tmp) / "data")) as live:
            return _measure(live, web, flows, client_counts)


def _measure(
    live: LiveServer, web: ChallengeServer, flows: int, client_counts: list[int]
) -> list[str]:
    admin = live.pca("tokens", "create", "--role", "admin", "--name", "bench").strip()
    operator = live.pca("tokens", "create", "--role", "operator", "--name", "op").strip()
    _, ca_id = live.hierarchy(admin, "Bench", quota=1_000_000)
    live.pca("acme", "create-directory", "bench", "--ca", ca_id)
    directory = f"{live.base}/acme/bench/directory"
    accounts: list[AcmeClient] = []
    for _ in range(max(client_counts)):
        eab = json.loads(live.pca("acme", "eab-create", "bench", "--json"))
        account = AcmeClient(http_transport, directory)
        account.register(account.eab(eab["kid"], eab["hmac_key"]))
        accounts.append(account)
    lines = ["| clients | ACME flows/s | REST issuances/s | ratio |", "|---|---|---|---|"]
    for clients in client_counts:
        acme_rates, rest_rates = [], []
        for round_ in range(ROUNDS):

            def acme_flow(thread: int, item: int, round_: int = round_) -> None:
                _flow(accounts[thread], web, _name(round_, thread, item))

            acme_rates.append(_rate(clients, flows, acme_flow))
            rest_rates.append(
                _rate(clients, flows, lambda t, i: _rest(live, operator, ca_id, _name(9, t, i)))
            )
        acme_rate, rest_rate = statistics.median(acme_rates), statistics.median(rest_rates)
        lines.append(
            f"| {clients} | {acme_rate:.1f} | {rest_rate:.1f} | {rest_rate / acme_rate:.1f}x |"
        )
    return lines


def _name(round_: int, thread: int, item: int) -> str:
    return f"h{round_}-{thread}-{item}-{time.monotonic_ns()}.bench.test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=60, help="per round and client count")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    print("\n".join(run(args.flows, args.clients)))


if __name__ == "__main__":
    main()
