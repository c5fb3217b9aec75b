"""Run the `pca` command line as a subprocess against a data directory, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def pca(data_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return pca_with(data_dir, {}, *args, check=check)


def pca_with(
    data_dir: Path, extra_env: dict[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``pca`` on ``data_dir`` with ``extra_env`` added to the environment."""
    env = {
        **os.environ,
        **extra_env,
        "PCA_DATA_DIR": str(data_dir),
        "PCA_PUBLIC_URL": "http://pca.test",
    }
    return subprocess.run(
        [sys.executable, "-m", "api.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        check=check,
        timeout=120,
    )


def pca_json(data_dir: Path, *args: str) -> dict[str, object]:
    result = json.loads(pca(data_dir, "--json", *args).stdout)
    assert isinstance(result, dict)
    return result
