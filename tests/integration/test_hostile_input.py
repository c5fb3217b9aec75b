"""Hostile input: oversized, malformed and random requests are refused with problem+json
that says what to change, never a 5xx, and leave the event log as it was.

Sizes are judged before the body is parsed: a declared length over the limit before a
byte is read, a chunked body once the limit is read (the tests count what the app
reads, rather than timing it). CSR and PEM parsing and every request body of the API
also get generated input (Hypothesis).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import jsonschema
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from api.http.app import ALL_ROUTES, MAX_BODY_BYTES, create_app
from api.http.routing import Operation
from domain.adapters.settings import Settings
from domain.application.service import PrivateCA
from domain.model.errors import CSRError
from domain.model.tokens import Role
from domain.pki.x509 import load_csr
from tests.api_client import ApiClient
from tests.builders import enabled_intermediate, enabled_root, issue
from tests.conftest import SettableClock

TEN_MB = 10 * 1024 * 1024
DEPTH = 100_000
PROBLEM = "application/problem+json"
JSON_HEADERS = {"Content-Type": "application/json"}
ROOT = {"kind": "root", "subject": {"common_name": "Hostile Root"}}
SERVER_CERT = {"type": "server", "common_name": "www.example.com", "validity_days": 30}
GENERATED = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,  # some generated bodies make RSA keys
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@dataclass
class Target:
    """An app with a real PKI behind it, so refused requests would otherwise have worked."""

    api: ApiClient
    service: PrivateCA
    root: UUID
    intermediate: UUID
    certificate: UUID

    def head(self) -> int:
        return self.service.recorder.max_notification_id() or 0

    def issue_path(self) -> str:
        return f"/api/v1/cas/{self.intermediate}/certificates"


@pytest.fixture
def target(sqlite_settings: Settings, clock: SettableClock) -> Iterator[Target]:
    app = create_app(sqlite_settings, clock=clock, run_projections=False)
    service: PrivateCA = app.extensions["pca"].service
    root = enabled_root(service, quota=500)
    intermediate = enabled_intermediate(service, root, remaining=200)
    certificate = issue(service, intermediate).certificate.id
    yield Target(ApiClient(app), service, root, intermediate, certificate)
    app.extensions["pca"].close()


class CountingInput(io.BytesIO):
    """A request body that counts the bytes the app takes from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.taken = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.taken += len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        count = super().readinto(buffer)
        self.taken += count
        return count


def _refused(
    target: Target, response: TestResponse, before: int, status: int, field: str | None = None
) -> dict[str, Any]:
    """Assert a problem+json refusal that stored nothing; the problem's fields."""
    problem: dict[str, Any] = response.get_json()
    assert response.status_code == status, problem
    assert response.mimetype == PROBLEM
    assert problem["status"] == status
    if field is not None:
        assert problem["field"] == field
    assert target.head() == before
    return problem


# --- Sizes --------------------------------------------------------------------------------


def test_a_declared_10_mb_body_is_refused_before_a_byte_is_read(target: Target) -> None:
    body = CountingInput(b"[" * TEN_MB)
    before = target.head()
    response = target.api.call(
        "POST",
        "/api/v1/cas",
        headers=JSON_HEADERS,
        environ_overrides={"wsgi.input": body, "CONTENT_LENGTH": str(TEN_MB)},
    )
    problem = _refused(target, response, before, 413)
    assert f"{MAX_BODY_BYTES:,} bytes" in problem["detail"]
    assert body.taken == 0


def test_a_chunked_10_mb_body_is_refused_once_the_limit_is_read(target: Target) -> None:
    body = CountingInput(json.dumps({**ROOT, "padding": "x" * TEN_MB}).encode())
    before = target.head()
    response = target.api.call(
        "POST",
        "/api/v1/cas",
        headers={**JSON_HEADERS, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input": body, "wsgi.input_terminated": True},
    )
    _refused(target, response, before, 413)
    assert body.taken <= MAX_BODY_BYTES


def test_valid_json_padded_past_the_limit_is_refused_not_cut_at_the_limit(target: Target) -> None:
    """Werkzeug's stream stops quietly at the limit; the valid JSON before it must not count."""
    padded = json.dumps(ROOT).encode() + b" " * (2 * MAX_BODY_BYTES)
    before = target.head()
    response = target.api.call(
        "POST",
        "/api/v1/cas",
        headers={**JSON_HEADERS, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input": io.BytesIO(padded), "wsgi.input_terminated": True},
    )
    _refused(target, response, before, 413)


def test_a_large_non_json_body_is_refused_too(target: Target) -> None:
    """OCSP requests are DER; the limit holds for any POST body."""
    before = target.head()
    response = target.api.call(
        "POST", f"/ocsp/{target.intermediate}", role=None, data=b"\x30" * (2 * MAX_BODY_BYTES)
    )
    _refused(target, response, before, 413)


def test_ten_thousand_sans_are_a_422_naming_sans(target: Target) -> None:
    sans = [{"type": "dns", "value": f"host{n}.example.com"} for n in range(10_000)]
    before = target.head()
    response = target.api.call("POST", target.issue_path(), json={**SERVER_CERT, "sans": sans})
    problem = _refused(target, response, before, 422, "sans")
    assert "at most 10" in problem["detail"]


def _root_lasting(years: str) -> str:
    """A root CA body, as text, whose validity_years is ``years`` verbatim."""
    return '{"kind": "root", "subject": {"common_name": "x"}, "validity_years": ' + years + "}"


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        pytest.param("[" * DEPTH + "]" * DEPTH, 400, None, id="nested arrays"),
        pytest.param('{"a":' * DEPTH + "1" + "}" * DEPTH, 400, None, id="nested objects"),
        pytest.param('{"kind": ' + "[" * DEPTH + "]" * DEPTH + "}", 400, None, id="in a field"),
        pytest.param(_root_lasting("1" + "0" * 400), 422, "validity_years", id="10**400"),
        pytest.param(_root_lasting("-" + "9" * 500_000), 422, "validity_years", id="500k digits"),
        pytest.param(_root_lasting("1e400"), 422, "validity_years", id="1e400"),
        pytest.param(_root_lasting("NaN"), 400, None, id="NaN"),
        pytest.param(_root_lasting("-Infinity"), 400, None, id="Infinity"),
        pytest.param(
            '{"kind": "root", "subject": {"common_name": "\\udc00"}}',
            422,
            "subject.common_name",
            id="unpaired surrogate",
        ),
        pytest.param(
            json.dumps({"kind": "root", "subject": {"common_name": "c" * 100_000}}),
            422,
            "subject.common_name",
            id="100k-character common name",
        ),
    ],
)
def test_malformed_or_oversized_json_is_refused_and_names_the_field(
    target: Target, body: str, status: int, field: str | None
) -> None:
    before = target.head()
    response = target.api.call("POST", "/api/v1/cas", data=body, headers=JSON_HEADERS)
    _refused(target, response, before, status, field)


def test_invalid_utf8_is_a_400(target: Target) -> None:
    before = target.head()
    body = b'{"kind": "root", "subject": {"common_name": "\xc3\x28"}}'
    response = target.api.call("POST", "/api/v1/cas", data=body, headers=JSON_HEADERS)
    assert "UTF-8" in _refused(target, response, before, 400)["detail"]


def test_a_huge_csr_is_a_422_naming_csr(target: Target) -> None:
    before = target.head()
    body = {**SERVER_CERT, "csr": "-----BEGIN CERTIFICATE REQUEST-----\n" + "A" * 500_000}
    response = target.api.call("POST", target.issue_path(), json=body)
    _refused(target, response, before, 422, "csr")


def test_an_unpaired_surrogate_in_a_free_text_field_is_a_422_not_a_500(target: Target) -> None:
    before = target.head()
    response = target.api.call(
        "POST",
        target.issue_path(),
        data=json.dumps({**SERVER_CERT, "name": "\ud800"}),
        headers=JSON_HEADERS,
    )
    _refused(target, response, before, 422, "name")


def test_problems_echoing_huge_input_stay_within_the_published_schema(target: Target) -> None:
    """The ApiClient checks each problem against the document (field, detail, instance)."""
    before = target.head()
    unknown = target.api.call("POST", "/api/v1/cas", json={**ROOT, "k" * 100_000: 1})
    assert len(_refused(target, unknown, before, 422)["field"]) <= 256
    long_path = target.api.client.get("/api/v1/reports/" + "k" * 5000)
    assert long_path.status_code == 404
    problem = {"$ref": "#/components/schemas/Problem", **target.api.document}
    jsonschema.validate(long_path.get_json(), problem)


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/events?limit=%C2%B3",  # a superscript digit: str.isdigit() says yes
        "/api/v1/events?after=%C2%B3",
        "/api/v1/events?from=9999-12-31T23:59:59-01:00",  # past the last day in UTC
        "/api/v1/audit/state?at=%C2%B3",
        "/api/v1/reports/inventory?days=%C2%B3",
        "/api/v1/reports/inventory?from=0001-01-01T00:00:00%2B01:00",
    ],
)
def test_query_values_that_only_look_like_numbers_or_times_are_a_422(
    target: Target, query: str
) -> None:
    before = target.head()
    _refused(target, target.api.call("GET", query, role=Role.AUDITOR), before, 422)


# --- CSR and PEM parsing ------------------------------------------------------------------


def _csr_der(key: CertificateIssuerPrivateKeyTypes) -> bytes:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz.example")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, algorithm)
    return csr.public_bytes(Encoding.DER)


CSR_DERS = {
    "EC P-256": _csr_der(ec.generate_private_key(ec.SECP256R1())),
    "RSA 2048": _csr_der(rsa.generate_private_key(65537, 2048)),
    "Ed25519": _csr_der(ed25519.Ed25519PrivateKey.generate()),
}


def _pem(der: bytes, label: str = "CERTIFICATE REQUEST") -> str:
    body = base64.encodebytes(der).decode("ascii")
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n"


def _parses_or_refuses(text: str) -> None:
    """``load_csr`` returns a CSR or raises CSRError, naming the field; nothing else."""
    refusal: CSRError | None = None
    try:
        load_csr(text)
    except CSRError as error:
        refusal = error
    assert refusal is None or refusal.field == "csr"


@GENERATED
@given(st.text(max_size=2000))
def test_any_text_is_a_csr_or_a_csr_error(text: str) -> None:
    _parses_or_refuses(text)


@GENERATED
@given(st.binary(max_size=2000), st.sampled_from(["CERTIFICATE REQUEST", "CERTIFICATE", "X"]))
def test_any_pem_armoured_bytes_are_a_csr_or_a_csr_error(der: bytes, label: str) -> None:
    _parses_or_refuses(_pem(der, label))


@settings(GENERATED, max_examples=400)
@given(
    st.sampled_from(sorted(CSR_DERS)),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_a_csr_with_corrupted_bytes_is_a_csr_or_a_csr_error(
    kind: str, changes: list[tuple[int, int]]
) -> None:
    """Flipped bytes give unknown key OIDs, bad versions and bad lengths to the parser."""
    der = bytearray(CSR_DERS[kind])
    for offset, value in changes:
        der[offset % len(der)] = value
    _parses_or_refuses(_pem(bytes(der)))


@GENERATED
@given(st.text(max_size=300) | st.binary(max_size=600).map(_pem))
def test_a_generated_csr_field_is_refused_as_422_and_stores_nothing(
    target: Target, csr: str
) -> None:
    before = target.head()
    response = target.api.call(
        "POST", target.issue_path(), role=Role.OPERATOR, json={**SERVER_CERT, "csr": csr}
    )
    _refused(target, response, before, 422, "csr")


# --- Every request body -------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
BODY_OPERATIONS = [
    operation for routes in ALL_ROUTES for operation in routes.operations if operation.body
]


def _shaped_bodies(operation: Operation) -> st.SearchStrategy[Any]:
    """Objects with the body's own keys (some or all) holding any JSON values, and values
    of any shape at all."""
    assert operation.body is not None
    keys = {key: JSON_VALUES for key in operation.body.properties}
    return st.fixed_dictionaries({}, optional=keys) | JSON_VALUES


def _path(operation: Operation, target: Target) -> str:
    """The operation's path on real objects: the root for quota, else the intermediate."""
    ca_id = target.root if "quota" in operation.rule else target.intermediate
    return (
        operation.rule.replace("<uuid:ca_id>", str(ca_id))
        .replace("<uuid:certificate_id>", str(target.certificate))
        .replace("<uuid:intermediate_id>", str(target.intermediate))
    )


@pytest.mark.parametrize("operation", BODY_OPERATIONS, ids=lambda op: op.operation_id)
def test_generated_bodies_never_get_a_5xx_and_refusals_store_nothing(
    target: Target, operation: Operation
) -> None:
    path = _path(operation, target)

    @GENERATED
    @given(body=_shaped_bodies(operation))
    def send(body: Any) -> None:
        before = target.head()
        response = target.api.call(operation.method, path, json=body)  # checks the document
        assert response.status_code < 500, response.get_json()
        if response.status_code >= 400:
            _refused(target, response, before, response.status_code)

    send()
