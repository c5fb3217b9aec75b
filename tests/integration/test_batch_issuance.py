"""Batch issuance: each item succeeds or fails alone; quota and idempotency hold per item."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from psycopg import sql

from domain.application.commands import CertificateRequest
from domain.application.service import IssuedCertificate, PrivateCA
from domain.model.authority import CertificateAuthority
from domain.model.errors import QuotaError
from domain.model.tokens import Role
from tests.api_client import ApiClient
from tests.builders import OPERATOR, enabled_intermediate, enabled_root, server_request

BATCH = "/api/v1/cas/{}/certificates:batch"


def _item(name: str, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "server",
        "common_name": name,
        "validity_days": 30,
        "key_algorithm": "EC_P256",
    }
    item.update(extra)
    return item


def ec_csr_pem(common_name: str = "alice") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(Encoding.PEM).decode()


def _issuing_ca(api: ApiClient, remaining: int) -> str:
    service: PrivateCA = api.app.extensions["pca"].service
    root_id = enabled_root(service, quota=remaining)
    return str(enabled_intermediate(service, root_id, remaining=remaining))


def _batch(api: ApiClient, ca_id: str, items: list[Any], status: int = 200) -> dict[str, Any]:
    response = api.call("POST", BATCH.format(ca_id), role=Role.OPERATOR, json={"items": items})
    assert response.status_code == status, response.get_json()
    answer: dict[str, Any] = response.get_json()
    return answer


def _quota_remaining(api: ApiClient, ca_id: str) -> int:
    remaining: int = api.app.extensions["pca"].service.get_ca(UUID(ca_id)).quota_remaining
    return remaining


def test_each_item_succeeds_or_fails_on_its_own(api: ApiClient) -> None:
    ca_id = _issuing_ca(api, remaining=10)
    answer = _batch(
        api,
        ca_id,
        [
            _item("a.example.com"),
            _item("b.example.com", validity_days=0),
            {"type": "client", "common_name": "alice", "validity_days": 30, "csr": ec_csr_pem()},
            _item("c.example.com", colour="blue"),
            _item("not a host name"),
        ],
    )
    statuses = [result["status"] for result in answer["results"]]
    assert statuses == [201, 422, 201, 422, 422]
    assert [result["index"] for result in answer["results"]] == [0, 1, 2, 3, 4]
    assert answer["results"][1]["problem"]["field"] == "items[1].validity_days"
    assert answer["results"][3]["problem"]["field"] == "items[3].colour"
    # refused by issuance rather than by the schema, the field still names its item
    assert answer["results"][4]["problem"]["field"].startswith("items[4].")
    assert (answer["succeeded"], answer["failed"]) == (2, 3)
    assert _quota_remaining(api, ca_id) == 8  # failures consumed nothing

    issued = [result["certificate"] for result in answer["results"] if result["status"] == 201]
    chain = x509.load_pem_x509_certificates(answer["chain_pem"].encode())
    for certificate in issued:
        parsed = x509.load_pem_x509_certificate(certificate["certificate_pem"].encode())
        parsed.verify_directly_issued_by(chain[0])
        fetched = api.call("GET", f"/api/v1/certificates/{certificate['id']}")
        assert fetched.get_json()["serial_number"] == certificate["serial_number"]


def test_quota_runs_out_item_by_item_in_order(api: ApiClient) -> None:
    ca_id = _issuing_ca(api, remaining=3)
    answer = _batch(api, ca_id, [_item(f"host-{n}.example.com") for n in range(5)])
    assert [result["status"] for result in answer["results"]] == [201, 201, 201, 409, 409]
    assert "quota" in answer["results"][3]["problem"]["detail"]
    assert _quota_remaining(api, ca_id) == 0
    listed = api.call("GET", f"/api/v1/cas/{ca_id}/certificates", headers=_waiting(api))
    assert len(listed.get_json()["items"]) == 3


def _waiting(api: ApiClient) -> dict[str, str]:
    head = api.app.extensions["pca"].service.recorder.max_notification_id()
    return {"X-Wait-For-Position": str(head)}


def test_idempotency_keys_hold_per_item(api: ApiClient) -> None:
    ca_id = _issuing_ca(api, remaining=10)
    items = [
        _item("one.example.com", idempotency_key="one"),
        _item("two.example.com", idempotency_key="two"),
        _item("one.example.com", idempotency_key="one"),  # the same request twice
        _item("other.example.com", idempotency_key="two"),  # the key with other parameters
    ]
    first = _batch(api, ca_id, items)
    ids = [result.get("certificate", {}).get("id") for result in first["results"]]
    assert [result["status"] for result in first["results"]] == [201, 201, 201, 409]
    assert ids[0] == ids[2]
    assert "Idempotency" in first["results"][3]["problem"]["detail"] or (
        first["results"][3]["problem"]["title"] == "Idempotency key reused"
    )
    assert _quota_remaining(api, ca_id) == 8

    again = _batch(api, ca_id, items[:2])
    assert [result["certificate"]["id"] for result in again["results"]] == ids[:2]
    assert _quota_remaining(api, ca_id) == 8  # repeats consume nothing


def test_a_key_used_by_a_single_request_repeats_in_a_batch(api: ApiClient) -> None:
    ca_id = _issuing_ca(api, remaining=5)
    single = api.call(
        "POST",
        f"/api/v1/cas/{ca_id}/certificates",
        role=Role.OPERATOR,
        json=_item("web.example.com"),
        headers={"Idempotency-Key": "web-1"},
    )
    assert single.status_code == 201
    answer = _batch(api, ca_id, [_item("web.example.com", idempotency_key="web-1")])
    assert answer["results"][0]["certificate"]["id"] == single.get_json()["id"]
    assert _quota_remaining(api, ca_id) == 4


def test_a_ca_that_cannot_issue_refuses_the_whole_batch(api: ApiClient) -> None:
    ca_id = _issuing_ca(api, remaining=5)
    api.call("POST", f"/api/v1/cas/{ca_id}/disable")
    head = api.app.extensions["pca"].service.recorder.max_notification_id()
    response = api.call(
        "POST", BATCH.format(ca_id), role=Role.OPERATOR, json={"items": [_item("x.example")]}
    )
    assert response.status_code == 409
    assert api.app.extensions["pca"].service.recorder.max_notification_id() == head


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": [_item(f"h{n}.example") for n in range(1001)]}, "items"),
        ({"items": "all of them"}, "items"),
        ({"items": [42]}, "items[0]"),
        ({}, "items"),
    ],
)
def test_a_malformed_batch_is_refused_whole(api: ApiClient, body: object, field: str) -> None:
    ca_id = _issuing_ca(api, remaining=5)
    response = api.call("POST", BATCH.format(ca_id), role=Role.OPERATOR, json=body)
    assert response.status_code == 422
    assert response.get_json()["field"] == field
    assert _quota_remaining(api, ca_id) == 5


def test_an_auditor_may_not_issue_in_batches(api: ApiClient) -> None:
    ca_id = _issuing_ca(api, remaining=5)
    response = api.call(
        "POST", BATCH.format(ca_id), role=Role.AUDITOR, json={"items": [_item("a.example")]}
    )
    assert response.status_code == 403


def test_concurrent_batches_and_singles_never_oversell(service: PrivateCA) -> None:
    """Groups are formed from whatever is waiting: batches and single requests mix."""
    quota = 40
    ca_id = enabled_intermediate(service, enabled_root(service, quota=quota), remaining=quota)
    start = threading.Barrier(8)

    def batch(_: int) -> list[str]:
        start.wait()
        outcomes = service.issue_certificates(OPERATOR, ca_id, [server_request()] * 6)
        return [_serial_or_refusal(outcome) for outcome in outcomes]

    def singles(_: int) -> list[str]:
        start.wait()
        return [_single(service, ca_id, server_request()) for _ in range(6)]

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(batch if n % 2 else singles, n) for n in range(8)]
        outcomes = [outcome for future in futures for outcome in future.result()]
    serials = [outcome for outcome in outcomes if outcome != "quota"]
    assert len(serials) == quota
    assert len(set(serials)) == quota
    assert outcomes.count("quota") == 8 * 6 - quota
    assert service.get_ca(ca_id).quota_remaining == 0


def _serial_or_refusal(outcome: IssuedCertificate | Exception) -> str:
    if isinstance(outcome, QuotaError):
        return "quota"
    assert isinstance(outcome, IssuedCertificate), outcome
    return outcome.certificate.serial_number


def _single(service: PrivateCA, ca_id: UUID, request: CertificateRequest) -> str:
    try:
        return service.issue_certificate(OPERATOR, ca_id, request).certificate.serial_number
    except QuotaError:
        return "quota"


def test_refused_items_leave_no_key_behind(service: PrivateCA) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service, quota=2), remaining=2)
    outcomes = service.issue_certificates(OPERATOR, ca_id, [server_request()] * 4)
    issued = [outcome for outcome in outcomes if isinstance(outcome, IssuedCertificate)]
    assert len(issued) == 2
    for outcome in issued:
        assert outcome.certificate.key_id is not None
        service.keystore.get(outcome.certificate.key_id)  # stored, and readable
    assert _stored_leaf_keys(service) == 2


def _stored_leaf_keys(service: PrivateCA) -> int:
    """Leaf keys in the key store, counted through the backend's own connection."""
    store: Any = service.keystore
    if hasattr(store, "_conn"):
        row = store._conn.execute("SELECT count(*) FROM pca_keys WHERE key_id LIKE 'leaf-%'")
        return int(row.fetchone()[0])
    with store._pool.connection() as conn:
        query = sql.SQL("SELECT count(*) FROM {} WHERE key_id LIKE 'leaf-%%'")
        found = conn.execute(query.format(store._table)).fetchone()
        return int(found[0])


def test_a_batch_spends_its_quota_in_one_event_naming_every_certificate(
    service: PrivateCA,
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service, quota=3), remaining=3)
    before = service.get_ca(ca_id).version
    outcomes = service.issue_certificates(OPERATOR, ca_id, [server_request()] * 5)
    issued = [outcome for outcome in outcomes if isinstance(outcome, IssuedCertificate)]
    events = list(service.events.get(ca_id, gt=before))
    assert [type(event).__name__ for event in events] == ["QuotaSpent"]
    spent = events[0]
    assert isinstance(spent, CertificateAuthority.QuotaSpent)
    assert spent.certificate_ids == [outcome.certificate.id for outcome in issued]
    assert spent.serial_numbers == [outcome.certificate.serial_number for outcome in issued]
    assert spent.actor == OPERATOR.actor
