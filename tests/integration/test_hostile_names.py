"""Names and passwords that read differently from what they are, over HTTP: bidirectional
controls in names, unassigned country codes, passwords of spaces only."""

from __future__ import annotations

import pytest

from domain.model.tokens import Role
from tests.api_client import ApiClient
from tests.integration.test_api_flow import _intermediate, _issue, _root

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "invoice{RLO}fdp.exe" shows as "invoiceexe.pdf"


def _create_root(api: ApiClient, subject: dict[str, str]) -> tuple[int, dict[str, str]]:
    response = api.call("POST", "/api/v1/cas", json={"kind": "root", "subject": subject})
    body: dict[str, str] = response.get_json()
    return response.status_code, body


@pytest.mark.parametrize(
    ("subject", "field"),
    [
        ({"common_name": f"Root{RLO}AC"}, "subject.common_name"),
        ({"common_name": "Root", "organization": f"Ex{RLO}ample"}, "subject.organization"),
        ({"common_name": "Root", "country": "XX"}, "subject.country"),
        ({"common_name": "Root", "country": "UK"}, "subject.country"),  # GB is assigned
    ],
)
def test_bidi_controls_and_unassigned_countries_are_refused(
    api: ApiClient, subject: dict[str, str], field: str
) -> None:
    status, problem = _create_root(api, subject)
    assert (status, problem["field"]) == (422, field)


def test_an_assigned_country_is_taken_in_any_case(api: ApiClient) -> None:
    status, _ = _create_root(api, {"common_name": "Root", "country": "gb"})
    assert status == 201


def test_a_certificate_name_with_a_bidi_control_is_refused(api: ApiClient) -> None:
    ca_id = _intermediate(api, _root(api))
    body = {"type": "server", "common_name": "a.example", "validity_days": 30}
    refused = api.call(
        "POST",
        f"/api/v1/cas/{ca_id}/certificates",
        role=Role.OPERATOR,
        json={**body, "name": f"invoice{RLO}fdp.exe"},
    )
    assert (refused.status_code, refused.get_json()["field"]) == (422, "name")
    assert "U+202E" in refused.get_json()["detail"]


def test_a_key_password_of_only_spaces_is_refused(api: ApiClient) -> None:
    issued = _issue(api, _intermediate(api, _root(api)))
    refused = api.call(
        "POST",
        f"/api/v1/certificates/{issued['id']}/download",
        json={"format": "pkcs12", "password": " " * 12},
    )
    assert (refused.status_code, refused.get_json()["field"]) == (422, "password")
    assert "only spaces" in refused.get_json()["detail"]
