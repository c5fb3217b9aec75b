"""Revocation publishing (issue 5): republish after one revocation next to a full rebuild.

    python -m bench.crl [--sizes 1000,10000,100000,1000000] [--repeats 3] [--budget 60]
                        [--docs docs/BENCHMARKS.md | --no-docs]

For each size N, in one process, on the same N random entries (159-bit serials, reasons drawn
from every offered reason and none) and an EC P-256 issuing CA:

* builder, constructor list: N ``RevokedCertificate`` objects made with
  ``RevokedCertificateBuilder`` and handed to ``CertificateRevocationListBuilder(...,
  revoked_certificates=...)`` in one list (linear), then signed: cryptography's full rebuild;
* builder, ``add_revoked_certificate``: the same, one call per entry; each call copies the list
  (quadratic, DESIGN §5). Run only while its estimate fits the per-size budget (its excess over
  the constructor-list path at the previous size, scaled by N^2, plus that path at this size);
  otherwise reported as that estimate;
* ours, full build: encode every entry into an ``EncodedRevocationList`` and ``build_crl``;
* ours, republish: the list already published once, then one more revocation added and the
  CRL built and signed again: the steady-state cost after a revocation;
* SHA-256 of the DER: hashing the republished CRL once, the floor any re-signing must pay.

Times are the median of ``--repeats`` runs (fewer when a run would blow the budget), with a
garbage collection before each. The last size's republish is also timed with an RSA-2048 CA.
OCSP throughput is ``respond`` alone and ``parse_request`` + ``respond`` on one core, ECDSA
P-256 and RSA-2048 delegated responders, nonce included: median of three interleaved 1 s rounds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import random
import re
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cryptography
from cryptography import x509
from cryptography.hazmat.backends.openssl.backend import backend
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp
from cryptography.x509.oid import NameOID

from domain.model.values import KeyAlgorithm, RevocationReason, Subject
from domain.pki import crl, ocsp, signing
from domain.pki import x509 as certs
from domain.pki.crl import EncodedRevocationList, RevokedEntry

HEADING = "## Revocation publishing (issue 5)"
NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
NEXT_UPDATE = NOW + dt.timedelta(days=7)
_REASONS: list[RevocationReason | None] = [None, *RevocationReason]


@dataclass(frozen=True)
class Issuer:
    """An issuing CA certificate and its key."""

    cert: x509.Certificate
    key: signing.SoftwareKey


@dataclass(frozen=True)
class Timing:
    """Median seconds over ``runs`` runs, or an estimate when the path was not run."""

    seconds: float
    runs: int

    def __str__(self) -> str:
        if self.runs == 0:
            return f"not run (quadratic: extrapolated ~{self.seconds:,.0f} s)"
        return _seconds(self.seconds) + ("" if self.runs > 1 else " (1 run)")


@dataclass(frozen=True)
class Row:
    """One size's measurements."""

    size: int
    der_bytes: int
    builder: Timing
    builder_quadratic: Timing
    ours_full: Timing
    republish: Timing
    rsa_republish: Timing | None
    hash_floor: Timing


def make_issuer(algorithm: KeyAlgorithm) -> Issuer:
    """A self-signed CA is enough: build_crl needs the subject, the SKI and the key."""
    key = certs.as_issuer_key(certs.generate_private_key(algorithm))
    cert = certs.build_root(key, Subject("Bench Issuing CA"), NOW, NOW + dt.timedelta(days=3650))
    return Issuer(cert, key)


def random_entries(count: int, rng: random.Random) -> list[RevokedEntry]:
    """``count`` entries with distinct 159-bit serials, times within a year, mixed reasons."""
    serials: set[int] = set()
    while len(serials) < count:
        serials.add(rng.getrandbits(159) | 1 << 158)
    return [
        RevokedEntry(
            serial, NOW - dt.timedelta(seconds=rng.randrange(31_536_000)), rng.choice(_REASONS)
        )
        for serial in serials
    ]


def measure(action: Callable[[], object], repeats: int, budget: float) -> Timing:
    """Median of up to ``repeats`` runs of ``action``, stopping early once ``budget`` is spent."""
    samples: list[float] = []
    while len(samples) < repeats:
        if samples and sum(samples) + samples[-1] > budget:
            break
        gc.collect()
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return Timing(statistics.median(samples), len(samples))


def builder_crl(issuer: Issuer, entries: Sequence[RevokedEntry], *, quadratic: bool) -> bytes:
    """cryptography's full rebuild of the same CRL (same extensions as ``build_crl``)."""
    revoked = [_revoked_certificate(entry) for entry in entries]
    ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    builder = x509.CertificateRevocationListBuilder(
        issuer.cert.subject,
        NOW,
        NEXT_UPDATE,
        [
            x509.Extension(aki.oid, False, aki),
            x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(2)),
        ],
        [] if quadratic else revoked,
    )
    if quadratic:
        for item in revoked:
            builder = builder.add_revoked_certificate(item)
    crl_object = builder.sign(issuer.key, signing.signature_hash(issuer.key))
    return crl_object.public_bytes(Encoding.DER)


def _revoked_certificate(entry: RevokedEntry) -> x509.RevokedCertificate:
    builder = x509.RevokedCertificateBuilder().serial_number(entry.serial_number)
    builder = builder.revocation_date(entry.revoked_at)
    if entry.reason is not None and entry.reason is not RevocationReason.UNSPECIFIED:
        reason = x509.CRLReason(x509.ReasonFlags[entry.reason.value])
        builder = builder.add_extension(reason, critical=False)
    return builder.build()


def our_full_build(issuer: Issuer, entries: Sequence[RevokedEntry]) -> bytes:
    """Every entry encoded from scratch, then one build_crl."""
    return crl.build_crl(
        issuer.cert, issuer.key, EncodedRevocationList(entries), 2, NOW, NEXT_UPDATE
    )


class Republisher:
    """A published list that takes one more revocation per call and is republished."""

    def __init__(
        self, issuer: Issuer, revocations: EncodedRevocationList, rng: random.Random
    ) -> None:
        self.issuer = issuer
        self.revocations = revocations
        self.rng = rng
        self.number = 1
        self.last = self._publish()

    def __call__(self) -> bytes:
        serial = self.rng.getrandbits(159) | 1 << 158
        self.revocations.add(RevokedEntry(serial, NOW, RevocationReason.KEY_COMPROMISE))
        self.last = self._publish()
        return self.last

    def _publish(self) -> bytes:
        self.number += 1
        return crl.build_crl(
            self.issuer.cert, self.issuer.key, self.revocations, self.number, NOW, NEXT_UPDATE
        )


def seeded(seed: int) -> random.Random:
    """A reproducible generator: the same entries on every run of the benchmark."""
    return random.Random(seed)  # noqa: S311 - test data, not secrets


def measure_size(
    issuers: tuple[Issuer, Issuer | None],
    size: int,
    repeats: int,
    budget: float,
    previous: Row | None,
) -> Row:
    """All paths at ``size`` entries; ``issuers`` is the EC one and, optionally, an RSA one.

    The quadratic builder path runs only if its estimate from ``previous`` fits the budget.
    """
    issuer, rsa_issuer = issuers
    rng = seeded(size)
    entries = random_entries(size, rng)
    republisher = Republisher(issuer, EncodedRevocationList(entries), rng)
    republish = measure_republish(republisher, repeats, budget)
    rsa_republish = None
    if rsa_issuer is not None:
        same_list = Republisher(rsa_issuer, republisher.revocations, rng)
        rsa_republish = measure_republish(same_list, repeats, budget)
    ours_full = measure(lambda: our_full_build(issuer, entries), repeats, budget)
    builder = measure(lambda: builder_crl(issuer, entries, quadratic=False), repeats, budget)
    estimate = None if previous is None else quadratic_estimate(previous, size, builder)
    if estimate is not None and estimate > budget:
        quadratic = Timing(estimate, 0)
    else:
        quadratic = measure(lambda: builder_crl(issuer, entries, quadratic=True), repeats, budget)
    der = republisher.last
    hash_floor = measure(lambda: _sha256(der), repeats, budget)
    return Row(size, len(der), builder, quadratic, ours_full, republish, rsa_republish, hash_floor)


def _sha256(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize()


def measure_republish(republisher: Republisher, repeats: int, budget: float) -> Timing:
    """The republish timing, after checking that what it made is a valid CRL."""
    timing = measure(republisher, repeats, budget)
    _check(republisher.issuer, republisher.last, len(republisher.revocations))
    return timing


def quadratic_estimate(previous: Row, size: int, linear: Timing) -> float:
    """add_revoked_certificate's time at ``size``: its excess over the linear path grows as N^2."""
    excess = max(previous.builder_quadratic.seconds - previous.builder.seconds, 0.0)
    return excess * (size / previous.size) ** 2 + linear.seconds


def _check(issuer: Issuer, der_bytes: bytes, count: int) -> None:
    """The benchmarked output is a valid CRL of the expected length (not timed)."""
    parsed = x509.load_der_x509_crl(der_bytes)
    public_key = issuer.key.public_key()
    if not parsed.is_signature_valid(public_key) or len(parsed) != count:
        raise SystemExit("bench.crl: the republished CRL does not verify; results void.")


def ocsp_rates(algorithm: KeyAlgorithm, seconds: float = 1.0) -> tuple[float, float]:
    """Responses per second on one core, (respond, parse_request + respond): median of 3 rounds."""
    issuer = make_issuer(KeyAlgorithm.EC_P256)
    responder_key = certs.generate_private_key(algorithm)
    responder = ocsp.build_responder_certificate(
        issuer.cert, issuer.key, responder_key.public_key(), NOW, NOW + dt.timedelta(days=30)
    )
    request = _ocsp_request(issuer)
    query = ocsp.parse_request(request)
    status = ocsp.Revoked(NOW, RevocationReason.KEY_COMPROMISE)

    def answer(parsed: ocsp.OCSPQuery) -> bytes:
        return ocsp.respond(parsed, status, issuer.cert, responder, responder_key, NOW, NEXT_UPDATE)

    rounds = [
        (
            _rate(lambda: answer(query), seconds),
            _rate(lambda: answer(ocsp.parse_request(request)), seconds),
        )
        for _ in range(3)
    ]
    return statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)


def _ocsp_request(issuer: Issuer) -> bytes:
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leaf.example")])
    leaf = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NEXT_UPDATE)
        .sign(issuer.key, signing.signature_hash(issuer.key))
    )
    builder = x509_ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer.cert, hashes.SHA256())
    builder = builder.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
    return builder.build().public_bytes(Encoding.DER)


def _rate(action: Callable[[], object], seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        action()
        count += 1
    return count / elapsed


def _seconds(value: float) -> str:
    if value < 0.001:
        return f"{value * 1e6:,.0f} µs"
    return f"{value * 1000:,.1f} ms" if value < 1 else f"{value:,.2f} s"


def _ratio(numerator: Timing, denominator: Timing) -> str:
    prefix = "~" if numerator.runs == 0 else ""
    ratio = numerator.seconds / denominator.seconds
    return f"{prefix}{ratio:,.1f}x" if ratio < 10 else f"{prefix}{ratio:,.0f}x"


def table(rows: Sequence[Row]) -> str:
    """The markdown table of all sizes."""
    lines = [
        "| Revoked entries | CRL DER | builder, constructor list | builder, add_revoked_certificate"
        " | ours, full build | ours, republish +1 | SHA-256 of the DER | builder / republish"
        " | quadratic builder / republish | ours full / republish | builder / ours full |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {row.size:,} | {row.der_bytes / 1e6:,.2f} MB | {row.builder} | {row.builder_quadratic}"
        f" | {row.ours_full} | {row.republish} | {row.hash_floor}"
        f" | {_ratio(row.builder, row.republish)}"
        f" | {_ratio(row.builder_quadratic, row.republish)}"
        f" | {_ratio(row.ours_full, row.republish)} | {_ratio(row.builder, row.ours_full)} |"
        for row in rows
    ]
    return "\n".join(lines)


def machine(start_load: float) -> str:
    """nproc, CPU model, memory, Python, cryptography and OpenSSL versions, load at start/end."""
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    sha = "with" if " sha_ni" in cpuinfo else "without"
    meminfo = Path("/proc/meminfo").read_text(encoding="utf-8").split()
    command = ["openssl", "version"]
    openssl_cli = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    cpu = model.group(1) if model else platform.processor()
    return (
        f"{os.cpu_count()} CPUs ({cpu}, {sha} SHA-NI),"
        f" {int(meminfo[1]) // 1024 // 1024} GiB RAM; Python {platform.python_version()},"
        f" cryptography {cryptography.__version__} ({backend.openssl_version_text()}),"
        f" openssl CLI {openssl_cli.stdout.strip()};"
        f" 1-minute load average {start_load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    )


def report(rows: Sequence[Row], rates: dict[str, tuple[float, float]], start_load: float) -> str:
    """The markdown section for docs/BENCHMARKS.md."""
    largest = rows[-1]
    ocsp_lines = [
        f"| {name} | {alone:,.0f} | {parsed:,.0f} |" for name, (alone, parsed) in rates.items()
    ]
    return "\n".join(
        [
            HEADING,
            "",
            f"Command: `python -m bench.crl --sizes {','.join(str(row.size) for row in rows)}`.",
            f"Machine: {machine(start_load)}. The benchmark uses one core; a load well above 1"
            " means other work ran alongside: absolute times are then noisy, ratios less so.",
            "",
            "Method. " + _method(),
            "",
            table(rows),
            "",
            f"Republish +1 at {largest.size:,} entries with an RSA-2048 CA instead of EC P-256:"
            f" {largest.rsa_republish} (EC P-256: {largest.republish}).",
            "",
            _reading(largest),
            "",
            "OCSP responses per second, one core (nonce echoed, responder certificate included):",
            "",
            "| Delegated responder key | respond | parse_request + respond |",
            "|---|---:|---:|",
            *ocsp_lines,
            "",
        ]
    )


def _reading(largest: Row) -> str:
    """What the largest row says, in numbers taken from it."""
    per_entry = largest.ours_full.seconds / largest.size * 1e6
    return (
        f"Reading it: at {largest.size:,} entries a republish costs"
        f" {largest.republish.seconds / largest.hash_floor.seconds:.1f}x one SHA-256 pass over"
        " the DER; the rest is one copy of the entries into the returned bytes and the signature"
        " itself (no Python object per entry is touched). A full build from scratch is dominated"
        f" by encoding the entries in Python, {per_entry:.1f} µs each: paid once per revocation,"
        " when it is added, or once when the list is loaded from the revocation index at start."
    )


def _method() -> str:
    """The module docstring's description of what is measured, in markdown."""
    paragraphs = (__doc__ or "").split("\n\n")[2:]
    return "\n\n".join(paragraphs).strip().replace("``", "`")


def write_section(path: Path, section: str) -> None:
    """Put ``section`` into ``path``, replacing an earlier run's section, leaving the rest."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    start = text.find(HEADING)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        following = text.find("\n## ", start + len(HEADING))
        rest = "" if following == -1 else text[following:]
        text = text[:start] + section + rest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per path and size")
    parser.add_argument("--docs", type=Path, default=Path("docs/BENCHMARKS.md"))
    parser.add_argument("--no-docs", action="store_true", help="print only")
    args = parser.parse_args(argv)
    start_load = os.getloadavg()[0]
    sizes = sorted(int(size) for size in args.sizes.split(","))
    issuer, rsa = make_issuer(KeyAlgorithm.EC_P256), make_issuer(KeyAlgorithm.RSA_2048)
    rows: list[Row] = []
    for size in sizes:
        issuers = (issuer, rsa if size == sizes[-1] else None)
        previous = rows[-1] if rows else None
        rows.append(measure_size(issuers, size, args.repeats, args.budget, previous))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
    rates = {
        "ECDSA P-256": ocsp_rates(KeyAlgorithm.EC_P256),
        "RSA-2048": ocsp_rates(KeyAlgorithm.RSA_2048),
    }
    section = report(rows, rates, start_load)
    print(section)
    if not args.no_docs:
        write_section(args.docs, section)


if __name__ == "__main__":
    main()
