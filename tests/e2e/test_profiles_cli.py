"""`pca profile ...` and `pca cert issue --profile`, run as a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path

from domain.adapters.settings import Settings, open_service
from tests.builders import enabled_intermediate, enabled_root
from tests.cli_runner import pca, pca_json


def _intermediate(data: Path) -> str:
    service = open_service(Settings(data_dir=data, public_url="http://pca.test"))
    try:
        return str(enabled_intermediate(service, enabled_root(service, quota=5), remaining=5))
    finally:
        service.close()
        service.keystore.close()


def test_profiles_are_made_listed_and_obeyed_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ca_id = _intermediate(data)
    policy = tmp_path / "web.json"
    policy.write_text(json.dumps({"dns": {"allow": ["*.svc.example"]}, "default_validity_days": 7}))
    made = pca_json(data, "profile", "create", ca_id, "web", "--policy", str(policy))
    assert made["version"] == 1

    listed = pca(data, "--json", "profile", "list", ca_id).stdout
    assert [row["name"] for row in json.loads(listed)] == ["default", "web"]

    refused = pca(
        data, "cert", "issue", ca_id, "--cn", "db.corp.example", "--profile", "web", check=False
    )
    assert refused.returncode == 2
    assert '"db.corp.example" is outside the allowed DNS names of profile "web"' in refused.stderr

    issued = pca_json(data, "cert", "issue", ca_id, "--cn", "a.svc.example", "--profile", "web")
    assert (issued["profile"], issued["profile_version"]) == ("web", 1)
