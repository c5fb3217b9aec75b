"""The audit trail as reviewers use it over HTTP (the same from the command line:
tests/e2e/test_audit_cli.py)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from typing import Any

from domain.adapters.settings import Settings
from domain.model.tokens import Role
from tests.api_client import ApiClient

ROOT = {"kind": "root", "subject": {"common_name": "Audit Root"}, "included_certificates": 5}


def _history(api: ApiClient, query: str = "") -> dict[str, Any]:
    response = api.call("GET", f"/api/v1/events{query}", role=Role.AUDITOR)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def test_the_history_shows_who_did_what_in_log_order(api: ApiClient) -> None:
    created = api.call("POST", "/api/v1/cas", json=ROOT, headers={"X-Request-Id": "r-1"})
    root_id = created.get_json()["id"]
    api.call("POST", f"/api/v1/cas/{root_id}/enable", headers={"X-Request-Id": "r-2"})
    items = _history(api, f"?aggregate_id={root_id}")["items"]
    assert isinstance(items, list)
    assert [(item["type"], item["actor"], item["request_id"]) for item in items] == [
        ("CACreated", "test-admin (admin)", "r-1"),
        ("CAEnabled", "test-admin (admin)", "r-2"),
    ]
    positions = [item["position"] for item in items]
    assert positions == sorted(positions)
    assert all(len(item["chain_hash"]) == 64 for item in items)
    assert items[0]["payload"]["included_certificates"] == 5


def test_the_history_pages_and_filters_by_type(api: ApiClient) -> None:
    for _ in range(3):
        api.call("POST", "/api/v1/cas", json=ROOT)
    first = _history(api, "?type=CACreated&limit=2")
    assert [item["type"] for item in first["items"]] == ["CACreated"] * 2
    rest = _history(api, f"?type=CACreated&after={first['next_after']}")
    assert len(rest["items"]) == 1
    unknown = api.call("GET", "/api/v1/events?type=Nope", role=Role.AUDITOR)
    assert (unknown.status_code, unknown.get_json()["field"]) == (422, "type")


def test_verify_reports_a_clean_chain_then_the_altered_position(api: ApiClient) -> None:
    api.call("POST", "/api/v1/cas", json=ROOT)
    clean = api.call("GET", "/api/v1/audit/verify", role=Role.AUDITOR).get_json()
    assert clean["ok"] is True
    settings: Settings = api.app.extensions["pca"].settings
    if settings.uses_postgres:
        return  # direct tampering on PostgreSQL is covered in tests/integration/test_audit_chain.py
    with sqlite3.connect(settings.data_dir / "events.db") as connection:
        connection.execute("UPDATE stored_events SET state = CAST('{}' AS BLOB) WHERE rowid = 2")
    tampered = api.call("GET", "/api/v1/audit/verify", role=Role.AUDITOR).get_json()
    assert (tampered["ok"], tampered["first_bad_position"]) == (False, 2)


def test_checkpoints_are_signed_and_exported(api: ApiClient) -> None:
    api.call("POST", "/api/v1/cas", json=ROOT)
    made = api.call("POST", "/api/v1/audit/checkpoints", role=Role.ADMIN)
    assert made.status_code == 201
    exported = api.call("GET", "/api/v1/audit/checkpoints", role=Role.AUDITOR).get_json()
    assert exported["items"][-1]["position"] == made.get_json()["position"]
    assert exported["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert api.call("POST", "/api/v1/audit/checkpoints", role=Role.AUDITOR).status_code == 403


def test_state_at_a_position_and_reports_with_their_manifest(api: ApiClient) -> None:
    root = api.call("POST", "/api/v1/cas", json=ROOT).get_json()["id"]
    api.call("POST", f"/api/v1/cas/{root}/enable")
    cut = api.call("GET", "/api/v1/audit/state", role=Role.AUDITOR)
    position = cut.headers["X-Report-Position"]
    api.call("POST", f"/api/v1/cas/{root}/disable")
    earlier = api.call("GET", f"/api/v1/audit/state?at={position}", role=Role.AUDITOR)
    assert earlier.data == cut.data
    assert json.loads(earlier.data)["cas"][0]["status"] == "enabled"
    body = api.call("GET", f"/api/v1/reports/activity?format=csv&at={position}", role=Role.AUDITOR)
    assert body.status_code == 200
    assert body.headers["X-Report-Position"] == position
    manifest = api.call(
        "GET", f"/api/v1/reports/activity/manifest?format=csv&at={position}", role=Role.AUDITOR
    ).get_json()
    assert manifest["sha256"] == hashlib.sha256(body.data).hexdigest()
    again = api.call("GET", f"/api/v1/reports/activity?format=csv&at={position}", role=Role.AUDITOR)
    assert again.data == body.data
    # Each kind is an operation of its own, so an unknown one is no resource at all.
    auditor = {"Authorization": f"Bearer {api.tokens[Role.AUDITOR]}"}
    unknown = api.client.get("/api/v1/reports/nonsense", headers=auditor)
    assert (unknown.status_code, unknown.mimetype) == (404, "application/problem+json")


def test_a_private_key_download_is_recorded_as_an_export_and_a_public_one_is_not(
    api: ApiClient,
) -> None:
    root_id = api.call("POST", "/api/v1/cas", json=ROOT).get_json()["id"]
    api.call("POST", f"/api/v1/cas/{root_id}/enable")
    intermediate = {"kind": "intermediate", "parent_id": root_id, "subject": {"common_name": "I"}}
    ca_id = api.call("POST", "/api/v1/cas", json=intermediate).get_json()["id"]
    api.call("POST", f"/api/v1/cas/{ca_id}/enable")
    api.call(
        "POST",
        f"/api/v1/cas/{root_id}/quota/assignments",
        json={"intermediate_id": ca_id, "remaining": 1},
    )
    issued = api.call(
        "POST",
        f"/api/v1/cas/{ca_id}/certificates",
        role=Role.OPERATOR,
        json={"type": "server", "common_name": "www.example.com", "validity_days": 30},
    ).get_json()
    download = f"/api/v1/certificates/{issued['id']}/download"

    public = api.call("POST", download, role=Role.OPERATOR, json={"format": "pem"})
    refused = api.call("POST", download, role=Role.OPERATOR, json={"format": "pkcs12"})
    keyed = api.call(
        "POST",
        download,
        role=Role.OPERATOR,
        json={"format": "pkcs12", "password": "correct horse battery"},
        headers={"X-Request-Id": "export-1"},
    )
    assert (public.status_code, refused.status_code, keyed.status_code) == (200, 422, 200)
    exports = _history(api, "?type=PrivateKeyExported")["items"]
    assert [(e["actor"], e["request_id"], e["payload"]["format"]) for e in exports] == [
        ("test-operator (operator)", "export-1", "pkcs12")
    ]
    assert exports[0]["payload"]["serial_number"] == issued["serial_number"]
    assert keyed.headers["X-Log-Position"] == str(exports[0]["position"])
    activity = api.call("GET", "/api/v1/reports/activity?format=csv", role=Role.AUDITOR)
    assert "PrivateKeyExported" in activity.get_data(as_text=True)
