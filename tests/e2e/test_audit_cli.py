"""The audit and report commands of `pca`, run as subprocesses."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from domain.adapters.settings import Settings
from tests.cli_runner import pca, pca_with
from tests.integration.test_audit_chain import RawStore


def test_the_audit_commands_show_history_and_verify(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pca(data, "ca", "create-root", "--cn", "CLI Audit Root")
    events = json.loads(pca(data, "--json", "audit", "events").stdout)
    assert events["type"] == "CACreated"
    assert events["actor"].endswith("(cli)")
    verified = json.loads(pca(data, "--json", "audit", "verify").stdout)
    assert verified["ok"] is True
    pca(data, "audit", "checkpoint")
    exported = json.loads(pca(data, "--json", "audit", "checkpoints").stdout)
    assert exported["algorithm"] == "Ed25519"


def test_pca_report_writes_the_export_and_its_manifest(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pca(data, "quickstart", "--out", str(tmp_path / "qs"))
    out = tmp_path / "inventory.csv"
    written = json.loads(pca(data, "--json", "report", "inventory", "--out", str(out)).stdout)
    assert written["rows"] == 2
    manifest = json.loads((tmp_path / "inventory.csv.manifest.json").read_text())
    assert manifest["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    state = json.loads(pca(data, "audit", "replay").stdout)
    assert len(state["cas"]) == 2


def test_a_forged_log_fails_verify_and_refuses_commands(settings: Settings) -> None:
    env: dict[str, str] = {}
    if settings.database_url is not None:
        env = {
            "PCA_DATABASE_URL": settings.database_url,
            "PCA_DATABASE_SCHEMA": str(settings.database_schema),
        }
    data = settings.data_dir
    root = json.loads(pca_with(data, env, "--json", "ca", "create-root", "--cn", "Root").stdout)
    pca_with(data, env, "ca", "enable", root["id"])
    pca_with(data, env, "quota", "purchase", root["id"], "--count", "100")
    raw = RawStore(settings)
    rows = raw.run("SELECT {id} FROM {events} WHERE topic LIKE %s", ("%QuotaPurchased",))
    position = rows[0][0]
    raw.set_state(position, raw.state(position).replace(b'"count":100', b'"count":900'))
    positions = raw.positions()

    for flags in ((), ("--json",)):
        verified = pca_with(data, env, *flags, "audit", "verify", check=False)
        assert verified.returncode == 1, verified.stderr
        assert f"broken at position {position} (altered)" in verified.stderr
    assert json.loads(verified.stdout)["first_bad_position"] == position
    refused = pca_with(data, env, "quota", "purchase", root["id"], "--count", "1", check=False)
    assert refused.returncode == 2
    assert f"audit chain at position {position}" in refused.stderr
    assert "Restore the deployment from a backup" in refused.stderr
    assert pca_with(data, env, "ca", "list").returncode == 0
    assert raw.positions() == positions  # the refused command recorded nothing
