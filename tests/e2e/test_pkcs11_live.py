"""CA keys in a PKCS#11 token behind a real `pca serve`: enabled over HTTP and from the
CLI, used by every worker, found again by a restarted server."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Any

from domain.adapters.pkcs11 import TokenSettings
from domain.adapters.settings import Settings
from tests.live import LiveServer


def test_a_token_hierarchy_issues_before_and_after_a_restart(
    sqlite_settings: Settings, token: TokenSettings, tmp_path: Path
) -> None:
    settings = dataclasses.replace(sqlite_settings, pkcs11=token)
    with LiveServer(settings) as live:
        admin = live.pca("tokens", "create", "--role", "admin", "--name", "hsm-admin").strip()
        root = _create(live, admin, {"kind": "root", "subject": {"common_name": "HSM Root"}})
        enabled = live.json("POST", f"/api/v1/cas/{root}/enable", admin, {"key_storage": "pkcs11"})
        assert enabled["key_storage"] == "pkcs11"
        live.json("POST", f"/api/v1/cas/{root}/quota/purchases", admin, {"count": 5})
        issuing = _create(
            live,
            admin,
            {"kind": "intermediate", "parent_id": root, "subject": {"common_name": "HSM Issuing"}},
        )
        assert "pkcs11" in live.pca("ca", "enable", issuing, "--key-storage", "pkcs11")
        assignment = {"intermediate_id": issuing, "remaining": 5}
        live.json("POST", f"/api/v1/cas/{root}/quota/assignments", admin, assignment)
        before = _issue(live, admin, issuing, "before.example.com")
        chain = [live.request("GET", f"/ca/{ca}.crt")[2] for ca in (root, issuing)]

    with LiveServer(settings) as restarted:
        after = _issue(restarted, admin, issuing, "after.example.com")
        assert restarted.json("GET", f"/api/v1/cas/{issuing}", admin)["key_storage"] == "pkcs11"

    (tmp_path / "root.der").write_bytes(chain[0])
    (tmp_path / "issuing.der").write_bytes(chain[1])
    for name, certificate in (("before", before), ("after", after)):
        (tmp_path / f"{name}.pem").write_text(certificate["certificate_pem"])
        verdict = _openssl_verify(tmp_path, f"{name}.pem")
        assert f"{name}.pem: OK" in verdict


def _create(live: LiveServer, admin: str, body: dict[str, Any]) -> str:
    created: str = live.json("POST", "/api/v1/cas", admin, body)["id"]
    return created


def _issue(live: LiveServer, token: str, ca_id: str, name: str) -> Any:
    body = {
        "type": "server",
        "common_name": name,
        "validity_days": 30,
        "sans": [{"type": "dns", "value": name}],
        "key_algorithm": "EC_P256",
    }
    return live.json("POST", f"/api/v1/cas/{ca_id}/certificates", token, body)


def _openssl_verify(directory: Path, leaf: str) -> str:
    for name in ("root", "issuing"):
        subprocess.run(
            ["openssl", "x509", "-inform", "DER", "-in", f"{name}.der", "-out", f"{name}.pem"],
            cwd=directory,
            check=True,
        )
    done = subprocess.run(
        ["openssl", "verify", "-CAfile", "root.pem", "-untrusted", "issuing.pem", leaf],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout + done.stderr
