"""What the issue-7 benchmarks print around their numbers: the machine, the commit, and
the generated block of docs/BENCHMARKS.md they can rewrite in place.

A benchmark's numbers mean little without the machine and the code they came from, and
the lead re-runs the benchmarks after each optimisation: ``--update-docs`` replaces only
the text between a benchmark's markers, so the hand-written method and reading around it
stay as they are.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The sample below which ``fraction`` of ``samples`` lie (nearest rank)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def machine(extra: Sequence[str] = ()) -> str:
    """One line: CPUs, memory, kernel and the versions that matter, plus ``extra``."""
    parts = [
        f"{os.cpu_count()} CPUs ({cpu_model()}), {memory_gib():.0f} GiB RAM, "
        f"Linux {platform.release()}",
        f"Python {sys.version.split()[0]}",
        f"cryptography {version('cryptography')}",
        f"eventsourcing {version('eventsourcing')}",
        f"SQLite {sqlite3.sqlite_version}",
        *extra,
    ]
    return "; ".join(parts)


def load_average() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def commit(root: Path = DOCS.parent.parent) -> str:
    """The commit checked out in ``root`` (this one by default), marked when the working
    tree differs from it."""

    def git(*args: str) -> str:
        return subprocess.run(  # noqa: S603 - fixed argv, no shell
            ["git", "-C", str(root), *args],  # noqa: S607 - git from PATH
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return (
        f"{head} + uncommitted changes"
        if git("status", "--porcelain", "--untracked-files=no")
        else head
    )


def run_from(checkout: Path) -> None:
    """Make the `pca` processes started from now on (servers and commands) run the code of
    ``checkout``, e.g. a worktree at an older commit, so one harness measures both."""
    os.environ["PYTHONPATH"] = str(checkout)
    os.chdir(checkout)  # `python -m` puts the working directory first on sys.path


def update_docs(marker: str, text: str, docs: Path = DOCS) -> None:
    """Replace what lies between ``<!-- marker:begin -->`` and ``<!-- marker:end -->``."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    content = docs.read_text()
    if begin not in content or end not in content:
        raise SystemExit(f"{docs} has no {begin} ... {end} block to update")
    head, rest = content.split(begin, 1)
    tail = rest.split(end, 1)[1]
    docs.write_text(f"{head}{begin}\n{text.strip()}\n{end}{tail}")
    print(f"updated the {marker} block of {docs}", flush=True)
