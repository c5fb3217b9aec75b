"""Secrets where a separate process is involved: a fresh `pca serve` keeps its files private
and its log free of tokens, and a pytest run whose log shows a secret fails."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from api.http.headers import SECURITY_HEADERS
from domain.adapters.settings import Settings
from domain.model.tokens import new_token, token_fingerprint
from tests.conftest import (
    TOKEN_PATTERN,
)
from tests.live import LiveServer


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


REPOSITORY = Path(__file__).resolve().parents[2]


def test_a_secret_in_the_log_fails_the_run_with_a_message_naming_the_source(
    tmp_path: Path,
) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text('pytest_plugins = ["tests.conftest"]\n')
    (suite / "test_leaky.py").write_text(
        "import logging\n"
        "from domain.model.tokens import new_token\n\n"
        "def test_logs_a_token():\n"
        '    logging.getLogger("api.leaky").warning("issued with %s", new_token())\n\n'
        "def test_logs_nothing_secret():\n"
        '    logging.getLogger("api.leaky").warning("nothing to see")\n'
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(tmp_path / "temp"),
            str(suite),
        ],
        cwd=suite,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout + run.stderr
    assert "2 passed" in run.stdout
    assert "SECRETS IN LOG OUTPUT: 1 log source(s); the run fails" in run.stdout
    assert "logger api.leaky in test_leaky.py::test_logs_a_token: an API token" in run.stdout
    assert TOKEN_PATTERN.search(run.stdout + run.stderr) is None


@pytest.mark.slow
def test_a_fresh_pca_serve_keeps_its_files_private_and_no_token_in_its_log(
    sqlite_settings: Settings,
) -> None:
    """Under a umask that would let anyone read them, the server's files stay the owner's."""
    with LiveServer(sqlite_settings, workers=1, umask=0) as live:
        admin = live.pca("tokens", "create", "--role", "admin", "--name", "ops").strip()
        root = live.json(
            "POST", "/api/v1/cas", admin, {"kind": "root", "subject": {"common_name": "Private"}}
        )
        live.json("POST", f"/api/v1/cas/{root['id']}/enable", admin)
        assert live.request("GET", "/metrics", admin)[0] == 200
        wrong = new_token()
        status, headers, _ = live.request("GET", "/api/v1/cas", wrong)
        assert status == 401
        assert {name: headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS
    data_dir = sqlite_settings.data_dir
    assert _mode(data_dir) == 0o700
    for name in ("events.db", "master.keys"):  # the key store is a table of events.db
        assert _mode(data_dir / name) == 0o600, name
    assert [path for path in data_dir.rglob("*") if _mode(path) & 0o077] == []
    log = live.log.read_text()
    assert f"rejected token {token_fingerprint(wrong)} from 127.0.0.1" in log
    assert TOKEN_PATTERN.search(log) is None
