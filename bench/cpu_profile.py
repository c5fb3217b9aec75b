"""Where one HTTP issuance spends its CPU in `pca serve` (issue 18), sampled with py-spy.

    python -m bench.cpu_profile [--checkout DIR] [--seconds 10] [--clients 4]
                                [--label after] [--update-docs]

Starts `pca serve --workers 1` on SQLite with the set-up of bench/http_issuance.py (an
enabled P-256 root and intermediate, no per-token limit), warms it up, then drives
``POST /api/v1/cas/{id}/certificates`` with wrk at ``--clients`` keep-alive clients for
``--seconds`` while ``py-spy record --format raw --rate 500 --subprocesses --nonblocking``
samples every Python thread of the server. ``--checkout`` runs the server (and its `pca`
commands) from another checkout, e.g. a worktree at an older commit, so before and after
are measured by the same harness.

The CPU per request is the utime + stime of the server's processes over the run (from
/proc/PID/stat, every thread) divided by the answered requests, split by the shares of
the running py-spy samples: a sample goes to the category of its innermost frame that
matches one (``RULES``); a sample of a thread with no Python frame is the HTTP server's
native code (a server's threads between two calls into the app). py-spy leaves idle
threads out, but ``--nonblocking`` still catches some threads blocked in a wait (a
condition, a queue, select, fdatasync): those samples (``WAITS``) are counted apart and
take no share. Samples do not weigh CPU exactly: a thread that is runnable but waits
for a CPU (the machine is shared) or for the GIL may still be sampled as running, and
the kernel's side of waits (futex calls, context switches) and native threads that
never run Python (a server's I/O loop) are spread by share with the rest.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import loadgen, report
from bench.http_issuance import EC, RATE_LIMIT_ENV, pca
from domain.adapters.settings import Settings

RATE = 500
TICKS = os.sysconf("SC_CLK_TCK")
NATIVE = "HTTP server: native code (a Python thread with no Python frame)"
WAITING = "waiting: locks, queues, select, fdatasync"
# Innermost frames of a thread that is blocked, not running: py-spy's --nonblocking mode
# samples them all the same. They take no share of the CPU (the kernel's side of a wait,
# futex calls and fdatasync included, is spread over the running samples).
WAITS = re.compile(
    r"^(Condition\.wait|Event\.wait|_worker) \((threading|concurrent/futures/thread)\.py"
    r"|^\w+Selector\.select |sleep|^FifoListener\._listen "
    r"|^SQLiteConnection\.commit |^SQLiteKeyStore\._transaction \(.*:107\)"
)
# (category, pattern over "function (file)"): the innermost frame that matches decides.
RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("read-model thread", r"[(/]projections/readmodels/(worker|projection|writer|view)"),
        ("CRL publisher, checkpoints", r"projections/revocation/publisher|audit/checkpoints"),
        ("logging, access log", r"[(/]logging/|glogging|wsgi_middleware.py:\d+ \((_add|_line|_e)"),
        ("metrics", r"prometheus_client|api/http/metrics"),
        ("JSON", r"[(/]json/|jsonschema|api/http/schema|api/http/bodies"),
        ("key generation", r"generate_private_key|private_bytes|keystore.*seal|_new_key"),
        ("signing", r"domain/pki/signing|x509/base.py:\d+ \(sign\)"),
        ("X.509 build", r"domain/pki/(x509|der)|cryptography/x509"),
        ("storage: SQLite, key store", r"eventsourcing/(sqlite|postgres)|psycopg|adapters/"),
        ("eventsourcing (Python)", r"eventsourcing/"),
        ("HTTP server", r"^LimitedStream\.readinto "),  # Werkzeug reading the server's body
        ("Flask, Werkzeug", r"[(/](flask|werkzeug)/"),
        ("HTTP server", r"[(/](gunicorn|granian)/|wsgi_middleware|socketserver|[(/]selectors"),
        ("threads, locks, queues", r"[(/](threading|queue).py|concurrent/futures"),
        ("pca: rules, views, audit chain", r"[(/](domain|api|projections)/"),
    )
)


@dataclass(frozen=True)
class Profile:
    """What one run measured: requests answered, server CPU seconds, samples by category."""

    requests: int
    seconds: float
    cpu: float
    samples: Counter[str]

    def table(self) -> list[str]:
        """µs of CPU per request by category: the server's CPU split by the shares of
        the running samples (waits left out)."""
        waiting = self.samples[WAITING]
        running = sum(self.samples.values()) - waiting or 1
        per_request = self.cpu * 1e6 / max(self.requests, 1)
        lines = ["| category | µs CPU per request | share of running samples |", "|---|---:|---:|"]
        lines += [
            f"| {name} | {count / running * per_request:,.0f} | {count / running:.1%} |"
            for name, count in self.samples.most_common()
            if name != WAITING
        ]
        return [
            *lines,
            f"| **all (from /proc)** | **{per_request:,.0f}** | {running:,} samples |",
            f"| {WAITING} (left out) | - | {waiting:,} samples |",
        ]


def category(stack: list[str]) -> str:
    """The category of the innermost frame of ``stack`` (outermost first) that has one."""
    stack = [frame for frame in stack if not frame.startswith(("process ", "thread "))]
    if not stack:
        return NATIVE
    if WAITS.search(stack[-1]):
        return WAITING
    for frame in reversed(stack):
        for name, pattern in RULES:
            if pattern.search(frame):
                return name
    return "other"


def read_samples(raw: Path) -> Counter[str]:
    """py-spy's raw output (``frame;frame;... count`` per line), counted by category."""
    counts: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[category(stack.split(";"))] += int(count)
    return counts


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            for child in task.read_text().split():
                found += _tree(int(child))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of every thread of ``pids`` so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


@contextlib.contextmanager
def sampling(pid: int, output: Path) -> Iterator[None]:
    """py-spy recording ``pid`` and its children into ``output`` until the block ends."""
    spy = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        [
            loadgen.executable("py-spy"),
            "record",
            "--format",
            "raw",
            "--rate",
            str(RATE),
            "--subprocesses",
            "--nonblocking",
            "--pid",
            str(pid),
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(2)  # attached to every process before the load starts
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        _, errors = spy.communicate(timeout=60)
        if not output.exists():
            raise RuntimeError(f"py-spy wrote nothing: {errors.decode(errors='replace')}")


def profile(settings: Settings, seconds: int, clients: int, raw: Path) -> Profile:
    with pca(settings, workers=1) as ours:
        target = ours.target(EC)
        loadgen.wrk(target, clients, 2, "warm")
        pids = _tree(ours.live.process.pid)
        with sampling(ours.live.process.pid, raw):
            before = cpu_seconds(pids)
            run = loadgen.wrk(target, clients, seconds, "profile")
            spent = cpu_seconds(pids) - before
    return Profile(run.succeeded, run.seconds, spent, read_samples(raw))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=Path.cwd(), help="run this code")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw stacks in this file")
    parser.add_argument("--label", default="after", help="the docs block: before or after")
    parser.add_argument("--update-docs", action="store_true", help=f"rewrite {report.DOCS}")
    return parser.parse_args()


def main() -> None:
    for tool in ("wrk", "py-spy"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on the PATH (py-spy comes with the dev extra)")
    args = parse_args()
    os.environ[RATE_LIMIT_ENV] = "0"
    checkout = args.checkout.resolve()
    args.raw = args.raw.resolve() if args.raw else None
    report.run_from(checkout)
    with tempfile.TemporaryDirectory() as name:
        settings = Settings(data_dir=Path(name) / "data")
        raw = args.raw or Path(name) / "pyspy.txt"
        result = profile(settings, args.seconds, args.clients, raw)
    text = "\n".join(
        [
            f"Command: `python -m bench.cpu_profile {' '.join(sys.argv[1:])}`.",
            f"Server code: {report.commit(checkout)}. Machine: {report.machine()}.",
            f"{result.requests:,} issuances answered in {result.seconds:.1f} s "
            f"({result.requests / result.seconds:,.0f} req/s with py-spy attached) at "
            f"{args.clients} clients; server CPU {result.cpu:.2f} s.",
            "",
            *result.table(),
        ]
    )
    print(text, flush=True)
    if args.update_docs:
        report.update_docs(f"cpu_profile_{args.label}", text)


if __name__ == "__main__":
    main()
