"""Issuance throughput with CA keys in a PKCS#11 token (SoftHSM2) next to the key store.

    python -m bench.signers [--count 400] [--threads 4] [--postgres]

One deployment holds two intermediates under one root, alike but for where their keys live:
the key store (software) or a SoftHSM2 token made for the run. Rounds alternate between
them (a batch of ``--batch`` issuances each), so both see the same machine load; each is
timed alone and with ``--threads`` threads issuing at once (the group commit then signs
many certificates per save). Beside it, the cost of one signature of a certificate's TBS
bytes by each key: the part of issuance the token changes.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path
from uuid import UUID

from cryptography.hazmat.primitives import hashes

from bench.common import postgres_url
from domain.adapters.settings import Settings, open_service
from domain.application.service import PrivateCA
from domain.model.values import KeyAlgorithm, KeyStorage
from domain.pki.signing import IssuerKey, sign_parts
from tests.builders import ADMIN, OPERATOR, intermediate_profile, root_profile, server_request
from tests.softhsm import init_token


def hierarchy(service: PrivateCA, quota: int) -> dict[KeyStorage, UUID]:
    """A token root and one P-256 intermediate per key storage, each with ``quota``."""
    root_id = service.create_root(ADMIN, root_profile()).id
    service.enable_ca(ADMIN, root_id, KeyStorage.PKCS11)
    service.purchase_quota(ADMIN, root_id, 2 * quota)
    intermediates = {}
    for storage in KeyStorage:
        ca_id = service.create_intermediate(ADMIN, root_id, intermediate_profile()).id
        service.enable_ca(ADMIN, ca_id, storage)
        service.assign_quota(ADMIN, root_id, ca_id, quota)
        intermediates[storage] = ca_id
    return intermediates


def issue_batch(service: PrivateCA, ca_id: UUID, count: int, threads: int) -> float:
    """Seconds to issue ``count`` certificates from ``ca_id`` on ``threads`` threads."""
    request = server_request(key_algorithm=KeyAlgorithm.EC_P256)
    share = [count // threads + (i < count % threads) for i in range(threads)]

    def work(n: int) -> None:
        for _ in range(n):
            service.issue_certificate(OPERATOR, ca_id, request)

    workers = [threading.Thread(target=work, args=(n,)) for n in share]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - start


def signature_us(key: IssuerKey, rounds: int = 300) -> float:
    """Median microseconds for ``key`` to sign about a leaf's TBSCertificate."""
    tbs = b"\x30" * 600
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        sign_parts(key, hashes.SHA256(), [tbs])
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


def measure(settings: Settings, args: argparse.Namespace) -> list[str]:
    service = open_service(settings)
    rows = []
    try:
        cas = hierarchy(service, args.count * 2 + args.batch)
        for storage, ca_id in cas.items():
            _, key = service.get_ca(ca_id).signing_identity()
            micros = signature_us(service.signers.signing_key(key))
            rows.append(f"| one P-256 signature, {storage.value} | {micros:.0f} µs |")
        for threads in (1, args.threads):
            seconds = {storage: 0.0 for storage in cas}
            for _ in range(args.count // args.batch):
                for storage, ca_id in cas.items():
                    seconds[storage] += issue_batch(service, ca_id, args.batch, threads)
            rate = {storage: args.count / spent for storage, spent in seconds.items()}
            ratio = rate[KeyStorage.PKCS11] / rate[KeyStorage.SOFTWARE]
            rows.append(
                f"| {threads} thread(s): certificates/s software {rate[KeyStorage.SOFTWARE]:.0f},"
                f" pkcs11 {rate[KeyStorage.PKCS11]:.0f} | pkcs11/software {ratio:.2f} |"
            )
    finally:
        service.close()
        service.keystore.close()
        if service.token_signer is not None:
            service.token_signer.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400, help="certificates per CA and mode")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--postgres", action="store_true", help="also on a throwaway PostgreSQL")
    parser.add_argument("--postgres-url")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        token = init_token(Path(directory) / "softhsm")
        with postgres_url(args, Path(directory)) as url:
            stores = {"SQLite": None} | ({"PostgreSQL": url} if url else {})
            for store, database_url in stores.items():
                data = Path(directory) / store
                settings = Settings(data_dir=data, database_url=database_url, pkcs11=token)
                print(f"### {store}", flush=True)
                for row in measure(settings, args):
                    print(row, flush=True)


if __name__ == "__main__":
    main()
