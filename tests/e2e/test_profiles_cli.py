"""`pca profile ...` and `pca cert issue --profile`, run as a real subprocess."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

from domain.adapters.settings import Settings, open_service
from domain.application.service import PrivateCA
from tests.builders import enabled_intermediate, enabled_root
from tests.cli_runner import pca, pca_json


def _made(data: Path, make: Callable[[PrivateCA], UUID]) -> str:
    """The id of what ``make`` sets up in ``data``, made in process (the CLI under test
    is what comes after)."""
    service = open_service(Settings(data_dir=data, public_url="http://pca.test"))
    try:
        return str(make(service))
    finally:
        service.close()
        service.keystore.close()


def test_profiles_are_made_listed_and_obeyed_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ca_id = _made(data, lambda s: enabled_intermediate(s, enabled_root(s, quota=5), remaining=5))
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

    scoped = ("--role", "operator", "--name", "team-web", "--ca", ca_id, "--profile", "web")
    pca(data, "tokens", "create", *scoped)
    token = pca_json(data, "tokens", "list")  # the only token: one row, one object
    assert (token["cas"], token["profiles"]) == ([ca_id], ["web"])


def test_an_intermediate_made_with_name_constraints_shows_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    root_id = _made(data, lambda s: enabled_root(s, quota=2))
    create = ("ca", "create-intermediate", "--parent", root_id, "--cn", "Constrained")
    made = pca_json(data, *create, "--permit", "dns:svc.example", "--exclude", "ip:10.0.0.0/8")
    assert made["name_constraints"] == {
        "permitted": [{"type": "dns", "value": "svc.example"}],
        "excluded": [{"type": "ip", "value": "10.0.0.0/8"}],
    }
