"""`pca backup` and `pca restore` run as subprocesses, as an operator would."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from domain.adapters.masterkeys import MASTER_KEYS_FILE
from tests.cli_runner import pca, pca_json


@pytest.mark.slow
def test_pca_backup_and_restore_from_the_command_line(tmp_path: Path) -> None:
    source, restored = tmp_path / "source", tmp_path / "restored"
    pca(source, "quickstart", "--out", str(tmp_path / "quickstart"))
    backup = tmp_path / "pca.backup"

    written = pca_json(source, "backup", str(backup))
    restored.mkdir(mode=0o700)
    shutil.copy2(source / MASTER_KEYS_FILE, restored / MASTER_KEYS_FILE)
    result = pca_json(restored, "restore", str(backup))
    again = pca(restored, "restore", str(backup), check=False)

    assert backup.stat().st_mode & 0o777 == 0o600
    assert result["head_position"] == written["head_position"]
    assert result["audit_chain_ok"] is True
    assert pca_json(restored, "audit", "verify")["ok"] is True
    assert pca(restored, "ca", "list").stdout == pca(source, "ca", "list").stdout
    assert again.returncode == 2
    assert "is not empty" in again.stderr
    assert "Nothing was changed" in again.stderr
