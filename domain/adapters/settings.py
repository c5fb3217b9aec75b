"""Configuration from the environment: the one reader of ``PCA_*``, and the one place that
wires the service together.

Settings (all optional):

``PCA_DATA_DIR``       data directory (default ``./pca-data``): SQLite ``events.db`` (the
                       events and the key store's table) and ``master.keys``; mode 0700.
``PCA_DATABASE_URL``   ``postgresql://USER:PASSWORD@HOST:PORT/DBNAME``: keep events and keys in
                       PostgreSQL instead of SQLite.
``PCA_DATABASE_SCHEMA`` PostgreSQL schema (default ``public``).
``PCA_PUBLIC_URL``     base URL written into certificates for CRLs, CA certificates and OCSP
                       (default ``http://127.0.0.1:8080``).
``PCA_OCSP_URL``       base URL of the OCSP responder written into certificates instead, for
                       a dedicated responder (``pca ocsp-serve``) on a host or port of its
                       own (default: ``PCA_PUBLIC_URL``).
``PCA_MASTER_KEY``     comma-separated base64 AES-256 master keys, first active; without it a
                       key file is created in the data directory on first start.
``PCA_CRL_VALIDITY_HOURS``  a CRL's nextUpdate after its thisUpdate (default 24).
``PCA_CRL_DEBOUNCE_MS``     the least time between two CRL publications, and how often
                           the publisher looks for revocations nobody woke it for (500).
``PCA_CRL_EXPIRED_GRACE_DAYS`` how long an expired certificate stays on the base CRL (7).
``PCA_CRL_MAX_DELTA_ENTRIES``  a delta CRL longer than this is cut as a new base (10000).
``PCA_AUDIT_CHECKPOINT_MINUTES`` how often an audit checkpoint is signed while the log
                       moves (default 60).
``PCA_OCSP_VALIDITY_MINUTES``  an OCSP answer's nextUpdate after its thisUpdate (default 60).
``PCA_OCSP_RESPONDER_DAYS``    lifetime of a CA's delegated OCSP responder certificate (30).
``PCA_ISSUANCE_RATE_PER_SECOND`` certificates per second per API token and process
                       (default 100; 0 switches the limit off).
``PCA_ISSUANCE_BURST``  certificates one token may ask for at once (default 1000).
``PCA_ACME_HTTP_PORT``  the port ACME http-01 validation connects to (default 80).
``PCA_ACME_RESOLVER``   host:port of the DNS server ACME validation asks (default: the
                       system's resolver).
``PCA_ACME_ORDERS_PER_ACCOUNT`` new ACME orders one account may place per rate window
                       (default 300; 0 switches the limit off).
``PCA_ACME_ORDERS_PER_IDENTIFIER`` new ACME orders naming one identifier per rate window,
                       whatever the account (default 50; 0 switches the limit off).
``PCA_ACME_RATE_WINDOW_SECONDS`` the rate window (default 3600).
``PCA_API_ONLY``       ``1``: API workers run no read-model runner, CRL publisher or
                       checkpoints (``pca projections run`` does, apart).
``PCA_PKCS11_MODULE``  path of a PKCS#11 module (e.g. ``/usr/lib/softhsm/libsofthsm2.so``):
                       CAs enabled with ``key_storage: "pkcs11"`` keep their keys in its
                       token ``PCA_PKCS11_TOKEN_LABEL``, logged in with ``PCA_PKCS11_PIN`` or
                       the first line of the file ``PCA_PKCS11_PIN_FILE``.

A value that cannot be used stops the start with a :class:`SettingsError` naming the
variable. ``PCA_DOWNLOAD_PASSWORD`` is no setting: it is one `pca cert download`'s input.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import math
import os
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit

import psycopg

from domain.adapters.acme_checks import NetworkChecker
from domain.adapters.acme_store import PostgresNonces, SQLiteNonces
from domain.adapters.keystore import KeyStore
from domain.adapters.keystore_backends import PostgresKeyStore, SQLiteKeyStore
from domain.adapters.masterkeys import MasterKeyring
from domain.adapters.pkcs11 import Pkcs11Signer, TokenSettings
from domain.adapters.recorders import POSTGRES_RECORDER_TOPIC, SQLITE_RECORDER_TOPIC
from domain.adapters.writelock import write_locks
from domain.application.acme import Acme, AcmeLimits
from domain.application.service import Clock, PrivateCA, utc_now
from domain.model.errors import PCAError, StorageNotDurableError

DEFAULT_PUBLIC_URL = "http://127.0.0.1:8080"
EVENTS_FILE = "events.db"
KEYS_FILE = "keys.db"  # an older release's separate key store, moved into EVENTS_FILE
ACME_FILE = "acme.db"
_AGGREGATE_CACHE = "5000"
_WAL_ATTEMPTS = 10
# How long one request waits for storage before it fails (the API answers 503 with
# Retry-After): SQLite's busy timeout for the write lock, and PostgreSQL's wait for a
# pooled connection. eventsourcing tries a PostgreSQL read or write up to ten times, 0.2 s
# apart, so with PostgreSQL down a request fails after about 10 x (1 + 0.2) = 12 s, well
# within a client's usual 30 s; in normal operation neither wait comes near these bounds.
SQLITE_LOCK_TIMEOUT_S = 10
POSTGRES_POOL_TIMEOUT_S = 1
API_ONLY_ENV = "PCA_API_ONLY"
RATE_ENV = "PCA_ISSUANCE_RATE_PER_SECOND"
BURST_ENV = "PCA_ISSUANCE_BURST"
DEFAULT_ISSUANCE_RATE = 100.0
DEFAULT_ISSUANCE_BURST = 1000  # one full batch (api.http.bodies.MAX_BATCH_ITEMS)
_FLAG_VALUES = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


class SettingsError(PCAError, ValueError):
    """Raised when a ``PCA_*`` variable cannot be used; ``field`` names it."""


@dataclass(frozen=True)
class PublishingSettings:
    """How often and for how long CRLs are published, and how often the checkpoints'
    background thread signs an audit checkpoint (``PCA_CRL_*``,
    ``PCA_AUDIT_CHECKPOINT_MINUTES``)."""

    validity: dt.timedelta = dt.timedelta(hours=24)
    debounce: dt.timedelta = dt.timedelta(milliseconds=500)
    expired_grace: dt.timedelta = dt.timedelta(days=7)
    max_delta_entries: int = 10_000
    checkpoint_every: dt.timedelta = dt.timedelta(minutes=60)


@dataclass(frozen=True)
class OCSPSettings:
    """Response validity and responder certificate lifetime (``PCA_OCSP_*``)."""

    validity: dt.timedelta = dt.timedelta(hours=1)
    responder_lifetime: dt.timedelta = dt.timedelta(days=30)


@dataclass(frozen=True)
class IssuanceLimit:
    """How many certificates one token may ask for: ``rate`` per second (0: no limit),
    and at most ``burst`` at once (``PCA_ISSUANCE_*``)."""

    rate: float = DEFAULT_ISSUANCE_RATE
    burst: int = DEFAULT_ISSUANCE_BURST

    @property
    def unlimited(self) -> bool:
        return self.rate == 0


@dataclass(frozen=True)
class AcmeSettings:
    """Where ACME validation looks (``PCA_ACME_HTTP_PORT``, ``PCA_ACME_RESOLVER``) and
    how many orders it takes (``PCA_ACME_ORDERS_*``, ``PCA_ACME_RATE_WINDOW_SECONDS``)."""

    http_port: int = 80
    resolver: tuple[str, int] | None = None
    limits: AcmeLimits = field(default_factory=AcmeLimits)


@dataclass(frozen=True)
class Settings:
    """Where the service keeps its data, how it names itself to relying parties, and how
    its background jobs and limits are tuned."""

    data_dir: Path
    public_url: str = DEFAULT_PUBLIC_URL
    ocsp_url: str | None = None  # None: OCSP is answered under public_url
    database_url: str | None = field(default=None, repr=False)  # may hold a password
    database_schema: str = ""
    master_key: str | None = field(default=None, repr=False)
    publishing: PublishingSettings = PublishingSettings()
    ocsp: OCSPSettings = OCSPSettings()
    issuance: IssuanceLimit = IssuanceLimit()
    api_only: bool = False
    pkcs11: TokenSettings | None = field(default=None, repr=False)  # holds the PIN
    acme: AcmeSettings = AcmeSettings()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Settings from ``PCA_*`` variables (see the module docstring); SettingsError
        naming the variable if one cannot be used."""
        variables = _Variables(environ)
        return cls(
            data_dir=Path(environ.get("PCA_DATA_DIR", "pca-data")).absolute(),
            public_url=environ.get("PCA_PUBLIC_URL", DEFAULT_PUBLIC_URL),
            ocsp_url=environ.get("PCA_OCSP_URL") or None,
            database_url=environ.get("PCA_DATABASE_URL") or None,
            database_schema=environ.get("PCA_DATABASE_SCHEMA", ""),
            master_key=environ.get("PCA_MASTER_KEY") or None,
            publishing=_publishing(variables),
            ocsp=_ocsp(variables),
            issuance=_issuance(variables),
            api_only=variables.flag(API_ONLY_ENV),
            pkcs11=_token(environ),
            acme=_acme(variables),
        )

    @property
    def uses_postgres(self) -> bool:
        return self.database_url is not None

    def eventsourcing_env(self) -> dict[str, str]:
        """The eventsourcing environment for the configured event store.

        Its application recorder writes an audit chain link with every event
        (:mod:`domain.audit.chain`).
        """
        env = {"AGGREGATE_CACHE_MAXSIZE": _AGGREGATE_CACHE, "AGGREGATE_CACHE_FASTFORWARD": "y"}
        if self.database_url is None:
            env["PERSISTENCE_MODULE"] = "eventsourcing.sqlite"
            env["APPLICATION_RECORDER_TOPIC"] = SQLITE_RECORDER_TOPIC
            env["SQLITE_DBNAME"] = str(self.data_dir / EVENTS_FILE)
            env["SQLITE_LOCK_TIMEOUT"] = str(SQLITE_LOCK_TIMEOUT_S)
            return env
        env["PERSISTENCE_MODULE"] = "eventsourcing.postgres"
        env["APPLICATION_RECORDER_TOPIC"] = POSTGRES_RECORDER_TOPIC
        env.update(_postgres_env(self.database_url))
        if self.database_schema:
            env["POSTGRES_SCHEMA"] = self.database_schema
        return env

    def holds_deployment(self) -> bool:
        """True if the configured store already holds a deployment: the SQLite event store
        file exists, or the PostgreSQL schema has the event table. Creates nothing."""
        if self.database_url is None:
            return (self.data_dir / EVENTS_FILE).is_file()
        table = f'"{self.database_schema or "public"}".{PrivateCA.name}_events'
        with psycopg.connect(self.database_url) as connection:
            row = connection.execute("SELECT to_regclass(%s)", (table,)).fetchone()
        return row is not None and row[0] is not None

    def missing_deployment(self) -> SettingsError:
        """The error of a command that needs a deployment where there is none."""
        if self.database_url is None:
            where, field_name = f"{self.data_dir.resolve()} has no {EVENTS_FILE}", "PCA_DATA_DIR"
        else:
            schema = self.database_schema or "public"
            where, field_name = f"the schema {schema} has no event table", "PCA_DATABASE_SCHEMA"
        return SettingsError(
            f"There is no deployment here: {where}. Check {field_name} for a typo; to start"
            " a new deployment there, run `pca quickstart`, `pca ca create-root` or `pca serve`.",
            field=field_name,
        )

    def prepare_data_dir(self) -> None:
        """Create the data directory (0700) and SQLite files (0600) before anyone opens them."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.database_url is None:
            for name in (EVENTS_FILE, ACME_FILE):
                prepare_sqlite_file(self.data_dir / name)

    def open_keystore(self) -> KeyStore:
        """The key store in the event store's database, under the configured master keys,
        so that a save can carry keys in its transaction. On SQLite, the records of an
        older release's ``keys.db`` are moved in first (once; see SQLiteKeyStore.adopt)."""
        keyring = MasterKeyring.load(self.data_dir, self.master_key)
        if self.database_url is not None:
            schema = self.database_schema or "public"
            return PostgresKeyStore(self.database_url, keyring, schema=schema)
        store = SQLiteKeyStore(self.data_dir / EVENTS_FILE, keyring)
        try:
            store.adopt(self.data_dir / KEYS_FILE)
        except BaseException:
            store.close()
            raise
        return store


def open_acme(settings: Settings, service: PrivateCA) -> Acme:
    """The ACME use cases over ``service``, with the deployment's shared nonce table and
    the network checks the settings point at; ``Acme.close`` closes the nonce table."""
    nonces: SQLiteNonces | PostgresNonces
    if settings.database_url is None:
        nonces = SQLiteNonces(settings.data_dir / ACME_FILE)
    else:
        nonces = PostgresNonces(settings.database_url, settings.database_schema or "public")
    checker = NetworkChecker(settings.acme.http_port, settings.acme.resolver)
    return Acme(service, nonces, checker, settings.acme.limits)


def open_service(settings: Settings, *, clock: Clock = utc_now) -> PrivateCA:
    """The application service on durable storage, with its key store and, if one is
    configured, its PKCS#11 token (both closed by whoever closes the service's stores)."""
    settings.prepare_data_dir()
    env = settings.eventsourcing_env()
    token = None if settings.pkcs11 is None else Pkcs11Signer(settings.pkcs11)
    return PrivateCA(
        env,
        keystore=settings.open_keystore(),
        token_signer=token,
        public_url=settings.public_url,
        ocsp_url=settings.ocsp_url,
        clock=clock,
        write_locks=functools.partial(write_locks, env),
        keys_in_event_store=True,
    )


class _Variables:
    """Typed reads of ``PCA_*`` variables; a blank or unset one takes its default, and each
    error names the variable and what it takes."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def number(self, name: str, default: float) -> float:
        """A finite number >= 0."""
        raw = self._environ.get(name, "").strip()
        if not raw:
            return float(default)
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not 0 <= value < math.inf:
            raise SettingsError(f"{name} must be a number >= 0; got {raw!r}.", field=name)
        return value

    def whole(self, name: str, default: int, minimum: int) -> int:
        value = self.number(name, default)
        if value < minimum or not value.is_integer():
            raise SettingsError(
                f"{name} must be a whole number >= {minimum}; got {value:g}.", field=name
            )
        return int(value)

    def duration(
        self, name: str, default: dt.timedelta, unit: dt.timedelta, *, allow_zero: bool = False
    ) -> dt.timedelta:
        """``name`` counted in ``unit``s; zero only where it means "every time"."""
        value = self.number(name, default / unit)
        if value == 0 and not allow_zero:
            raise SettingsError(f"{name} must be a number > 0; got 0.", field=name)
        return unit * value

    def address(self, name: str) -> tuple[str, int] | None:
        """A host:port, or None when unset."""
        raw = self._environ.get(name, "").strip()
        if not raw:
            return None
        host, _, port = raw.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"{name} must be host:port; got {raw!r}.", field=name)
        return host.strip("[]"), int(port)

    def flag(self, name: str) -> bool:
        """A yes or no; anything else stops the start rather than guess what was meant."""
        raw = self._environ.get(name, "").strip().lower()
        if raw == "":
            return False
        if raw not in _FLAG_VALUES:
            raise SettingsError("use 1 or 0 (true/false, yes/no).", field=name)
        return _FLAG_VALUES[raw]


_HOUR, _MINUTE, _DAY = dt.timedelta(hours=1), dt.timedelta(minutes=1), dt.timedelta(days=1)
_MILLISECOND = dt.timedelta(milliseconds=1)


def _publishing(variables: _Variables) -> PublishingSettings:
    defaults = PublishingSettings()
    return PublishingSettings(
        validity=variables.duration("PCA_CRL_VALIDITY_HOURS", defaults.validity, _HOUR),
        debounce=variables.duration("PCA_CRL_DEBOUNCE_MS", defaults.debounce, _MILLISECOND),
        expired_grace=variables.duration(
            "PCA_CRL_EXPIRED_GRACE_DAYS", defaults.expired_grace, _DAY, allow_zero=True
        ),
        max_delta_entries=variables.whole(
            "PCA_CRL_MAX_DELTA_ENTRIES", defaults.max_delta_entries, minimum=0
        ),
        checkpoint_every=variables.duration(
            "PCA_AUDIT_CHECKPOINT_MINUTES", defaults.checkpoint_every, _MINUTE, allow_zero=True
        ),
    )


def _ocsp(variables: _Variables) -> OCSPSettings:
    defaults = OCSPSettings()
    return OCSPSettings(
        validity=variables.duration("PCA_OCSP_VALIDITY_MINUTES", defaults.validity, _MINUTE),
        responder_lifetime=variables.duration(
            "PCA_OCSP_RESPONDER_DAYS", defaults.responder_lifetime, _DAY
        ),
    )


def _token(environ: Mapping[str, str]) -> TokenSettings | None:
    """The PKCS#11 token, if ``PCA_PKCS11_MODULE`` names one; its label and PIN are then
    required."""
    module = environ.get("PCA_PKCS11_MODULE", "").strip()
    if not module:
        return None
    label = environ.get("PCA_PKCS11_TOKEN_LABEL", "").strip()
    if not label:
        raise SettingsError(
            "PCA_PKCS11_TOKEN_LABEL must name the token that holds the CA keys.",
            field="PCA_PKCS11_TOKEN_LABEL",
        )
    return TokenSettings(Path(module), label, _token_pin(environ))


def _token_pin(environ: Mapping[str, str]) -> str:
    pin = environ.get("PCA_PKCS11_PIN", "")
    pin_file = environ.get("PCA_PKCS11_PIN_FILE", "").strip()
    if pin and pin_file:
        raise SettingsError(
            "Set PCA_PKCS11_PIN or PCA_PKCS11_PIN_FILE, not both.", field="PCA_PKCS11_PIN"
        )
    if pin_file:
        try:
            lines = Path(pin_file).read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise SettingsError(
                f"PCA_PKCS11_PIN_FILE: cannot read {pin_file} ({error.strerror}).",
                field="PCA_PKCS11_PIN_FILE",
            ) from None
        pin = lines[0] if lines else ""
    if not pin:
        raise SettingsError(
            "PCA_PKCS11_PIN must hold the token's PIN, or PCA_PKCS11_PIN_FILE a file with it.",
            field="PCA_PKCS11_PIN",
        )
    return pin


def _issuance(variables: _Variables) -> IssuanceLimit:
    rate = variables.number(RATE_ENV, DEFAULT_ISSUANCE_RATE)
    return IssuanceLimit(rate, variables.whole(BURST_ENV, DEFAULT_ISSUANCE_BURST, minimum=1))


def _acme(variables: _Variables) -> AcmeSettings:
    defaults = AcmeLimits()
    limits = AcmeLimits(
        per_account=variables.whole("PCA_ACME_ORDERS_PER_ACCOUNT", defaults.per_account, minimum=0),
        per_identifier=variables.whole(
            "PCA_ACME_ORDERS_PER_IDENTIFIER", defaults.per_identifier, minimum=0
        ),
        window_seconds=variables.whole(
            "PCA_ACME_RATE_WINDOW_SECONDS", defaults.window_seconds, minimum=1
        ),
    )
    return AcmeSettings(
        http_port=variables.whole("PCA_ACME_HTTP_PORT", 80, minimum=1),
        resolver=variables.address("PCA_ACME_RESOLVER"),
        limits=limits,
    )


def prepare_sqlite_file(path: Path) -> None:
    """Create ``path`` with mode 0600 before SQLite opens it, and switch it to WAL.

    Only a file that does not exist yet is touched: opening and closing a descriptor on a
    database that this process already uses would drop SQLite's POSIX locks on it.
    Switching the journal mode needs a moment of exclusive access; processes starting
    together on a fresh data directory take turns here.
    """
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return
    for attempt in range(_WAL_ATTEMPTS):
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=10)) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if attempt == _WAL_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _postgres_host(parts: SplitResult) -> str:
    """The URL's host, or the directory of a local server's Unix socket, which libpq
    reads percent-encoded in the host's place (``postgresql://pca@%2Frun%2Fpostgresql/pca``),
    taken as written (``hostname`` may lower its case)."""
    host = parts.hostname or "127.0.0.1"
    if not host.lower().startswith("%2f"):
        return host
    return unquote(parts.netloc.rpartition("@")[2].partition(":")[0])


def _postgres_env(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"} or not parts.path.strip("/"):
        raise StorageNotDurableError(
            "PCA_DATABASE_URL must look like postgresql://USER:PASSWORD@HOST:PORT/DBNAME"
            " (HOST may be the directory of a local server's socket, percent-encoded:"
            " %2Frun%2Fpostgresql)."
        )
    if parts.query:
        # The event store takes host, port, user and password one by one, so options such
        # as sslmode would reach some connections and silently not others.
        raise StorageNotDurableError(
            "PCA_DATABASE_URL must not carry options (?...): they would not reach every "
            "connection. Set them as libpq variables instead, e.g. PGSSLMODE=verify-full "
            "PGSSLROOTCERT=/path/to/ca.pem."
        )
    return {
        "POSTGRES_DBNAME": unquote(parts.path.strip("/")),
        "POSTGRES_HOST": _postgres_host(parts),
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or ""),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_POOL_SIZE": "4",  # opened eagerly by psycopg_pool, per process
        "POSTGRES_MAX_OVERFLOW": "16",
        # eventsourcing's name for the pool wait; whole seconds only.
        "POSTGRES_CONNECT_TIMEOUT": str(POSTGRES_POOL_TIMEOUT_S),
    }
