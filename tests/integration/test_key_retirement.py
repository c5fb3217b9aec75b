"""Retiring a CA's previous key: refused while what it signed may be valid (its CA
certificate's end), then one event, the key destroyed where it lived (key store or
PKCS#11 token), no CRL published and no OCSP answer signed with it again."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from api.deployment import Deployment
from domain.adapters.pkcs11 import TokenSettings
from domain.adapters.settings import Settings
from domain.application.service import PrivateCA
from domain.model.errors import CAStateError, KeyCustodyError, NotFoundError
from domain.model.tokens import Role
from projections.audit.pointintime import state_at
from projections.revocation.publisher import CRLPublisher
from tests.api_client import ApiClient
from tests.builders import ADMIN, enabled_intermediate, enabled_root, issue
from tests.conftest import SettableClock
from tests.integration.test_pkcs11_signer import opened, token_hierarchy


def _parse(moment: str) -> dt.datetime:
    return dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))


def _ocsp_status(api: ApiClient, ca_id: UUID, leaf_der: bytes, issuer_pem: str) -> Any:
    leaf = x509.load_der_x509_certificate(leaf_der)
    issuer = x509.load_pem_x509_certificate(issuer_pem.encode())
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA256()).build()
    answer = api.app.test_client().post(
        f"/ocsp/{ca_id}",
        data=request.public_bytes(Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    return ocsp.load_der_ocsp_response(answer.data).response_status


def test_a_previous_key_is_retired_once_its_certificate_expired_and_is_gone(
    api: ApiClient, settings: Settings, clock: SettableClock
) -> None:
    deployment = api.app.extensions["pca"]
    assert isinstance(deployment, Deployment)
    service = deployment.service
    ca_id = enabled_intermediate(service, enabled_root(service))
    old_leaf = issue(service, ca_id).certificate.certificate_der
    clock.advance(days=30)
    rolled = api.call("POST", f"/api/v1/cas/{ca_id}/rollover").get_json()
    first, _ = rolled["key_generations"]
    retire = f"/api/v1/cas/{ca_id}/keys/1/retire"

    early = _refused(api, retire)
    assert first["not_after"].removesuffix("Z") in early["detail"]
    current = _refused(api, f"/api/v1/cas/{ca_id}/keys/2/retire")
    assert "roll the key over first" in current["detail"]
    assert _ocsp_status(api, ca_id, old_leaf, first["certificate_pem"]).name == "SUCCESSFUL"

    clock.now = _parse(first["not_after"]) + dt.timedelta(seconds=1)
    retired = api.call("POST", retire, headers={"X-Request-Id": "retire-1"}).get_json()
    assert [g["generation"] for g in retired["key_generations"]] == [2]
    with pytest.raises(NotFoundError):
        service.keystore.get(f"ca-{ca_id}")
    history = api.call("GET", f"/api/v1/events?aggregate_id={ca_id}").get_json()["items"]
    assert (history[-1]["type"], history[-1]["actor"], history[-1]["request_id"]) == (
        "CAKeyRetired",
        "test-admin (admin)",
        "retire-1",
    )
    listed = next(
        ca for ca in api.call("GET", "/api/v1/cas").get_json()["items"] if ca["id"] == str(ca_id)
    )
    assert [(g["generation"], g["retired_at"] is not None) for g in listed["key_generations"]] == [
        (1, True),
        (2, False),
    ]
    console = api.app.test_client()
    console.post("/console/sign-in", data={"token": api.tokens[Role.AUDITOR]})
    assert re.search(
        r"<th scope=\"row\">1</th>.*?<td>retired ", console.get(f"/console/cas/{ca_id}").text, re.S
    )
    assert _ocsp_status(api, ca_id, old_leaf, first["certificate_pem"]).name == "UNAUTHORIZED"
    audited = next(ca for ca in state_at(settings).cas if ca.id == ca_id)  # the same fold
    assert audited.key_generations == deployment.read_models.get_ca(ca_id, clock()).key_generations
    published = CRLPublisher(service, deployment.read_models, deployment.crls).publish(
        ca_id, force_base=True
    )
    assert {item.generation for item in published} == {2}
    again = _refused(api, retire)
    assert "already retired" in again["detail"]


def _refused(api: ApiClient, path: str) -> Any:
    answer = api.call("POST", path)
    assert answer.status_code == 409, answer.get_json()
    assert answer.mimetype == "application/problem+json"
    return answer.get_json()


@pytest.fixture
def token_service(
    settings: Settings, token: TokenSettings, clock: SettableClock
) -> Iterator[PrivateCA]:
    with opened(dataclasses.replace(settings, pkcs11=token), clock) as service:
        yield service


def test_retiring_a_token_key_destroys_the_token_object(
    token_service: PrivateCA, clock: SettableClock
) -> None:
    service = token_service
    assert service.token_signer is not None
    root_id, _ = token_hierarchy(service)
    clock.advance(days=1)
    service.roll_over_ca_key(ADMIN, root_id)
    first = service.get_ca(root_id).key_generation(1)
    with pytest.raises(CAStateError, match="may still be needed"):
        service.retire_ca_key(ADMIN, root_id, 1)
    service.token_signer.signing_key(first.key.key_id)  # still in the token

    clock.now = x509.load_der_x509_certificate(first.certificate_der).not_valid_after_utc
    service.retire_ca_key(ADMIN, root_id, 1)
    with pytest.raises(KeyCustodyError):
        service.token_signer.signing_key(first.key.key_id)
    assert [g.number for g in service.get_ca(root_id).generations] == [2]
