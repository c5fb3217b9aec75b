"""The `pca` command line, run as a real subprocess against a real data directory."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from domain.adapters.settings import Settings, open_service
from tests.cli_runner import pca, pca_json, pca_with


@pytest.mark.slow
def test_quickstart_writes_a_chain_that_openssl_verifies(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = pca(tmp_path / "data", "quickstart", "--out", str(out))
    assert "revoked" in result.stdout
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", "root-ca.pem", "-untrusted", "chain.pem", "server.pem"],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.stdout.strip() == "server.pem: OK"
    info = subprocess.run(
        [
            "openssl",
            "pkcs12",
            "-in",
            "server.p12",
            "-info",
            "-noout",
            "-passin",
            "file:server.p12.password.txt",
        ],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    assert info.returncode == 0, info.stderr
    assert "AES-256-CBC" in info.stderr
    assert (out / "server.p12").stat().st_mode & 0o077 == 0


@pytest.mark.slow
def test_the_console_steps_work_one_command_at_a_time(tmp_path: Path) -> None:
    data = tmp_path / "data"
    root = pca_json(data, "ca", "create-root", "--cn", "CLI Root", "--country", "DE")
    assert root["status"] == "pending"
    pca(data, "ca", "enable", str(root["id"]))
    pca(data, "quota", "purchase", str(root["id"]), "--count", "5")
    intermediate = pca_json(
        data, "ca", "create-intermediate", "--parent", str(root["id"]), "--cn", "CLI Issuing"
    )
    pca(data, "ca", "enable", str(intermediate["id"]))
    pca(
        data,
        "quota",
        "assign",
        str(root["id"]),
        "--intermediate",
        str(intermediate["id"]),
        "--remaining",
        "2",
    )
    certificate = pca_json(
        data,
        "cert",
        "issue",
        str(intermediate["id"]),
        "--cn",
        "app.example.com",
        "--san",
        "dns:app.example.com",
        "--san",
        "ip:10.1.2.3",
        "--validity-days",
        "30",
    )
    assert certificate["sans"] == ["dns:app.example.com", "ip:10.1.2.3"]
    shown = pca_json(data, "ca", "show", str(intermediate["id"]))
    assert shown["quota"] == {"remaining": 1, "issued": 1}
    revoked = pca_json(data, "cert", "revoke", str(certificate["id"]), "--reason", "superseded")
    assert revoked["status"] == "revoked"
    pca(data, "cert", "delete", str(certificate["id"]))


def test_errors_say_what_to_change_and_exit_2(tmp_path: Path) -> None:
    result = pca(
        tmp_path / "data", "ca", "create-root", "--cn", "R", "--country", "Germany", check=False
    )
    assert result.returncode == 2
    assert "[subject.country]" in result.stderr
    assert "2-letter" in result.stderr
    assert result.stdout == ""


def test_rotating_the_master_key_keeps_the_cas_usable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    root = pca_json(data, "ca", "create-root", "--cn", "Rotating Root")
    pca(data, "ca", "enable", str(root["id"]))
    rotated = pca_json(data, "keys", "rotate-master")
    assert rotated["keys_re_encrypted"] == 1
    intermediate = pca_json(
        data, "ca", "create-intermediate", "--parent", str(root["id"]), "--cn", "After"
    )
    enabled = pca_json(data, "ca", "enable", str(intermediate["id"]))
    assert enabled["status"] == "enabled"


def test_lists_show_what_the_log_holds(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pca(data, "quickstart", "--out", str(tmp_path / "out"))
    cas = json.loads(pca(data, "--json", "ca", "list").stdout)
    intermediate = next(ca for ca in cas if ca["kind"] == "intermediate")
    assert intermediate["quota"] == {"remaining": 18, "issued": 2}
    listed = json.loads(pca(data, "--json", "cert", "list", intermediate["id"]).stdout)
    assert {item["status"] for item in listed} == {"issued", "revoked"}
    revoked = json.loads(
        pca(data, "--json", "cert", "list", intermediate["id"], "--status", "revoked").stdout
    )
    assert revoked["common_name"] == "quickstart-client"


def test_a_rebuild_reports_its_progress(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pca(data, "ca", "create-root", "--cn", "Rebuilt Root")
    result = pca(data, "projections", "rebuild")
    assert "events" in result.stderr
    assert "EVENTS_PROCESSED" in result.stdout


def test_operators_publish_and_inspect_crls(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pca(data, "quickstart", "--out", str(tmp_path / "out"))
    intermediate = next(
        ca
        for ca in json.loads(pca(data, "--json", "ca", "list").stdout)
        if ca["kind"] == "intermediate"
    )
    published = json.loads(pca(data, "--json", "crl", "publish", intermediate["id"]).stdout)
    assert [(item["kind"], item["entries"]) for item in published] == [("base", 1), ("delta", 0)]
    shown = json.loads(pca(data, "--json", "crl", "show", intermediate["id"]).stdout)
    base = next(item for item in shown if item["kind"] == "base")
    assert base["url"] == f"http://pca.test/crl/{intermediate['id']}.crl"
    again = json.loads(pca(data, "--json", "crl", "publish", intermediate["id"]).stdout)
    assert again[0]["number"] > base["number"]


def test_downloads_write_server_bundles_with_private_modes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pca(data, "quickstart", "--out", str(tmp_path / "out"))
    intermediate = next(
        ca
        for ca in json.loads(pca(data, "--json", "ca", "list").stdout)
        if ca["kind"] == "intermediate"
    )
    server = json.loads(
        pca(data, "--json", "cert", "list", intermediate["id"], "--type", "server").stdout
    )
    env_password = {"PCA_DOWNLOAD_PASSWORD": "a long passphrase"}
    written = json.loads(
        pca_with(
            data,
            env_password,
            "--json",
            "cert",
            "download",
            server["id"],
            "--format",
            "pkcs12",
            "--out",
            str(tmp_path / "dl"),
        ).stdout
    )
    target = Path(written["file"])
    assert target.suffix == ".p12"
    assert target.stat().st_mode & 0o077 == 0
    info = subprocess.run(
        [
            "openssl",
            "pkcs12",
            "-in",
            str(target),
            "-info",
            "-noout",
            "-passin",
            "pass:a long passphrase",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert info.returncode == 0, info.stderr
    refused = pca(
        data,
        "cert",
        "download",
        server["id"],
        "--format",
        "pkcs12",
        "--out",
        str(tmp_path / "dl"),
        check=False,
    )
    assert refused.returncode == 2
    assert "[PCA_DOWNLOAD_PASSWORD]" in refused.stderr  # CLI words, not the HTTP body's
    assert "Set it in PCA_DOWNLOAD_PASSWORD" in refused.stderr
    assert '"password"' not in refused.stderr


def test_a_token_can_be_made_with_a_lifetime(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = pca(data, "tokens", "create", "--role", "auditor", "--name", "ci", "--valid-days", "30")
    service = open_service(Settings(data_dir=data))
    try:
        record = service.authenticate(token.stdout.strip())
        assert record is not None
        assert record.expires_at is not None
        assert 29 <= (record.expires_at - dt.datetime.now(dt.UTC)).days <= 30
    finally:
        service.close()
        service.keystore.close()
    refused = pca(
        data,
        "tokens",
        "create",
        "--role",
        "auditor",
        "--name",
        "x",
        "--valid-days",
        "0",
        check=False,
    )
    assert refused.returncode == 2
    assert "valid_days must be 1 to 3650" in refused.stderr


def test_tokens_are_listed_with_their_status_and_never_the_secret(tmp_path: Path) -> None:
    data = tmp_path / "data"
    kept = pca(data, "tokens", "create", "--role", "admin", "--name", "alice").stdout.strip()
    gone = pca_json(data, "tokens", "create", "--role", "auditor", "--name", "old-ci")
    pca(data, "tokens", "revoke", str(gone["id"]))
    listed = pca(data, "--json", "tokens", "list").stdout
    rows = json.loads(listed)
    assert [(row["name"], row["role"], row["status"]) for row in rows] == [
        ("alice", "admin", "active"),
        ("old-ci", "auditor", "revoked"),
    ]
    assert kept not in listed
    assert str(gone["token"]) not in listed


def test_ca_list_pages_with_limit_and_cursor(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name in ("One", "Two", "Three"):
        pca(data, "ca", "create-root", "--cn", name)
    first = pca(data, "--json", "ca", "list", "--limit", "2")
    assert [ca["common_name"] for ca in json.loads(first.stdout)] == ["One", "Two"]
    cursor = first.stderr.split("more: --cursor ")[1].strip()
    rest = pca(data, "--json", "ca", "list", "--limit", "2", "--cursor", cursor)
    assert json.loads(rest.stdout)["common_name"] == "Three"
    assert "more:" not in rest.stderr


def test_a_mistyped_store_is_refused_not_made_a_new_deployment(settings: Settings) -> None:
    env: dict[str, str] = {}
    if settings.database_url is not None:
        env = {
            "PCA_DATABASE_URL": settings.database_url,
            "PCA_DATABASE_SCHEMA": str(settings.database_schema),  # empty: a typo's schema
        }
    typo = settings.data_dir.parent / "typo"
    for command in (
        ("ca", "list"),
        ("audit", "verify"),
        ("cert", "show", str(uuid.uuid4())),
        ("ocsp-serve", "--port", "9"),  # refused before it binds
    ):
        refused = pca_with(typo, env, *command, check=False)
        assert refused.returncode == 2, refused.stdout
        assert "There is no deployment here" in refused.stderr
        assert "to start a new deployment there, run `pca quickstart`" in refused.stderr
    assert not (typo / "events.db").exists()
    assert not (typo / "keys.db").exists()
    assert settings.holds_deployment() is False
    pca_with(typo, env, "ca", "create-root", "--cn", "Deliberate")  # a creating command
    assert pca_with(typo, env, "ca", "list").returncode == 0


def test_json_goes_before_or_after_the_subcommand_and_tables_stay_flat(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pca(data, "quickstart", "--out", str(tmp_path / "qs"))
    before = json.loads(pca(data, "--json", "ca", "list").stdout)
    after = json.loads(pca(data, "ca", "list", "--json").stdout)
    assert before == after
    table = pca(data, "ca", "list").stdout
    assert "{" not in table  # no Python dicts in cells
    assert "'" not in table
    assert "+00:00" not in table  # one time format: ISO 8601 with Z
    shown = pca(data, "ca", "show", after[0]["id"]).stdout
    assert "-----BEGIN" not in shown
