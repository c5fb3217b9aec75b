"""A real `pca serve` on 127.0.0.1, for end-to-end tests over real HTTP.

Every server's log and the stderr of every `pca` command run next to it are kept in files
listed in ``LOG_FILES``, and every password sent to a server in ``SENT_PASSWORDS``: the
suite searches those logs for secrets when it ends (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from email.message import Message
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from domain.adapters.settings import API_ONLY_ENV, Settings
from tests.softhsm import token_env

LOG_FILES: list[Path] = []
SENT_PASSWORDS: set[str] = set()


class AnswerHeaders(Mapping[str, str]):
    """An answer's headers, found by name in any letter case, as HTTP defines them
    (`pca serve`'s server sends them in lower case, as HTTP/2 always does)."""

    def __init__(self, message: Message) -> None:
        self._by_name = {name.lower(): value for name, value in message.items()}

    def __getitem__(self, name: str) -> str:
        return self._by_name[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def settings_env(settings: Settings, port: int) -> dict[str, str]:
    """The environment that makes a `pca` process use ``settings``."""
    env = {
        **os.environ,
        "PCA_DATA_DIR": str(settings.data_dir),
        "PCA_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    if settings.database_url:
        env["PCA_DATABASE_URL"] = settings.database_url
        env["PCA_DATABASE_SCHEMA"] = settings.database_schema
    if settings.master_key:
        env["PCA_MASTER_KEY"] = settings.master_key
    if settings.api_only:
        env[API_ONLY_ENV] = "1"
    if settings.pkcs11:
        env.update(token_env(settings.pkcs11, settings.data_dir.parent / "token.pin"))
    return env


def run_pca(env: dict[str, str], log_file: Path, *args: str) -> str:
    """Run a `pca` command with ``env``; its stdout. Its stderr goes to ``log_file``, which
    the suite's secret scan reads."""
    done = subprocess.run(
        [sys.executable, "-m", "api.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    with log_file.open("a") as log:
        log.write(done.stderr)
    done.check_returncode()
    return done.stdout


class LiveServer:
    """`pca serve` in a subprocess, with helpers to call it as a REST client would."""

    def __init__(
        self, settings: Settings, workers: int = 2, umask: int = -1, command: str = "serve"
    ) -> None:
        """Start the server; ``umask`` (default: inherited) is the one it runs under;
        ``command`` may be ``ocsp-serve``, the dedicated OCSP responder."""
        self.port = free_port()
        self.env = settings_env(settings, self.port)
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = Path(settings.data_dir.parent / f"{command}-{self.port}.log")
        self.command_log = self.log.with_name(f"pca-{self.port}.log")
        LOG_FILES.extend((self.log, self.command_log))
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli.main",
                command,
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            env=self.env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            umask=umask,
        )
        self._wait_until_up(command)

    def _wait_until_up(self, command: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.base}/healthz", timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"pca {command} did not start:\n{self.log.read_text()[-3000:]}")

    def pca(self, *args: str) -> str:
        """Run a `pca` command against the same storage; its stdout (its stderr is logged)."""
        return run_pca(self.env, self.command_log, *args)

    def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: object = None,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
    ) -> tuple[int, AnswerHeaders, bytes]:
        """One HTTP request with a JSON ``body`` or raw ``data``; the status, headers and
        raw body (errors included)."""
        all_headers = dict(headers or {})
        password = body.get("password") if isinstance(body, dict) else None
        # a password of spaces only is refused, never used; watching for it would find
        # every indented line of every log
        if isinstance(password, str) and password.strip():
            SENT_PASSWORDS.add(password)
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(self.base + path, data, all_headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, AnswerHeaders(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, AnswerHeaders(error.headers), error.read()

    def json(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: object = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        status, _, raw = self.request(method, path, token, body, headers)
        assert status < 300, (status, raw[:500])
        return json.loads(raw)

    def hierarchy(
        self, admin: str, name: str, quota: int, remaining: int | None = None
    ) -> tuple[str, str]:
        """An enabled "<name> Root" with ``quota`` bought and an enabled "<name> Issuing"
        under it with ``remaining`` (default: all of it) assigned; their ids."""
        root = self.json(
            "POST",
            "/api/v1/cas",
            admin,
            {"kind": "root", "subject": {"common_name": f"{name} Root"}},
        )["id"]
        self.json("POST", f"/api/v1/cas/{root}/enable", admin)
        self.json("POST", f"/api/v1/cas/{root}/quota/purchases", admin, {"count": quota})
        issuing_subject = {"common_name": f"{name} Issuing"}
        issuing = self.json(
            "POST",
            "/api/v1/cas",
            admin,
            {"kind": "intermediate", "parent_id": root, "subject": issuing_subject},
        )["id"]
        self.json("POST", f"/api/v1/cas/{issuing}/enable", admin)
        assignment = {
            "intermediate_id": issuing,
            "remaining": quota if remaining is None else remaining,
        }
        self.json("POST", f"/api/v1/cas/{root}/quota/assignments", admin, assignment)
        return root, issuing

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
