"""Schemathesis against the published /openapi.json: every operation gets generated valid
and invalid requests, and no answer may be a 5xx or differ from what the document says
(status, media type, body schema).

The calls go through the WSGI app on SQLite, with an admin token and a real PKI behind
it (a root, an issuing intermediate with quota, certificates in each state, published
CRLs), so path parameters are often real identifiers and generated bodies reach the
domain, not only 404s. Generation is derandomized and bounded per operation; the total
number of cases is counted so the test fails if generation silently shrinks.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
import schemathesis
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from api.http.app import ALL_ROUTES, create_app
from api.http.schema import PerItem
from domain.adapters.settings import Settings
from domain.application.service import PrivateCA
from domain.model.tokens import Role
from domain.model.values import RevocationReason
from projections.audit.report_kinds import ReportKind
from projections.revocation.crlstore import BASE
from tests.api_client import SETUP
from tests.builders import ADMIN, enabled_intermediate, enabled_root, intermediate_profile, issue
from tests.conftest import SettableClock

MIN_CASES = 1000
EXAMPLES_PER_MODE = 30  # about 1,900 cases over 33 operations and two modes
MIN_SUCCESS_SHARE = 0.8  # operations that valid input brings to a 2xx at least once
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# A batch answers 200 with a problem for each bad item, so schema-invalid items are not
# refused as a whole; every other check still applies to it.
PER_ITEM_CHECKS = [check for check in CHECKS if check is not negative_data_rejection]
HYPOTHESIS = settings(
    max_examples=EXAMPLES_PER_MODE,
    derandomize=True,
    database=None,
    deadline=None,  # key generation varies with load; the whole run is bounded by count
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
PUBLISH_WAIT_SECONDS = 60.0
# Operations that change a CA or certificate for good get their own targets, so the
# others keep meeting an enabled intermediate and live certificates.
DESTRUCTIVE = frozenset(
    {"enable_ca", "disable_ca", "revoke_ca", "revoke_certificate", "delete_certificate"}
)

Targets = Mapping[str, Sequence[str]]
ApiOperation = schemathesis.APIOperation[Any, Any, Any, Any]
GeneratedCase = Case[ApiOperation]


@dataclass
class Pki:
    """Real identifiers for path parameters, per parameter name."""

    shared: dict[str, list[str]]
    spare: dict[str, list[str]]

    def targets(self, operation_id: str) -> Targets:
        return self.spare if operation_id in DESTRUCTIVE else self.shared


@dataclass
class Tally:
    """Cases sent and status codes seen, per operation and mode, and every failure."""

    codes: dict[str, Counter[int]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def record(self, label: str, status: int) -> None:
        self.codes.setdefault(label, Counter())[status] += 1

    @property
    def total(self) -> int:
        return sum(sum(counter.values()) for counter in self.codes.values())


@pytest.fixture
def served(sqlite_settings: Settings, clock: SettableClock) -> Iterator[Flask]:
    app = create_app(sqlite_settings, clock=clock)
    yield app
    app.extensions["pca"].close()


def _ocsp_request(service: PrivateCA, certificate_id: UUID, issuer_id: UUID) -> str:
    """A real OCSP request for the certificate, base64 as the GET form puts it in the path."""
    leaf = x509.load_der_x509_certificate(service.get_certificate(certificate_id).certificate_der)
    issuer_der = service.get_ca(issuer_id).certificate_der
    assert issuer_der is not None
    issuer = x509.load_der_x509_certificate(issuer_der)
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA256()).build()
    return base64.b64encode(request.public_bytes(Encoding.DER)).decode("ascii")


def _build_pki(app: Flask) -> Pki:
    """A root, two intermediates with quota and a pending one, certificates issued and
    revoked, and the first CRLs out."""
    found = app.extensions["pca"]
    service: PrivateCA = found.service
    root = enabled_root(service, quota=2000)
    issuing = enabled_intermediate(service, root, remaining=1000)
    spare_ca = enabled_intermediate(service, root, remaining=10)
    pending = service.create_intermediate(ADMIN, root, intermediate_profile()).id
    kept = issue(service, issuing).certificate.id
    revoked = issue(service, issuing).certificate.id
    service.revoke_certificate(ADMIN, revoked, RevocationReason.KEY_COMPROMISE)
    spare_cert = issue(service, spare_ca).certificate.id
    _wait_for_crls(app, (root, issuing, spare_ca))
    kinds = [kind.value for kind in ReportKind]
    return Pki(
        shared={
            "ca_id": [str(root), str(issuing)],
            "certificate_id": [str(kept), str(revoked)],
            "kind": kinds,
            "encoded": [_ocsp_request(service, kept, issuing)],
        },
        spare={
            "ca_id": [str(spare_ca), str(pending)],
            "certificate_id": [str(spare_cert), str(revoked)],
            "kind": kinds,
        },
    )


def _wait_for_crls(app: Flask, ca_ids: Sequence[UUID]) -> None:
    """Let the publisher thread sign the first CRLs, so the CRL routes answer 200."""
    crls = app.extensions["pca"].crls
    deadline = time.monotonic() + PUBLISH_WAIT_SECONDS
    while any(crls.get(ca_id, BASE) is None for ca_id in ca_ids):
        assert time.monotonic() < deadline, "the publisher did not publish the first CRLs"
        time.sleep(0.1)


def _case_strategy(
    operation: ApiOperation, mode: GenerationMode, targets: Targets
) -> st.SearchStrategy[GeneratedCase]:
    """Cases whose path parameters are either real identifiers or generated ones."""
    names = [parameter.name for parameter in operation.path_parameters]
    choices = [[*targets.get(name, []), None] for name in names]
    strategies = []
    for picked in itertools.product(*choices):
        fixed = {name: value for name, value in zip(names, picked, strict=True) if value}
        strategies.append(operation.as_strategy(mode, path_parameters=fixed or None))
    return st.one_of(strategies)


def _exercise(
    operation: ApiOperation, mode: GenerationMode, pki: Pki, token: str, tally: Tally
) -> None:
    label = f"{operation.label} [{mode.value}]"
    operation_id = operation.definition.raw.get("operationId", "")
    targets = pki.targets(operation_id)
    checks = PER_ITEM_CHECKS if operation_id in _per_item_operations() else CHECKS

    @HYPOTHESIS
    @given(case=_case_strategy(operation, mode, targets))
    def run(case: GeneratedCase) -> None:
        response = case.call(
            headers={"Authorization": f"Bearer {token}"},
            environ_overrides={"REMOTE_ADDR": _address(tally.total)},
        )
        tally.record(label, response.status_code)
        try:
            case.validate_response(response, checks=checks)
        except (AssertionError, FailureGroup) as failure:
            tally.failures.append(f"{label}: {failure}")

    run()


def _address(number: int) -> str:
    """A client address of its own for each case: generated bad tokens are refused, and
    the brake on repeated failures from one address would only slow the run down."""
    return str(ipaddress.IPv4Address(0x0A000000 + number))


def _per_item_operations() -> set[str]:
    """Operations whose body holds items checked one by one (see ``PerItem``)."""
    return {
        operation.operation_id
        for routes in ALL_ROUTES
        for operation in routes.operations
        if operation.body and any(isinstance(spec, PerItem) for spec in operation.body.nested())
    }


def _has_generated_inputs(operation: ApiOperation) -> bool:
    """Whether anything in the request can be made invalid (parameters, body or token)."""
    return bool(
        list(operation.iter_parameters())
        or operation.body
        or operation.definition.raw.get("security")
    )


def test_generated_requests_get_documented_answers_and_never_a_5xx(served: Flask) -> None:
    pki = _build_pki(served)
    token = served.extensions["pca"].service.create_token(SETUP, "schemathesis", Role.ADMIN)[0]
    schema = schemathesis.openapi.from_wsgi("/openapi.json", served)
    tally = Tally()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operation = result.ok()
        for mode in MODES:
            if mode is GenerationMode.NEGATIVE and not _has_generated_inputs(operation):
                continue  # /healthz: there is nothing to send wrong
            _exercise(operation, mode, pki, token, tally)
    assert not tally.failures, "\n\n".join(tally.failures)
    assert tally.total >= MIN_CASES, tally.codes
    positive = {label: codes for label, codes in tally.codes.items() if "[positive]" in label}
    succeeded = [label for label, codes in positive.items() if any(c < 300 for c in codes)]
    assert len(succeeded) >= MIN_SUCCESS_SHARE * len(positive), tally.codes
