"""Compliance exports: each kind's rows against a known history, on SQLite and PostgreSQL;
CSV that spreadsheets open safely; reproducible bytes; manifests checked with openssl."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from cryptography import x509

from domain.adapters.settings import Settings
from domain.application.commands import CertificateRequest
from domain.application.service import PrivateCA
from domain.audit.checkpoints import audit_public_key
from domain.model.errors import ConflictError, NotFoundError, ValidationError
from domain.model.tokens import Role
from domain.model.values import (
    SAN,
    CertificateType,
    KeyAlgorithm,
    RequestContext,
    RevocationReason,
    SANType,
    Subject,
)
from projections.audit.report_formats import neutralise
from projections.audit.reports import (
    ReportFormat,
    ReportKind,
    ReportManifest,
    ReportParameters,
    open_report,
    parse_format,
    parse_kind,
    parse_parameters,
    verify_manifest,
    write_report,
)
from tests.builders import (
    ADMIN,
    enabled_intermediate,
    enabled_root,
    issue,
    server_request,
)
from tests.conftest import SettableClock
from tests.projection_helpers import History, write_history

Rows = list[dict[str, Any]]


def report(
    settings: Settings,
    kind: ReportKind,
    parameters: ReportParameters | None = None,
    fmt: ReportFormat = ReportFormat.JSON,
) -> tuple[bytes, ReportManifest]:
    out = io.BytesIO()
    manifest = write_report(settings, kind, fmt, parameters or ReportParameters(), out)
    return out.getvalue(), manifest


def rows(settings: Settings, kind: ReportKind, parameters: ReportParameters | None = None) -> Rows:
    body, manifest = report(settings, kind, parameters)
    parsed: Rows = json.loads(body)
    assert manifest.row_count == len(parsed)
    return parsed


def csv_rows(
    settings: Settings, kind: ReportKind, parameters: ReportParameters | None = None
) -> list[dict[str, str]]:
    body, _ = report(settings, kind, parameters, ReportFormat.CSV)
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


def by_id(table: Rows, key: str = "certificate_id") -> dict[UUID, dict[str, Any]]:
    return {UUID(row[key]): row for row in table}


@pytest.fixture
def history(service: PrivateCA) -> History:
    return write_history(service)


# --- each kind against a known history ----------------------------------------------------


def test_inventory_lists_every_certificate_with_its_status_at_the_cut(
    service: PrivateCA, settings: Settings, history: History
) -> None:
    inventory = by_id(rows(settings, ReportKind.INVENTORY))

    assert len(inventory) == 7  # three servers, a client, revoked, deleted, legacy
    statuses = {row["status"] for i, row in inventory.items() if i in history.server_ids}
    assert statuses == {"issued"}
    revoked = inventory[history.revoked_id]
    assert (revoked["status"], revoked["revocation_reason"]) == ("revoked", "key_compromise")
    assert revoked["revoked_by"] == ADMIN.actor
    deleted = inventory[history.deleted_id]
    assert (deleted["status"], deleted["deleted_by"]) == ("deleted", ADMIN.actor)
    assert deleted["revocation_reason"] == "superseded"
    client = inventory[history.client_id]
    certificate = service.get_certificate(history.client_id)
    expected_subject = x509.load_der_x509_certificate(certificate.certificate_der).subject
    assert client["subject"] == expected_subject.rfc4514_string()
    assert client["issuer_id"] == str(history.issuing_id)
    assert client["issuer_common_name"] == "Example Issuing CA"
    assert client["serial_number"] == certificate.serial_number
    assert client["sans"] == ["email:dev@example.com"]
    assert (client["type"], client["key_algorithm"]) == ("client", "EC_P256")
    assert client["not_after"] == certificate.not_after.isoformat().replace("+00:00", "Z")
    assert (client["requested_by"], client["request_id"]) == ("bob (operator)", "req-operator")
    assert client["issued_at"] is not None
    assert client["revoked_at"] is None


def test_csv_and_json_carry_the_same_rows(settings: Settings, history: History) -> None:
    for kind in ReportKind:
        from_json = rows(settings, kind)
        from_csv = csv_rows(settings, kind)
        assert len(from_csv) == len(from_json)
        for json_row, csv_row in zip(from_json, from_csv, strict=True):
            assert list(csv_row) == list(json_row)
            assert csv_row == {key: _as_csv(value) for key, value in json_row.items()}


def _as_csv(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(value)
    return str(value)


def test_issuance_keeps_certificates_issued_in_the_period(
    settings: Settings, history: History
) -> None:
    inventory = rows(settings, ReportKind.INVENTORY)
    times = [dt.datetime.fromisoformat(row["issued_at"]) for row in inventory]
    start, end = times[1], times[4]

    issued = rows(settings, ReportKind.ISSUANCE, ReportParameters(start=start, end=end))

    assert [row["certificate_id"] for row in issued] == [
        row["certificate_id"] for row in inventory[1:4]
    ]


def test_revocations_list_certificates_and_intermediates_in_log_order(
    settings: Settings, history: History
) -> None:
    revocations = rows(settings, ReportKind.REVOCATIONS)

    assert [(row["kind"], UUID(row["id"])) for row in revocations] == [
        ("certificate", history.revoked_id),
        ("certificate", history.deleted_id),
        ("intermediate_ca", history.retired_id),
    ]
    assert [row["position"] for row in revocations] == sorted(r["position"] for r in revocations)
    retired = revocations[2]
    assert (retired["issuer_id"], retired["reason"]) == (str(history.root_id), "ca_compromise")
    assert revocations[1]["deleted_at"] is not None
    assert revocations[0]["subject"] == "CN=old.example.com,O=Example Corp"


def test_revocations_in_a_period(
    service: PrivateCA, settings: Settings, clock: SettableClock
) -> None:
    root_id = enabled_root(service, quota=10)
    ca_id = enabled_intermediate(service, root_id, remaining=5)
    first, second = (issue(service, ca_id).certificate.id for _ in range(2))
    service.revoke_certificate(ADMIN, first, RevocationReason.UNSPECIFIED)
    clock.advance(days=2)
    service.revoke_certificate(ADMIN, second, RevocationReason.SUPERSEDED)

    later = ReportParameters(start=clock.now - dt.timedelta(days=1))
    earlier = ReportParameters(end=clock.now - dt.timedelta(days=1))

    assert [row["id"] for row in rows(settings, ReportKind.REVOCATIONS, later)] == [str(second)]
    assert [row["id"] for row in rows(settings, ReportKind.REVOCATIONS, earlier)] == [str(first)]


def test_expiring_keeps_valid_certificates_ending_within_the_days(
    service: PrivateCA, settings: Settings, clock: SettableClock
) -> None:
    root_id = enabled_root(service, quota=10)
    ca_id = enabled_intermediate(service, root_id, remaining=5)
    soon, later, far, gone = (
        issue(
            service, ca_id, server_request(f"d{days}.example.com", validity_days=days)
        ).certificate.id
        for days in (10, 40, 100, 11)
    )
    service.revoke_certificate(ADMIN, gone, RevocationReason.SUPERSEDED)

    def expiring(days: int, at: dt.datetime | None = None) -> list[UUID]:
        table = rows(settings, ReportKind.EXPIRING, ReportParameters(at=at, days=days))
        return [UUID(row["certificate_id"]) for row in table]

    assert expiring(30) == [soon]
    assert rows(settings, ReportKind.EXPIRING) == rows(
        settings, ReportKind.EXPIRING, ReportParameters(days=30)
    )
    assert expiring(60) == [soon, later]
    assert expiring(365) == [soon, later, far]
    # Judged at a later cut: the 10-day certificate has expired by then.
    assert expiring(60, at=dt.datetime.now(dt.UTC) + dt.timedelta(days=20)) == [later]


def test_quota_ledger_has_every_movement_with_running_balances(
    settings: Settings, history: History
) -> None:
    ledger = rows(settings, ReportKind.QUOTA_LEDGER)

    root = [row for row in ledger if row["ca_id"] == str(history.root_id)]
    assert [(row["entry"], row["change"]) for row in root] == [
        ("opening", 0),
        ("purchase", 50),
        ("assignment", -20),
        ("assignment", -5),
        ("purchase", 10),
    ]
    assert (root[-1]["total"], root[-1]["assigned"], root[-1]["available"]) == (60, 25, 35)
    issuing = [row for row in ledger if row["ca_id"] == str(history.issuing_id)]
    assert [row["entry"] for row in issuing] == ["opening", "receipt"] + ["consumption"] * 6
    assert (issuing[1]["change"], issuing[1]["counterpart_id"]) == (20, str(history.root_id))
    assert [row["remaining"] for row in issuing[1:]] == list(range(20, 13, -1))
    assert (issuing[-1]["remaining"], issuing[-1]["issued"]) == (14, 6)
    assert issuing[-1]["serial_number"] is not None
    assert all(row["total"] is None for row in issuing)
    assert [row["position"] for row in ledger] == sorted(row["position"] for row in ledger)


def test_activity_lists_every_event_without_key_material(
    service: PrivateCA, settings: Settings, history: History
) -> None:
    token, _ = service.create_token(ADMIN, "ci-bot", Role.OPERATOR)

    body, manifest = report(settings, ReportKind.ACTIVITY, fmt=ReportFormat.CSV)
    activity = rows(settings, ReportKind.ACTIVITY)

    assert [row["position"] for row in activity] == list(range(1, manifest.at_position + 1))
    assert {row["actor"] for row in activity} == {ADMIN.actor, "bob (operator)"}
    created = activity[-1]
    assert (created["event"], created["aggregate_type"]) == ("TokenCreated", "ApiToken")
    assert created["detail"] == "name=ci-bot role=operator"
    revoked = next(row for row in activity if row["event"] == "CertificateRevoked")
    assert (revoked["ca_id"], revoked["detail"].split()[0]) == (
        str(history.issuing_id),
        "reason=key_compromise",
    )
    assert revoked["serial_number"] == service.get_certificate(history.revoked_id).serial_number
    der = service.get_certificate(history.client_id).certificate_der
    text = body.decode("utf-8")
    for secret in (base64.b64encode(der).decode()[:40], der.hex()[:40], token, "key_id"):
        assert secret not in text
    assert hashlib.sha256(token.encode()).hexdigest() not in text


def test_ca_id_narrows_every_kind_to_a_ca_and_its_intermediates(
    service: PrivateCA, settings: Settings, history: History
) -> None:
    other_root = enabled_root(service, quota=2)
    other_ca = enabled_intermediate(service, other_root, remaining=1)
    issue(service, other_ca, server_request("other.example.com"))
    by_root = ReportParameters(ca_id=history.root_id)
    by_retired = ReportParameters(ca_id=history.retired_id)

    assert len(rows(settings, ReportKind.INVENTORY)) == 8
    assert len(rows(settings, ReportKind.INVENTORY, by_root)) == 7
    assert [r["common_name"] for r in rows(settings, ReportKind.INVENTORY, by_retired)] == [
        "legacy.example.com"
    ]
    assert [r["kind"] for r in rows(settings, ReportKind.REVOCATIONS, by_retired)] == [
        "intermediate_ca"
    ]
    ledger_cas = {r["ca_id"] for r in rows(settings, ReportKind.QUOTA_LEDGER, by_root)}
    assert ledger_cas == {str(history.root_id), str(history.issuing_id), str(history.retired_id)}
    activity = rows(settings, ReportKind.ACTIVITY, by_retired)
    assert {r["ca_id"] for r in activity} == {str(history.retired_id)}
    assert "CertificateIssued" in {r["event"] for r in activity}


# --- safe CSV -----------------------------------------------------------------------------


def test_csv_cells_that_could_start_a_formula_are_neutralised(
    service: PrivateCA, settings: Settings
) -> None:
    root_id = enabled_root(service, quota=5)
    ca_id = enabled_intermediate(service, root_id, remaining=2)
    request = CertificateRequest(
        type=CertificateType.CLIENT,
        subject=Subject("=1+2", organization="+SUM(A1)", locality="@cmd"),
        validity_days=30,
        sans=(SAN(SANType.EMAIL, "x@example.com"),),
        key_algorithm=KeyAlgorithm.EC_P256,
        name="-2+3",
    )
    evil = RequestContext(actor='=HYPERLINK("http://evil.example")', request_id="@req")
    service.issue_certificate(evil, ca_id, request)

    (row,) = csv_rows(settings, ReportKind.INVENTORY)

    assert row["common_name"] == "'=1+2"
    assert row["name"] == "'-2+3"
    assert row["requested_by"] == '\'=HYPERLINK("http://evil.example")'
    assert row["request_id"] == "'@req"
    assert row["subject"] == "CN==1\\+2,O=\\+SUM(A1),L=@cmd"  # starts with C: safe as it is
    ledger = csv_rows(settings, ReportKind.QUOTA_LEDGER)
    assert ledger[-1]["change"] == "-1"  # numbers the service writes stay numbers


@pytest.mark.parametrize("text", ["=1", "+1", "-1", "@x", "\tx", "\rx", "\nx"])
def test_every_formula_start_gets_a_quote(text: str) -> None:
    assert neutralise(text) == "'" + text
    assert neutralise("a" + text) == "a" + text


# --- reproducible, signed -----------------------------------------------------------------


def test_the_same_cut_gives_the_same_bytes_even_after_more_events(
    service: PrivateCA, settings: Settings, history: History
) -> None:
    fixed = ReportParameters(at=history.last_position)
    first = {
        (kind, fmt): report(settings, kind, fixed, fmt)
        for kind in ReportKind
        for fmt in ReportFormat
    }
    again = {key: report(settings, key[0], fixed, key[1]) for key in first}
    issue(service, history.issuing_id, server_request("after.example.com"))
    service.revoke_certificate(ADMIN, history.client_id, RevocationReason.SUPERSEDED)
    later = {key: report(settings, key[0], fixed, key[1]) for key in first}

    assert again == first
    assert later == first
    moving, _ = report(settings, ReportKind.INVENTORY)
    assert moving != first[(ReportKind.INVENTORY, ReportFormat.JSON)][0]


def test_the_manifest_describes_the_body_and_verifies_with_openssl(
    service: PrivateCA, settings: Settings, history: History, tmp_path: Path
) -> None:
    body, manifest = report(settings, ReportKind.INVENTORY, fmt=ReportFormat.CSV)
    (tmp_path / "report.csv").write_bytes(body)
    published = manifest.to_json()
    (tmp_path / "message").write_text(published["message"])
    (tmp_path / "signature").write_bytes(base64.b64decode(published["signature"]))
    (tmp_path / "audit.pem").write_text(published["public_key_pem"])

    assert manifest.at_position == history.last_position
    assert (manifest.row_count, manifest.generated_from) == (7, "event log")
    assert manifest.sha256 == hashlib.sha256(body).hexdigest()
    assert f"sha256={manifest.sha256}\n" in published["message"]
    assert f"at_position={history.last_position}\n" in published["message"]
    assert _openssl_sha256(tmp_path / "report.csv") == manifest.sha256
    assert _openssl_verify(tmp_path).returncode == 0
    assert verify_manifest(manifest, manifest.sha256)
    assert verify_manifest(manifest, manifest.sha256, audit_public_key(service.keystore))

    (tmp_path / "message").write_text(published["message"].replace("row_count=7", "row_count=6"))
    assert _openssl_verify(tmp_path).returncode != 0
    assert not verify_manifest(manifest, hashlib.sha256(body + b"x").hexdigest())


def _openssl_sha256(path: Path) -> str:
    done = subprocess.run(
        ["openssl", "dgst", "-sha256", "-r", str(path)], capture_output=True, text=True, check=True
    )
    return done.stdout.split()[0]


def _openssl_verify(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            str(directory / "audit.pem"),
            "-rawin",
            "-in",
            str(directory / "message"),
            "-sigfile",
            str(directory / "signature"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_report_streams_in_chunks_and_signs_at_the_end(
    service: PrivateCA, settings: Settings, history: History
) -> None:
    with open_report(settings, ReportKind.ACTIVITY, ReportFormat.CSV, ReportParameters()) as stream:
        with pytest.raises(RuntimeError):
            _ = stream.manifest
        chunks: Iterator[bytes] = iter(stream)
        body = b"".join(chunks)

    assert stream.filename == f"pca-activity-at-{history.last_position}.csv"
    assert stream.media_type == "text/csv; charset=utf-8"
    assert stream.manifest.sha256 == hashlib.sha256(body).hexdigest()


def test_an_empty_report_is_still_valid(service: PrivateCA, settings: Settings) -> None:
    enabled_root(service, quota=1)

    body, manifest = report(settings, ReportKind.INVENTORY)

    assert json.loads(body) == []
    assert manifest.row_count == 0


# --- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "parameters", "field"),
    [
        (ReportKind.INVENTORY, ReportParameters(days=10), "days"),
        (ReportKind.EXPIRING, ReportParameters(days=0), "days"),
        (
            ReportKind.INVENTORY,
            ReportParameters(start=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)),
            "from",
        ),
        (ReportKind.EXPIRING, ReportParameters(end=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)), "to"),
    ],
    ids=[
        "days-on-inventory",
        "zero-days",
        "from-on-inventory",
        "to-on-expiring",
    ],
)
def test_parameters_that_do_not_fit_are_refused_before_the_first_byte(
    service: PrivateCA,
    settings: Settings,
    kind: ReportKind,
    parameters: ReportParameters,
    field: str,
) -> None:
    enabled_root(service, quota=1)

    with pytest.raises(ValidationError) as raised:
        open_report(settings, kind, ReportFormat.CSV, parameters)

    assert raised.value.field == field


def test_a_ca_unknown_at_the_cut_is_not_found(service: PrivateCA, settings: Settings) -> None:
    enabled_root(service, quota=1)

    with pytest.raises(NotFoundError) as raised:
        open_report(
            settings, ReportKind.INVENTORY, ReportFormat.CSV, ReportParameters(ca_id=uuid4())
        )

    assert raised.value.field == "ca_id"


def test_a_period_that_ends_before_it_starts_is_empty(
    service: PrivateCA, settings: Settings
) -> None:
    """[from, to) with to not after from holds no moment: an empty report, not an error."""
    enabled_root(service, quota=1)
    backwards = ReportParameters(
        start=dt.datetime(2999, 1, 2, tzinfo=dt.UTC), end=dt.datetime(1999, 1, 1, tzinfo=dt.UTC)
    )

    rows = csv_rows(settings, ReportKind.ACTIVITY, backwards)

    assert rows == []


def test_a_cut_past_the_end_of_the_log_is_refused_as_a_conflict(
    service: PrivateCA, settings: Settings
) -> None:
    enabled_root(service, quota=1)

    with pytest.raises(ConflictError) as raised:
        open_report(settings, ReportKind.INVENTORY, ReportFormat.CSV, ReportParameters(at=10_000))

    assert raised.value.field == "at"


def test_parameters_parse_from_text() -> None:
    parsed = parse_parameters(
        at="12", start="2025-01-01T00:00:00Z", end="2025-02-01T00:00:00+01:00", days="7"
    )
    assert parsed == ReportParameters(
        at=12,
        start=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        end=dt.datetime(2025, 1, 31, 23, tzinfo=dt.UTC),
        days=7,
    )
    assert parse_kind("quota-ledger") is ReportKind.QUOTA_LEDGER
    assert parse_format("csv") is ReportFormat.CSV
    for call, field in (
        (lambda: parse_parameters(at="soon"), "at"),
        (lambda: parse_parameters(start="2025-01-01"), "from"),
        (lambda: parse_parameters(end="tomorrow"), "to"),
        (lambda: parse_parameters(ca_id="nope"), "ca_id"),
        (lambda: parse_parameters(days="-3"), "days"),
        (lambda: parse_kind("everything"), "kind"),
        (lambda: parse_format("xml"), "format"),
    ):
        with pytest.raises(ValidationError) as raised:
            call()
        assert raised.value.field == field
