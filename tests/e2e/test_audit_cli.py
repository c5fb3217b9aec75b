"""The audit and report commands of `pca`, run as subprocesses."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.cli_runner import pca


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
