"""The import contracts in pyproject.toml catch what they promise to catch.

Each case copies the three packages and pyproject.toml into a temporary directory, plants one
forbidden import in the copy and runs `lint-imports` there: the contract fails, naming itself
and the planted line, while on the untouched copy it holds. scripts/test runs `lint-imports`
on the repository itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
PACKAGES = ("domain", "projections", "api")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


@dataclass(frozen=True)
class Plant:
    """``line`` appended to ``path`` (relative to the copy) breaks contract ``contract``."""

    contract: str
    path: str
    line: str
    chain: str  # how lint-imports reports the planted import

    def __str__(self) -> str:
        return self.contract


PLANTS = [
    Plant("domain-inward", "domain/model/__init__.py", "import api", "domain.model -> api"),
    Plant(
        "model-alone",
        "domain/model/__init__.py",
        "import domain.pki",
        "domain.model -> domain.pki",
    ),
    Plant(
        "io-in-adapters",
        "domain/application/__init__.py",
        "import sqlite3",
        "domain.application -> sqlite3",
    ),
    Plant(
        "pki-on-model",
        "domain/pki/__init__.py",
        "import domain.audit",
        "domain.pki -> domain.audit",
    ),
    Plant(
        "projections-below-api",
        "projections/__init__.py",
        "import api.presenters",
        "projections -> api.presenters",
    ),
    Plant("faces-independent", "api/cli/__init__.py", "import api.http", "api.cli -> api.http"),
    Plant(
        "shared-api-below-faces",
        "api/presenters.py",
        "import api.cli",
        "api.presenters -> api.cli",
    ),
]


def contract_names() -> dict[str, str]:
    """Contract id -> name, as configured in pyproject.toml."""
    config = tomllib.loads((REPOSITORY / "pyproject.toml").read_text())
    contracts = config["tool"]["importlinter"]["contracts"]
    return {contract["id"]: contract["name"] for contract in contracts}


def copy_project(target: Path) -> Path:
    """The packages and the configuration, without caches, in ``target``."""
    for package in PACKAGES:
        shutil.copytree(
            REPOSITORY / package, target / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPOSITORY / "pyproject.toml", target / "pyproject.toml")
    return target


def lint_imports(directory: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    """`lint-imports` in ``directory`` (which it puts first on the import path)."""
    selected = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache", *selected],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    copy = copy_project(tmp_path_factory.mktemp("clean"))
    return lint_imports(copy, *(plant.contract for plant in PLANTS))


def test_every_configured_contract_has_a_plant() -> None:
    assert {plant.contract for plant in PLANTS} == set(contract_names())


@pytest.mark.parametrize("plant", PLANTS, ids=str)
def test_the_untouched_copy_keeps_the_contract(
    plant: Plant, clean_run: subprocess.CompletedProcess[str]
) -> None:
    assert clean_run.returncode == 0, clean_run.stdout + clean_run.stderr
    assert f"{contract_names()[plant.contract]} KEPT" in clean_run.stdout


@pytest.mark.parametrize("plant", PLANTS, ids=str)
def test_a_planted_import_breaks_the_contract_naming_it_and_the_line(
    plant: Plant, tmp_path: Path
) -> None:
    copy = copy_project(tmp_path)
    module = copy / plant.path
    lines = module.read_text().splitlines()
    module.write_text("\n".join([*lines, plant.line]) + "\n")

    result = lint_imports(copy, plant.contract)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{contract_names()[plant.contract]} BROKEN" in result.stdout
    assert f"{plant.chain} (l.{len(lines) + 1})" in result.stdout
