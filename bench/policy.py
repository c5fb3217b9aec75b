"""What the issuance policy (profile rules and name constraints) costs per issuance.

    python -m bench.policy [--count 300] [--postgres-url URL]

Same process, interleaved per round, so the ratios hold on a noisy machine:

- policy: the checks an issuance runs under a profile with 20 allowed and 5 denied DNS
  patterns, IP networks, key algorithms, a maximum and default validity and fixed subject
  fields, on an intermediate with name constraints: profile lookup, ``check_request``,
  ``check_names``, ``decide``, ``check_validity`` and ``check_key_algorithm``;
- issuance under that profile, and under the default profile, through
  ``PrivateCA.issue_certificate`` on durable storage (EC P-256 keys made by the service).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

from domain.adapters.settings import Settings, open_service
from domain.application.commands import CertificateRequest
from domain.application.service import PrivateCA
from domain.model import policy
from domain.model.constraints import check_names, name_constraints
from domain.model.policy_form import policy_from
from domain.model.validation import normalize_sans, normalize_subject
from domain.model.values import SAN, KeyAlgorithm, SANType
from tests.builders import ADMIN, OPERATOR, enabled_root, intermediate_profile, server_request

ROUNDS_PER_SAMPLE = 100  # policy checks per timed sample: one takes microseconds
WEB = {
    "types": ["server"],
    "dns": {
        "allow": [f"*.team{n}.svc.example" for n in range(19)] + ["api.example"],
        "deny": [f"*.secret{n}.svc.example" for n in range(5)],
    },
    "allow_wildcards": False,
    "ip": {"allow": ["10.1.0.0/16", "10.2.0.0/24"], "deny": ["10.1.9.0/24"]},
    "common_name": {"allow": ["*.svc.example", "api.example"]},
    "key_algorithms": ["EC_P256", "RSA_2048"],
    "max_validity_days": 90,
    "default_validity_days": 30,
    "subject_fields": ["organizational_unit"],
    "fixed_subject": {"organization": "Example Corp", "country": "DE"},
}
CONSTRAINTS = name_constraints(
    [("dns", "svc.example"), ("dns", "api.example"), ("ip", "10.0.0.0/8")],
    [("dns", "secret.svc.example")],
)


def _request(profile: str | None) -> CertificateRequest:
    base = server_request("h1.team18.svc.example", validity_days=30)
    sans = (*base.sans, SAN(SANType.DNS, "h2.team18.svc.example"), SAN(SANType.IP, "10.1.2.3"))
    subject = dataclasses.replace(base.subject, organization=None)
    return dataclasses.replace(base, sans=sans, subject=subject, profile=profile)


def _policy_checks(
    service: PrivateCA, ca_id: UUID, request: CertificateRequest
) -> Callable[[], None]:
    """The policy work of one issuance, as :mod:`domain.application.issuance` runs it."""
    ca = service.get_ca(ca_id)
    subject = normalize_subject(request.subject)
    sans = normalize_sans(request.type, request.sans)
    now = service.clock()
    window = ca.leaf_window(now, request.validity_days)  # made with or without a profile

    def run() -> None:
        for _ in range(ROUNDS_PER_SAMPLE):
            profile = ca.issuing_profile(request.profile or "default")
            policy.check_request(profile, request.type, subject, sans)
            check_names(ca.name_constraints, sans, subject.common_name)
            decided = policy.decide(profile, subject, request.validity_days, False, True)
            assert decided.validity_days == request.validity_days
            policy.check_validity(profile, window[1] - now, "validity_days")
            policy.check_key_algorithm(profile, KeyAlgorithm.EC_P256, "key_algorithm")

    return run


def _time(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def measure(settings: Settings, store: str, count: int) -> str:
    """One markdown row: policy, profiled and default issuance medians, and the ratios."""
    service = open_service(settings)
    try:
        root_id = enabled_root(service, quota=2 * count + 10)
        outcome = service.create_intermediate(
            ADMIN, root_id, intermediate_profile(), name_constraints=CONSTRAINTS
        )
        ca_id = outcome.id
        service.enable_ca(ADMIN, ca_id)
        service.assign_quota(ADMIN, root_id, ca_id, 2 * count + 10)
        service.create_profile(ADMIN, ca_id, "web", policy_from(WEB))
        checks = _policy_checks(service, ca_id, _request("web"))
        profiled, default = _request("web"), _request(None)
        policy_ms: list[float] = []
        web_ms: list[float] = []
        default_ms: list[float] = []
        issue = service.issue_certificate
        pair = [(web_ms, profiled), (default_ms, default)]
        for _ in range(count):
            policy_ms.append(_time(checks) / ROUNDS_PER_SAMPLE)
            pair.reverse()  # the second of two issuances in a row runs slower: alternate
            for samples, request in pair:
                samples.append(_time(functools.partial(issue, OPERATOR, ca_id, request)))
    finally:
        service.close()
        service.keystore.close()
    p, w, d = (statistics.median(samples) for samples in (policy_ms, web_ms, default_ms))
    return (
        f"| {store} | {count} | {p * 1000:.0f} µs | {w:.2f} | {d:.2f} | {100 * p / w:.1f} % |"
        f" {w / d:.2f}x |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--postgres-url", help="also measure on this PostgreSQL database")
    args = parser.parse_args()
    stores = {"SQLite": None} | ({"PostgreSQL": args.postgres_url} if args.postgres_url else {})
    print(
        "| store | n | policy checks p50 | issuance under profile p50 ms"
        " | issuance, default profile p50 ms | policy / issuance | profile / default |"
    )
    print("|---|---|---|---|---|---|---|")
    for store, url in stores.items():
        with tempfile.TemporaryDirectory() as directory:
            settings = Settings(data_dir=Path(directory), database_url=url)
            print(measure(settings, store, args.count), flush=True)


if __name__ == "__main__":
    main()
