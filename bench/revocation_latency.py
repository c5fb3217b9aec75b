"""Revocation-to-published latency and OCSP over HTTP, against a real `pca serve`.

    python -m bench.revocation_latency [--revocations 40] [--ocsp-requests 2000]
                                       [--spacing-ms 0]

For each revocation: the time from the revoke call's response until the CRL or delta CRL
served at the CDP URL lists the serial (polled every 10 ms). Back to back by default, so
each revocation comes right after the previous one was published and waits out the
publisher's least gap between publications (``PCA_CRL_DEBOUNCE_MS``); with a spacing
longer than that gap each comes after a quiet spell, when the read-model runner wakes the
publisher at once. Then OCSP POSTs for one
certificate over one keep-alive connection, and the same POSTs handed straight to the
WSGI application in this process (no HTTP server: what the server adds is the
difference). Loopback only, bounded, SQLite default store. With 1M already revoked, see
bench.crl_latency.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from api.wsgi import create_app
from bench.crl import ocsp_rates
from domain.adapters.settings import Settings
from domain.model.values import KeyAlgorithm
from tests.live import LiveServer

POLL_SECONDS = 0.01


def issue_leaves(live: LiveServer, count: int) -> tuple[str, str, list[dict[str, str]]]:
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
    live: LiveServer,
    admin: str,
    issuing: str,
    issued: list[dict[str, str]],
    spacing: float = 0.0,
) -> list[float]:
    """Seconds from each revocation's response until a served CRL lists it; each
    revocation ``spacing`` seconds after the previous one was listed."""
    latencies = []
    for certificate in issued:
        serial = int(certificate["serial_number"], 16)
        time.sleep(spacing)
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


def ocsp_payloads(
    certificate: dict[str, str], chain_pem: str, requests: int, *, nonce: bool
) -> list[bytes]:
    """OCSP requests about ``certificate``: ``requests`` each with a nonce of its own
    (signed anew), or one without (the answer kept by the responder)."""
    leaf = x509.load_pem_x509_certificate(certificate["certificate_pem"].encode())
    issuer = x509.load_pem_x509_certificate(chain_pem.encode())
    # SHA-1 CertIDs are what openssl and most clients send by default.
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1())  # noqa: S303
    return [
        (
            builder.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
            if nonce
            else builder
        )
        .build()
        .public_bytes(serialization.Encoding.DER)
        for _ in range(requests if nonce else 1)
    ]


def ocsp_rate(live: LiveServer, issuing: str, payloads: list[bytes], requests: int) -> float:
    """OCSP POSTs of ``payloads`` (in turn) per second over one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", live.port)
    start = time.perf_counter()
    for n in range(requests):
        connection.request(
            "POST",
            f"/ocsp/{issuing}",
            payloads[n % len(payloads)],
            {"Content-Type": "application/ocsp-request"},
        )
        response = connection.getresponse()
        response.read()
        assert response.status == 200
    return requests / (time.perf_counter() - start)


def wsgi_rate(settings: Settings, issuing: str, payloads: list[bytes], requests: int) -> float:
    """The same POSTs per second, each a call of the WSGI application ``pca serve`` runs,
    opened in this process on the same store (its runner and publisher off)."""
    app = create_app(settings, run_projections=False)
    try:
        application = app.wsgi_app

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: object = None, /
        ) -> Callable[[bytes], object]:
            assert status.startswith("200"), status
            return lambda _: None

        start = time.perf_counter()
        for n in range(requests):
            body = payloads[n % len(payloads)]
            environ = {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": f"/ocsp/{issuing}",
                "CONTENT_TYPE": "application/ocsp-request",
                "CONTENT_LENGTH": str(len(body)),
                "wsgi.input": io.BytesIO(body),
                "wsgi.url_scheme": "http",
                "SERVER_NAME": "127.0.0.1",
                "SERVER_PORT": "80",
                "REMOTE_ADDR": "127.0.0.1",
            }
            b"".join(application(environ, start_response))
        return requests / (time.perf_counter() - start)
    finally:
        app.extensions["pca"].close()


def bare_rate() -> float:
    """bench.crl's bare ``respond()`` (EC P-256 responder, nonce) on one core, in this run."""
    return ocsp_rates(KeyAlgorithm.EC_P256)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--revocations", type=int, default=40)
    parser.add_argument("--ocsp-requests", type=int, default=2000)
    parser.add_argument(
        "--spacing-ms", type=int, default=0, help="quiet time before each revocation"
    )
    args = parser.parse_args()
    bare_before = bare_rate()
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(data_dir=Path(directory) / "data")
        with LiveServer(settings, workers=2) as live:
            admin, issuing, issued = issue_leaves(live, args.revocations + 1)
            chain = live.json("GET", f"/api/v1/cas/{issuing}", admin)["certificate_pem"]
            payloads = {
                nonce: ocsp_payloads(issued[-1], chain, args.ocsp_requests, nonce=nonce)
                for nonce in (False, True)
            }
            rates = {
                nonce: (
                    ocsp_rate(live, issuing, payloads[nonce], args.ocsp_requests),
                    wsgi_rate(settings, issuing, payloads[nonce], args.ocsp_requests),
                )
                for nonce in (False, True)
            }
            latencies = sorted(
                revocation_latencies(live, admin, issuing, issued[:-1], args.spacing_ms / 1000)
            )
    bare = statistics.median([bare_before, bare_rate()])
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(
        f"| revocation -> listed in served CRL, {args.spacing_ms} ms apart | n={len(latencies)} | "
        f"p50 {statistics.median(latencies) * 1000:.0f} ms | p99 {p99 * 1000:.0f} ms |"
    )
    print(f"| bare respond() on one core (bench.crl, this run) | | {bare:,.0f} responses/s | |")
    for nonce, (rate, direct) in rates.items():
        kind = "each with its own nonce" if nonce else "no nonce (kept answer)"
        print(
            f"| OCSP POST over HTTP, 1 keep-alive client, 2 workers, {kind} "
            f"| n={args.ocsp_requests} | {rate:,.0f} responses/s | {rate / bare:.2f} x bare |"
        )
        print(
            f"| the same POSTs as calls of the WSGI app in process, {kind} "
            f"| n={args.ocsp_requests} | {direct:,.0f} responses/s | {direct / bare:.2f} x bare |"
        )


if __name__ == "__main__":
    main()
