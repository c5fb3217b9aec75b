"""The README's HTTP quickstart, run as pasted into a new shell (on a free port), and what
it leaves behind checked against .gitignore."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _quickstart_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart over HTTP", 1)[1]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_readme_quickstart_runs_as_pasted(tmp_path: Path) -> None:
    block = _quickstart_block().replace("8080", str(_free_port()))
    assert block.startswith('export PATH="$PWD/.venv/bin:$PATH"')
    assert "curl -sf -H" not in block  # errors show the service's problem, not just a code
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("PCA_", "VIRTUAL"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # as .venv/bin at the root
    ran = subprocess.run(
        ["bash", "-c", "set -e -o pipefail\n" + block],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr + (tmp_path / "serve.log").read_text()
    assert "localhost.pem: OK" in ran.stdout
    assert "Serial Number" in ran.stdout
    left = sorted(path.name + ("/" if path.is_dir() else "") for path in tmp_path.iterdir())
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *left],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert ignored == left, f"not in .gitignore: {sorted(set(left) - set(ignored))}"


def test_pca_quickstart_says_where_it_records_and_writes(tmp_path: Path) -> None:
    env = {**os.environ, "PCA_DATA_DIR": str(tmp_path / "data")}
    ran = subprocess.run(
        [sys.executable, "-m", "api.cli.main", "quickstart", "--out", "qs"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    first = ran.stderr.splitlines()[0]
    assert f"recording into {tmp_path / 'data'} (PCA_DATA_DIR)" in first
    assert f"writing files into {tmp_path / 'qs'}" in first
