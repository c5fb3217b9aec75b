"""Cost of one issuance at the domain level, next to the bare cryptography cost.

    python -m bench.issuance [--count 300] [--rsa-count 40] [--postgres-url URL]

Both sides run in the same process, interleaved per round, so the ratio holds on a
noisy machine. Domain level = PrivateCA.issue_certificate on durable storage: rule
checks, key generation (or CSR check), X.509 build and signature, key-store write,
and the atomic save of the quota unit and certificate. Bare = key generation, the
same certificate profile built and signed with cryptography alone, no storage.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from domain.adapters.settings import Settings, open_service
from domain.application.commands import CertificateRequest
from domain.application.service import PrivateCA
from domain.model.certificate_facts import load_certificate
from domain.model.values import KeyAlgorithm
from domain.pki import x509 as certs
from tests.builders import OPERATOR, enabled_intermediate, enabled_root, server_request

Sample = list[float]


def _percentile(samples: Sample, fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _time(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def _csr_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench.example.com")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(Encoding.PEM).decode()


def _bare(service: PrivateCA, ca_id: UUID, request: CertificateRequest) -> Callable[[], object]:
    """Key generation (or CSR parse) plus the same leaf built and signed, nothing stored."""
    ca = service.get_ca(ca_id)
    ca_der, key = ca.signing_identity()
    issuer = load_certificate(ca_der)
    issuer_key = service.signers.signing_key(key)
    urls = certs.PublicationURLs.for_issuer(service.public_url, str(ca_id))
    profile = certs.LeafProfile(request.type, request.subject, request.sans, True)

    def run() -> object:
        if request.csr_pem is not None:
            public_key = certs.load_csr(request.csr_pem).public_key()
        else:
            assert request.key_algorithm is not None
            public_key = certs.generate_private_key(request.key_algorithm).public_key()
        window = ca.leaf_window(service.clock(), request.validity_days)
        return certs.build_leaf(public_key, profile, issuer, issuer_key, window, urls)

    return run


def measure(settings: Settings, label: str, request: CertificateRequest, count: int) -> str:
    """One markdown row: domain and bare p50/p99 in ms and their ratio."""
    service = open_service(settings)
    try:
        ca_id = enabled_intermediate(
            service, enabled_root(service, quota=count + 10), remaining=count + 10
        )
        bare = _bare(service, ca_id, request)
        domain_ms: Sample = []
        bare_ms: Sample = []
        for _ in range(count):
            domain_ms.append(_time(lambda: service.issue_certificate(OPERATOR, ca_id, request)))
            bare_ms.append(_time(bare))
    finally:
        service.close()
        service.keystore.close()
    d50, b50 = statistics.median(domain_ms), statistics.median(bare_ms)
    return (
        f"| {label} | {count} | {d50:.2f} | {_percentile(domain_ms, 0.99):.2f} | "
        f"{b50:.2f} | {_percentile(bare_ms, 0.99):.2f} | {d50 / b50:.1f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--rsa-count", type=int, default=40)
    parser.add_argument("--postgres-url", help="also measure on this PostgreSQL database")
    args = parser.parse_args()
    stores = {"SQLite": None} | ({"PostgreSQL": args.postgres_url} if args.postgres_url else {})
    csr_request = dataclasses.replace(server_request(), key_algorithm=None, csr_pem=_csr_pem())
    cases = [
        ("EC_P256 server key", server_request(), args.count),
        (
            "RSA_2048 server key",
            server_request(key_algorithm=KeyAlgorithm.RSA_2048),
            args.rsa_count,
        ),
        ("CSR (P-256)", csr_request, args.count),
    ]
    print(
        "| store / case | n | domain p50 ms | domain p99 ms | bare p50 ms | bare p99 ms "
        "| domain/bare |"
    )
    print("|---|---|---|---|---|---|---|")
    for store, url in stores.items():
        for label, request, count in cases:
            with tempfile.TemporaryDirectory() as directory:
                settings = Settings(data_dir=Path(directory), database_url=url)
                print(measure(settings, f"{store}: {label}", request, count), flush=True)


if __name__ == "__main__":
    main()
