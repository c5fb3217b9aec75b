"""Every face makes the same application call, so every face records the same events.

HTTP (the Flask test client), the `pca` command line (a real subprocess) and `pca
quickstart` each ran their own copy of some use cases, and drifted: only HTTP recorded a
private key leaving as ``PrivateKeyExported``, and a root made from the CLI got a tenth of
the service period HTTP gives. These tests read the event log each face leaves behind.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import DomainEvent

from api.http.app import create_app
from domain.adapters.settings import Settings, open_service
from domain.application.service import PrivateCA
from domain.model.publication import Publication
from domain.model.tokens import ApiToken, Role
from projections.audit.history import MAX_LIMIT, HistoryFilter, HistoryItem, read_history
from tests.api_client import ApiClient
from tests.builders import enabled_intermediate, enabled_root

PUBLIC_URL = "http://pca.test"
PASSWORD = "faces agree on exports"
EXPORTED = "PrivateKeyExported"
# What differs between two runs of the same request: ids (also inside key ids), times,
# DER bytes (base64) and random serial numbers.
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
_SERIAL = re.compile(r"^[0-9a-f]{32,}$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]{64,}={0,2}$")
_NOT_ASKED = {
    name
    for aggregate in (ApiToken, Publication)
    for name, kind in vars(aggregate).items()
    if isinstance(kind, type) and issubclass(kind, DomainEvent)
}


def test_a_key_download_over_http_is_recorded_before_it_is_handed_over(
    http: ApiClient,
) -> None:
    certificate_id = _http_hierarchy_with_certificate(http)
    download = f"/api/v1/certificates/{certificate_id}/download"
    public = http.call("POST", download, role=Role.OPERATOR, json={"format": "pem"})
    refused = http.call("POST", download, role=Role.OPERATOR, json={"format": "pkcs12"})
    keyed = http.call(
        "POST", download, role=Role.OPERATOR, json={"format": "pkcs12", "password": PASSWORD}
    )
    assert (public.status_code, refused.status_code, keyed.status_code) == (200, 422, 200)
    (export,) = _exports(_events(http.app.extensions["pca"].service))
    assert (str(export.aggregate_id), export.payload["format"]) == (certificate_id, "pkcs12")
    assert export.actor == "test-operator (operator)"
    assert keyed.headers["X-Log-Position"] == str(export.position)
    assert "X-Log-Position" not in public.headers


def test_a_key_download_from_the_cli_is_recorded(tmp_path: Path) -> None:
    data = tmp_path / "data"
    certificate_id = _cli_hierarchy_with_certificate(data)
    out = str(tmp_path / "download")
    _pca(data, "cert", "download", certificate_id, "--format", "pem", "--out", out)
    refused = _pca(data, "cert", "download", certificate_id, "--format", "pkcs12", "--out", out)
    assert refused.returncode == 2
    written = _pca_json(
        data,
        "cert",
        "download",
        certificate_id,
        "--format",
        "pkcs12",
        "--out",
        out,
        env={"PCA_DOWNLOAD_PASSWORD": PASSWORD},
    )
    assert Path(str(written["file"])).stat().st_mode & 0o077 == 0
    with _opened(data) as service:
        (export,) = _exports(_events(service))
    assert (str(export.aggregate_id), export.payload["format"]) == (certificate_id, "pkcs12")
    assert export.actor.endswith("(cli)")


def test_quickstart_records_the_export_of_the_server_key_it_writes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _pca(data, "quickstart", "--out", str(tmp_path / "out"))
    assert (tmp_path / "out" / "server.p12").exists()
    with _opened(data) as service:
        events = _events(service)
    (export,) = _exports(events)
    issued = {
        item.aggregate_id: item.payload for item in events if item.type == "CertificateIssued"
    }
    assert issued[export.aggregate_id]["name"] == "localhost"
    assert export.payload["format"] == "pkcs12"


def test_http_and_the_cli_record_the_same_events_with_the_same_defaults(
    http: ApiClient, tmp_path: Path
) -> None:
    """Root, enable, quota, intermediate, enable, assign, issue: every value the request
    leaves out is filled in the same way, e.g. a root's 3650-day service period."""
    _http_hierarchy_with_certificate(http)
    data = tmp_path / "data"
    _cli_hierarchy_with_certificate(data)
    with _opened(data) as service:
        from_cli = _comparable(_events(service))
    from_http = _comparable(_events(http.app.extensions["pca"].service))
    assert from_http == from_cli
    root = next(payload for kind, payload in from_cli if kind == "CACreated")
    assert (root["kind"], root["service_days"], root["validity_years"]) == ("root", 3650, 20)


def test_the_cli_asks_for_a_certificate_validity_as_http_does(http: ApiClient) -> None:
    """Neither face requires a validity itself (a profile may give a default): both ask
    the same application call, which names validity_days when none applies."""
    service: PrivateCA = http.app.extensions["pca"].service
    ca_id = str(enabled_intermediate(service, enabled_root(service)))
    body = {"type": "server", "common_name": "x.example"}
    over_http = http.call(
        "POST", f"/api/v1/cas/{ca_id}/certificates", role=Role.OPERATOR, json=body
    )
    from_cli = _pca(
        Path(http.app.extensions["pca"].settings.data_dir),
        "cert",
        "issue",
        ca_id,
        "--cn",
        "x.example",
    )
    assert (over_http.status_code, over_http.get_json()["field"]) == (422, "validity_days")
    assert from_cli.returncode == 2
    assert f"[validity_days]: {over_http.get_json()['detail']}" in from_cli.stderr


# --- the same requests through each face -------------------------------------------------


def _http_hierarchy_with_certificate(http: ApiClient) -> str:
    """The certificate id; the requests leave every optional value out."""
    root = _created(http, {"kind": "root", "subject": {"common_name": "Root"}})
    http.call("POST", f"/api/v1/cas/{root}/enable")
    http.call("POST", f"/api/v1/cas/{root}/quota/purchases", json={"count": 5})
    intermediate = _created(
        http, {"kind": "intermediate", "parent_id": root, "subject": {"common_name": "Issuing"}}
    )
    http.call("POST", f"/api/v1/cas/{intermediate}/enable")
    http.call(
        "POST",
        f"/api/v1/cas/{root}/quota/assignments",
        json={"intermediate_id": intermediate, "remaining": 2},
    )
    issued = http.call(
        "POST",
        f"/api/v1/cas/{intermediate}/certificates",
        role=Role.OPERATOR,
        json={"type": "server", "common_name": "www.example.com", "validity_days": 30},
    )
    assert issued.status_code == 201
    return str(issued.get_json()["id"])


def _created(http: ApiClient, body: dict[str, Any]) -> str:
    response = http.call("POST", "/api/v1/cas", json=body)
    assert response.status_code == 201
    return str(response.get_json()["id"])


def _cli_hierarchy_with_certificate(data: Path) -> str:
    """The same requests as _http_hierarchy_with_certificate, as `pca` commands."""
    root = str(_pca_json(data, "ca", "create-root", "--cn", "Root")["id"])
    _pca_json(data, "ca", "enable", root)
    _pca_json(data, "quota", "purchase", root, "--count", "5")
    intermediate = str(
        _pca_json(data, "ca", "create-intermediate", "--parent", root, "--cn", "Issuing")["id"]
    )
    _pca_json(data, "ca", "enable", intermediate)
    _pca_json(data, "quota", "assign", root, "--intermediate", intermediate, "--remaining", "2")
    issued = _pca_json(
        data,
        "cert",
        "issue",
        intermediate,
        "--type",
        "server",
        "--cn",
        "www.example.com",
        "--validity-days",
        "30",
    )
    return str(issued["id"])


# --- helpers -------------------------------------------------------------------------------


@pytest.fixture
def http(tmp_path: Path) -> Iterator[ApiClient]:
    """The HTTP API on SQLite, with a token per role."""
    app = create_app(Settings(data_dir=tmp_path / "http", public_url=PUBLIC_URL))
    yield ApiClient(app)
    app.extensions["pca"].close()


def _pca(
    data: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "PCA_DATA_DIR": str(data), "PCA_PUBLIC_URL": PUBLIC_URL},
        check=False,
        timeout=120,
    )


def _pca_json(data: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    result = _pca(data, "--json", *args, env=env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    found = rows[-1] if isinstance(rows, list) else rows
    assert isinstance(found, dict)
    return found


@contextmanager
def _opened(data: Path) -> Iterator[PrivateCA]:
    service = open_service(Settings(data_dir=data, public_url=PUBLIC_URL))
    try:
        yield service
    finally:
        service.close()
        service.keystore.close()


def _events(service: PrivateCA) -> list[HistoryItem]:
    return list(read_history(service, 0, MAX_LIMIT, HistoryFilter()).items)


def _exports(events: list[HistoryItem]) -> list[HistoryItem]:
    return [item for item in events if item.type == EXPORTED]


def _comparable(events: list[HistoryItem]) -> list[tuple[str, Any]]:
    """Event types with payloads masked of what differs between runs. Left out: the API
    tokens only the HTTP test client makes, and the CRLs the HTTP app's background
    publisher records while the requests run."""
    return [(item.type, _masked(item.payload)) for item in events if item.type not in _NOT_ASKED]


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _masked(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_masked(inner) for inner in value]
    if isinstance(value, str):
        return _masked_text(value)
    return value


def _masked_text(value: str) -> str:
    for pattern, mask in ((_TIME, "<time>"), (_SERIAL, "<serial>"), (_BASE64, "<der>")):
        if pattern.match(value):
            return mask
    return _UUID.sub("<id>", value)
