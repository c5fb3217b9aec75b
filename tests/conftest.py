"""Fixtures shared by the suite: real SQLite and a throwaway PostgreSQL, a settable clock.

And a watch on secrets: every log record of the run, and the logs of the `pca serve`
processes it starts, are searched for API tokens, PEM private keys, master keys and
download passwords when the run ends; a find fails the run (see ``SecretWatch``).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from flask import Flask

from api.http.app import create_app
from domain.adapters.masterkeys import MASTER_KEYS_FILE, MasterKeyring
from domain.adapters.pkcs11 import TokenSettings
from domain.adapters.settings import Settings, open_service
from domain.application.service import PrivateCA
from domain.model.tokens import TOKEN_PREFIX
from domain.pki.formats import DownloadOptions
from tests.api_client import ApiClient
from tests.live import LOG_FILES, SENT_PASSWORDS
from tests.pgserver import PostgresServer, create_schema, drop_schema
from tests.softhsm import init_token

PUBLIC_URL = "http://pca.test:8080"
STORES = ("sqlite", "postgres")


class SettableClock:
    """A clock the test moves by hand; starts at a fixed, recent instant."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer | None]:
    """The PostgreSQL server the run started; None when PCA_TEST_POSTGRES_URL names one."""
    if os.environ.get("PCA_TEST_POSTGRES_URL"):
        yield None
        return
    with PostgresServer.start(tmp_path_factory.mktemp("postgres")) as server:
        _watch_password(server.url)
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer | None) -> str:
    """A PostgreSQL server for the whole run: PCA_TEST_POSTGRES_URL, or one we start.
    Its password joins the secrets the run's logs must never show."""
    if postgres_server is not None:
        return postgres_server.url
    given = os.environ["PCA_TEST_POSTGRES_URL"]
    _watch_password(given)
    return given


def _watch_password(url: str) -> None:
    password = urlsplit(url).password
    if password:
        WATCH.secrets.add(unquote(password))


@pytest.fixture(scope="session")
def token(tmp_path_factory: pytest.TempPathFactory) -> TokenSettings:
    """The run's SoftHSM2 token (one per process, see tests/softhsm.py); its PIN is
    watched for in every log."""
    made = init_token(tmp_path_factory.mktemp("softhsm"))
    WATCH.secrets.add(made.pin)
    return made


@pytest.fixture
def pg_schema(postgres_url: str) -> Iterator[str]:
    """A fresh, empty schema, dropped after the test."""
    schema = create_schema(postgres_url)
    yield schema
    drop_schema(postgres_url, schema)


def make_settings(store: str, request: pytest.FixtureRequest, data_dir: Path) -> Settings:
    """Settings for ``store`` ("sqlite" or "postgres") with a private data directory."""
    if store == "sqlite":
        return Settings(data_dir=data_dir, public_url=PUBLIC_URL)
    return Settings(
        data_dir=data_dir,
        public_url=PUBLIC_URL,
        database_url=request.getfixturevalue("postgres_url"),
        database_schema=request.getfixturevalue("pg_schema"),
    )


@pytest.fixture(params=STORES)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The same test body runs against SQLite and against PostgreSQL."""
    return make_settings(str(request.param), request, tmp_path / "data")


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", public_url=PUBLIC_URL)


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def service(settings: Settings, clock: SettableClock) -> Iterator[PrivateCA]:
    app = open_service(settings, clock=clock)
    yield app
    app.close()
    app.keystore.close()


@pytest.fixture
def app(settings: Settings, clock: SettableClock) -> Iterator[Flask]:
    """The Flask app on the parametrised store."""
    flask_app = create_app(settings, clock=clock)
    yield flask_app
    flask_app.extensions["pca"].close()


@pytest.fixture
def api(app: Flask) -> ApiClient:
    """A client with a token per role that validates responses against /openapi.json."""
    return ApiClient(app)


@pytest.fixture
def sqlite_api(sqlite_settings: Settings, clock: SettableClock) -> Iterator[ApiClient]:
    """``api`` on SQLite only: for checks that do not depend on the store (policy rules,
    real clients reading what was issued), where running them twice only costs time."""
    flask_app = create_app(sqlite_settings, clock=clock)
    yield ApiClient(flask_app)
    flask_app.extensions["pca"].close()


# --- Secrets in log output ------------------------------------------------------------------

TOKEN_PATTERN = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]{40,}")
PRIVATE_KEY_MARKER = "PRIVATE KEY-----"
MIN_SECRET_LENGTH = 8  # the shortest download password the service accepts
OUR_LOGGERS = ("api", "domain", "projections")


class LogCapture(logging.Handler):
    """Keeps the text of every record it handles, and which logger and test it came from."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[tuple[str, str]] = []
        self.test = "collection"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append((f"logger {record.name} in {self.test}", self.format(record)))
        except Exception:  # a handler reports its own failures through handleError
            self.handleError(record)


def find_leaks(sources: Iterable[tuple[str, str]], secrets: Iterable[str]) -> list[str]:
    """One line per (source, text) that shows a secret, naming the source and the kind of
    secret, never the secret: API tokens by their format, PEM private keys by their marker,
    and ``secrets`` (passwords, master keys) as given."""
    texts = list(sources)
    everything = "\n".join(text for _, text in texts)
    # One pass over all the text per secret: thousands of keys, rarely any of them shown.
    shown = [s for s in set(secrets) if len(s) >= MIN_SECRET_LENGTH and s in everything]
    findings = []
    for source, text in texts:
        kinds = [
            kind
            for kind, found in (
                ("an API token", TOKEN_PATTERN.search(text) is not None),
                ("a PEM private key", PRIVATE_KEY_MARKER in text),
                ("a password or master key", any(secret in text for secret in shown)),
            )
            if found
        ]
        if kinds:
            findings.append(f"{source}: {' and '.join(kinds)}")
    return findings


def service_code() -> str:
    """The text of every module of the service (domain, projections, api)."""
    repository = Path(__file__).resolve().parents[1]
    return "\n".join(
        path.read_text()
        for package in ("domain", "projections", "api")
        for path in sorted((repository / package).rglob("*.py"))
    )


def log_file_sources(paths: Iterable[Path]) -> Iterator[tuple[str, str]]:
    """(file name, its text) for each log file that exists."""
    for path in paths:
        if path.exists():
            yield str(path), path.read_text(errors="replace")


def key_texts(key: bytes) -> set[str]:
    """How a master key could show in a log: base64 (as configured and filed) and hex."""
    return {base64.b64encode(key).decode("ascii"), key.hex()}


def filed_master_keys(root: Path) -> set[str]:
    """The keys of every master.keys file under ``root``: those rotated in and those of
    `pca` subprocesses, which the in-process hook never sees."""
    found: set[str] = set()
    for path in root.rglob(MASTER_KEYS_FILE):
        with contextlib.suppress(OSError):
            for line in path.read_text(errors="replace").splitlines():
                found |= _filed_key_texts(line)
    return found


def _filed_key_texts(line: str) -> set[str]:
    """The key on a master.keys line (``<id> <base64>``), as filed and as hex."""
    filed = line.strip().partition(" ")[2].strip()
    if not filed:
        return set()
    try:
        return {filed} | key_texts(base64.b64decode(filed, validate=True))
    except ValueError:  # binascii.Error included: a damaged line, kept as it is
        return {filed}


@dataclass
class SecretWatch:
    """The run's log output and the secrets that must not be in it."""

    capture: LogCapture = field(default_factory=LogCapture)
    secrets: set[str] = field(default_factory=set)
    temp_roots: set[Path] = field(default_factory=set)
    patches: pytest.MonkeyPatch = field(default_factory=pytest.MonkeyPatch)
    levels: dict[str, int] = field(default_factory=dict)
    found: list[str] = field(default_factory=list)

    def start(self) -> None:
        """Capture every record of our packages (all levels) and of any other logger that
        reaches the root, and learn each master key and download password made in-process."""
        logging.getLogger().addHandler(self.capture)
        for name in OUR_LOGGERS:
            self.levels[name] = logging.getLogger(name).level
            logging.getLogger(name).setLevel(logging.DEBUG)
        self.patches.setattr(MasterKeyring, "__init__", self._keyring_init())
        self.patches.setattr(DownloadOptions, "__init__", self._options_init())

    def stop(self) -> None:
        logging.getLogger().removeHandler(self.capture)
        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)
        self.patches.undo()

    def leaks(self) -> list[str]:
        """Every log source of the run that shows a secret."""
        secrets = self.secrets | SENT_PASSWORDS
        for root in self.temp_roots:
            secrets |= filed_master_keys(root)
        # A value that is a word of the service's own code (a generated password such as
        # "certificates") is ordinary log text, not something only the secret could show.
        code = service_code()
        secrets = {secret for secret in secrets if secret not in code}
        sources = [*self.capture.lines, *log_file_sources(LOG_FILES)]
        return find_leaks(sources, secrets)

    def _keyring_init(self) -> Any:
        original = MasterKeyring.__init__

        def remembering(
            keyring: MasterKeyring, keys: Sequence[bytes], *, source_file: Path | None = None
        ) -> None:
            for key in keys:
                if isinstance(key, bytes):
                    self.secrets |= key_texts(key)
            original(keyring, keys, source_file=source_file)

        return remembering

    def _options_init(self) -> Any:
        original = DownloadOptions.__init__

        def remembering(options: DownloadOptions, *args: Any, **kwargs: Any) -> None:
            original(options, *args, **kwargs)
            # a password of spaces only is refused, never used; watching for it would find
            # every indented traceback
            if options.password and options.password.strip():
                self.secrets.add(options.password)

        return remembering


WATCH = SecretWatch()


def pytest_configure(config: pytest.Config) -> None:
    del config
    WATCH.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    del config
    WATCH.stop()


def pytest_runtest_logstart(nodeid: str) -> None:
    WATCH.capture.test = nodeid


@pytest.fixture(scope="session", autouse=True)
def _scan_temp_root_for_master_keys(tmp_path_factory: pytest.TempPathFactory) -> None:
    WATCH.temp_roots.add(tmp_path_factory.getbasetemp())


@pytest.hookimpl(trylast=True)  # after session fixtures are torn down and have logged
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run if any log output shows a secret; the summary says where."""
    WATCH.found = WATCH.leaks()
    if WATCH.found:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if WATCH.found:
        terminalreporter.write_sep(
            "=", f"SECRETS IN LOG OUTPUT: {len(WATCH.found)} log source(s); the run fails", red=True
        )
        for leak in WATCH.found:
            terminalreporter.write_line(f"  {leak}")
