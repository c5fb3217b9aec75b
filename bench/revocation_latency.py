"""Revocation-to-published latency and OCSP over HTTP, against a real `pca serve`.

    python -m bench.revocation_latency [--revocations 40] [--ocsp-requests 2000]

For each revocation: the time from the revoke call's response until the CRL or delta CRL
served at the CDP URL lists the serial (polled every 10 ms). Then OCSP POSTs for one
certificate over one keep-alive connection, and the same through openssl's request format.
Loopback only, bounded, SQLite default store.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from domain.adapters.settings import Settings
from tests.live import LiveServer

POLL_SECONDS = 0.01


def _setup(live: LiveServer, count: int) -> tuple[str, str, list[dict[str, str]]]:
    admin = live.pca("tokens", "create", "--role", "admin", "--name", "bench").strip()
    _, issuing = live.hierarchy(admin, "Bench", count + 10, remaining=count + 5)
    issued = [
        live.json(
            "POST",
            f"/api/v1/cas/{issuing}/certificates",
            admin,
            {
                "type": "server",
                "common_name": f"h{i}.bench.example",
                "validity_days": 30,
                "key_algorithm": "EC_P256",
            },
        )
        for i in range(count)
    ]
    return admin, issuing, issued


def _listed(live: LiveServer, issuing: str, serial: int) -> bool:
    for path in (f"/crl/{issuing}.crl", f"/crl/{issuing}-delta.crl"):
        status, _, der = live.request("GET", path)
        if (
            status == 200
            and x509.load_der_x509_crl(der).get_revoked_certificate_by_serial_number(serial)
            is not None
        ):
            return True
    return False


def revocation_latencies(
    live: LiveServer, admin: str, issuing: str, issued: list[dict[str, str]]
) -> list[float]:
    """Seconds from each revocation's response until a served CRL lists it."""
    latencies = []
    for certificate in issued:
        serial = int(certificate["serial_number"], 16)
        live.json(
            "POST",
            f"/api/v1/certificates/{certificate['id']}/revoke",
            admin,
            {"reason": "superseded"},
        )
        start = time.perf_counter()
        while not _listed(live, issuing, serial):
            time.sleep(POLL_SECONDS)
        latencies.append(time.perf_counter() - start)
    return latencies


def ocsp_rate(
    live: LiveServer, issuing: str, certificate: dict[str, str], chain_pem: str, requests: int
) -> float:
    """OCSP POSTs per second over one keep-alive connection."""
    leaf = x509.load_pem_x509_certificate(certificate["certificate_pem"].encode())
    issuer = x509.load_pem_x509_certificate(chain_pem.encode())
    # SHA-1 CertIDs are what openssl and most clients send by default.
    body = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()  # noqa: S303
    payload = body.public_bytes(serialization.Encoding.DER)
    connection = http.client.HTTPConnection("127.0.0.1", live.port)
    start = time.perf_counter()
    for _ in range(requests):
        connection.request(
            "POST", f"/ocsp/{issuing}", payload, {"Content-Type": "application/ocsp-request"}
        )
        response = connection.getresponse()
        response.read()
        assert response.status == 200
    return requests / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revocations", type=int, default=40)
    parser.add_argument("--ocsp-requests", type=int, default=2000)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as directory,
        LiveServer(Settings(data_dir=Path(directory) / "data"), workers=2) as live,
    ):
        admin, issuing, issued = _setup(live, args.revocations + 1)
        chain = live.json("GET", f"/api/v1/cas/{issuing}", admin)["certificate_pem"]
        rate = ocsp_rate(live, issuing, issued[-1], chain, args.ocsp_requests)
        latencies = sorted(revocation_latencies(live, admin, issuing, issued[:-1]))
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(
        f"| revocation -> listed in served CRL | n={len(latencies)} | "
        f"p50 {statistics.median(latencies) * 1000:.0f} ms | p99 {p99 * 1000:.0f} ms |"
    )
    print(
        f"| OCSP over HTTP, 1 keep-alive client, 2 workers | n={args.ocsp_requests} | "
        f"{rate:.0f} responses/s | |"
    )


if __name__ == "__main__":
    main()
