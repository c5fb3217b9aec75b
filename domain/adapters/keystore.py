"""Key custody: private keys kept encrypted at rest, never in the event store.

A :class:`MasterKeyring` holds one or more AES-256-GCM master keys. The active one
encrypts new records; the others stay readable so that a rotation never strands a key.
The keyring comes from ``PCA_MASTER_KEY`` (comma-separated base64 keys, first active)
or from ``<data_dir>/master.keys`` (``<id> <base64>`` per line, last active, mode 0600).

A :class:`KeyStore` keeps each private key as PKCS#8 DER encrypted under the active
master key, with the key id as associated data so a record cannot be moved to another
id. :class:`SQLiteKeyStore` and :class:`PostgresKeyStore` are the two backends.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
)
from psycopg import sql
from psycopg_pool import ConnectionPool

from domain.model.errors import KeyCustodyError, NotFoundError

__all__ = [
    "MASTER_KEYS_FILE",
    "KeyStore",
    "MasterKeyring",
    "PostgresKeyStore",
    "SQLiteKeyStore",
    "master_key_id",
]

logger = logging.getLogger(__name__)

MASTER_KEYS_FILE = "master.keys"
_KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_LOCK_FILE = ".master.keys.lock"
_GENERATE_HINT = 'python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"'
_CONFIG_HINT = f"PCA_MASTER_KEY must be base64 of 32 bytes; generate one with: {_GENERATE_HINT}"

# A record re-wrapper: (key_id, master_key_id, blob) -> (new master_key_id, new blob).
Rewrapper = Callable[[str, str, bytes], tuple[str, bytes]]


@dataclass(frozen=True)
class SealedKey:
    """A private key encrypted under a master key, ready to be stored under ``key_id``."""

    key_id: str
    master_key_id: str
    blob: bytes = field(repr=False)


def master_key_id(key: bytes) -> str:
    """Return the public id of a master key: the first 16 hex chars of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:16]


# ---------------------------------------------------------------------------
# Master keyring
# ---------------------------------------------------------------------------


class MasterKeyring:
    """Master keys by id; the active key encrypts, every key decrypts. Thread-safe."""

    def __init__(self, keys: Sequence[bytes], *, source_file: Path | None = None) -> None:
        """Build a keyring from raw 32-byte keys; ``keys[0]`` is the active key.

        ``source_file`` is the master.keys file the keys came from, if any; only such
        a keyring can be rotated through the file and reloads it on an unknown id.
        """
        self._lock = threading.Lock()
        self._source_file = source_file
        self._keys: dict[str, bytes] = {}
        self._active = ""
        self._replace_keys(keys)

    def __repr__(self) -> str:
        return f"MasterKeyring(active_id={self.active_id!r}, key_ids={self.key_ids!r})"

    @classmethod
    def load(cls, data_dir: Path, configured: str | None) -> MasterKeyring:
        """Load the keyring from ``configured`` (PCA_MASTER_KEY) or from data_dir/master.keys.

        Without a configured value the file is created on first start with one fresh
        key (mode 0600, data_dir 0700). Raises KeyCustodyError, saying what to change,
        when the configured value or the file cannot be used.
        """
        if configured is not None:
            return cls(_parse_configured(configured))
        path = data_dir / MASTER_KEYS_FILE
        if not path.exists():
            _create_keyfile(data_dir, path)
        return cls(_read_keyfile(path)[::-1], source_file=path)

    @property
    def active_id(self) -> str:
        """The id of the master key that encrypts new records."""
        with self._lock:
            return self._active

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of every key this keyring can decrypt with, active first."""
        with self._lock:
            return (self._active, *(k for k in self._keys if k != self._active))

    def encrypt(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        """Encrypt under the active key; return (master_key_id, nonce + ciphertext)."""
        with self._lock:
            key_id, key = self._active, self._keys[self._active]
        nonce = os.urandom(_NONCE_BYTES)
        return key_id, nonce + AESGCM(key).encrypt(nonce, plaintext, aad)

    def decrypt(self, master_key_id: str, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a blob made by :meth:`encrypt` with the same ``aad``.

        Raises KeyCustodyError if the master key is not in the keyring or the blob
        fails authentication (altered, or bound to other associated data).
        """
        key = self._key_for(master_key_id)
        if len(blob) < _NONCE_BYTES + _TAG_BYTES:
            raise KeyCustodyError(f"the record under master key {master_key_id} is truncated")
        try:
            return AESGCM(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
        except InvalidTag:
            raise KeyCustodyError(
                f"the record under master key {master_key_id} failed authentication: it was"
                " altered, copied from another key id, or written with a different master key"
                " that had the same id"
            ) from None

    def rotate(self, data_dir: Path) -> str:
        """Append a fresh master key to data_dir/master.keys, make it active, return its id.

        The file is rewritten atomically (0600 temp file, fsync, rename) under a lock,
        so concurrent rotations never lose a key. Refused with KeyCustodyError when the
        keyring came from PCA_MASTER_KEY.
        """
        path = data_dir / MASTER_KEYS_FILE
        self._check_rotatable(path)
        new_key = os.urandom(_KEY_BYTES)
        with _keyfile_lock(data_dir):
            keys = [*_read_keyfile(path), new_key]
            _write_keyfile(path, keys)
        with self._lock:
            self._replace_keys(keys[::-1])
        return master_key_id(new_key)

    def _check_rotatable(self, path: Path) -> None:
        if self._source_file is None:
            raise KeyCustodyError(
                "this keyring comes from PCA_MASTER_KEY, so it cannot be rotated through"
                " master.keys; to rotate, prepend a new key to PCA_MASTER_KEY"
                f" (new,old,...) and restart; generate one with: {_GENERATE_HINT}"
            )
        if path.resolve() != self._source_file.resolve():
            raise KeyCustodyError(
                f"this keyring was loaded from {self._source_file}, not {path}; rotate it there"
            )

    def _key_for(self, key_id: str) -> bytes:
        with self._lock:
            key = self._keys.get(key_id)
            if key is None and self._source_file is not None:
                self._replace_keys(_read_keyfile(self._source_file)[::-1])
                key = self._keys.get(key_id)
            if key is None:
                raise KeyCustodyError(
                    f"master key {key_id} is not in the keyring (it has {sorted(self._keys)});"
                    " restore that key to PCA_MASTER_KEY or master.keys"
                )
            return key

    def _replace_keys(self, keys: Sequence[bytes]) -> None:
        """Install ``keys`` (active first); caller holds the lock or is __init__."""
        if not keys:
            raise KeyCustodyError(f"the master keyring is empty; {_CONFIG_HINT}")
        for key in keys:
            if len(key) != _KEY_BYTES:
                raise KeyCustodyError(f"a master key must be {_KEY_BYTES} bytes")
        self._keys = {master_key_id(k): k for k in keys}
        self._active = master_key_id(keys[0])


def _parse_configured(configured: str) -> list[bytes]:
    """Decode PCA_MASTER_KEY; never echo its content in an error."""
    entries = [e.strip() for e in configured.split(",")]
    if not any(entries):
        raise KeyCustodyError(
            f"PCA_MASTER_KEY is set but empty; unset it to use master.keys. {_CONFIG_HINT}"
        )
    keys = []
    for index, entry in enumerate(entries, start=1):
        key = _decode_key(entry)
        if key is None:
            raise KeyCustodyError(
                f"PCA_MASTER_KEY entry {index} of {len(entries)} is not usable. {_CONFIG_HINT}",
                field="PCA_MASTER_KEY",
            )
        keys.append(key)
    return keys


def _decode_key(text: str) -> bytes | None:
    """Return the 32 bytes that ``text`` encodes in standard base64, or None."""
    try:
        key = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    return key if len(key) == _KEY_BYTES else None


def _read_keyfile(path: Path) -> list[bytes]:
    """Return the keys in master.keys in file order (last = active)."""
    try:
        with path.open("rb") as handle:
            _check_owner_only(path, os.fstat(handle.fileno()).st_mode)
            text = handle.read().decode("ascii", errors="replace")
    except FileNotFoundError:
        raise KeyCustodyError(
            f"{path} is missing; restore it from backup or set PCA_MASTER_KEY"
        ) from None
    keys = [_parse_keyfile_line(path, n, line) for n, line in _numbered_lines(text)]
    if not keys:
        raise KeyCustodyError(f"{path} holds no key; restore it from backup")
    return keys


def _check_owner_only(path: Path, mode: int) -> None:
    if mode & 0o077:
        raise KeyCustodyError(
            f"{path} is accessible to group or others (mode {mode & 0o777:o});"
            f" run: chmod 600 {path}"
        )


def _numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            yield number, line


def _parse_keyfile_line(path: Path, number: int, line: str) -> bytes:
    parts = line.split()
    key = _decode_key(parts[1]) if len(parts) == 2 else None
    if key is None:
        raise KeyCustodyError(
            f"{path} line {number} is not '<id> <base64 of 32 bytes>'; restore it from backup"
        )
    if master_key_id(key) != parts[0]:
        raise KeyCustodyError(
            f"{path} line {number}: the id does not match the key; the file is damaged"
        )
    return key


def _keyfile_line(key: bytes) -> str:
    return f"{master_key_id(key)} {base64.b64encode(key).decode('ascii')}\n"


def _create_keyfile(data_dir: Path, path: Path) -> None:
    """Create master.keys with one fresh key unless another process just did."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    with _keyfile_lock(data_dir):
        if not path.exists():
            _write_keyfile(path, [os.urandom(_KEY_BYTES)])


def _write_keyfile(path: Path, keys: Sequence[bytes]) -> None:
    """Atomically replace ``path`` with ``keys``: 0600 temp file, fsync, rename, fsync dir."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.writelines(_keyfile_line(k) for k in keys)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _keyfile_lock(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock that serialises writers of master.keys across processes."""
    fd = os.open(data_dir / _LOCK_FILE, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------
# Key stores
# ---------------------------------------------------------------------------


class KeyStore(ABC):
    """Private keys by id, encrypted under a master keyring; decrypted keys are cached.

    Backends implement the storage primitives; encryption, caching and error
    messages live here so every backend behaves the same.
    """

    # CA keys are read on every issuance; leaf keys rarely. A bounded cache keeps the
    # hot CA keys in memory without growing with the number of certificates.
    CACHE_SIZE = 256

    def __init__(self, keyring: MasterKeyring) -> None:
        self._keyring = keyring
        self._cache: OrderedDict[str, PrivateKeyTypes] = OrderedDict()
        self._cache_lock = threading.RLock()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def put(self, key_id: str, private_key: PrivateKeyTypes) -> None:
        """Store ``private_key`` under ``key_id``, encrypted under the active master key.

        Raises KeyCustodyError if ``key_id`` is already stored (key ids are never reused).
        """
        self.store([self.seal(key_id, private_key)])

    def seal(self, key_id: str, private_key: PrivateKeyTypes) -> SealedKey:
        """``private_key`` encrypted for ``key_id``, not yet stored.

        The PKCS#8 DER exists only in memory. Sealing apart from storing lets many
        callers encrypt in parallel and one of them store the lot in one transaction.
        """
        der = private_key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        master_id, blob = self._keyring.encrypt(der, key_id.encode())
        return SealedKey(key_id, master_id, blob)

    def store(self, sealed: Sequence[SealedKey]) -> None:
        """Store sealed keys, all or none, in one transaction (one fsync for the lot).

        Raises KeyCustodyError if any key id is already stored.
        """
        if sealed:
            self._insert_many(sealed)

    def get(self, key_id: str) -> PrivateKeyTypes:
        """Return the private key stored under ``key_id``.

        Raises NotFoundError if there is none, KeyCustodyError if it cannot be decrypted.
        """
        with self._cache_lock:
            key = self._cache.get(key_id)
            if key is None:
                key = self._cache[key_id] = self._load(key_id)
                if len(self._cache) > self.CACHE_SIZE:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key_id)
            return key

    def destroy(self, key_id: str) -> bool:
        """Delete the key for good (storage and cache); return True if it existed."""
        with self._cache_lock:
            self._cache.pop(key_id, None)
            return self._delete(key_id)

    def rewrap_all(self) -> int:
        """Re-encrypt, in one transaction, every record not under the active master key.

        Returns how many records were rewritten. Afterwards the older master keys are
        no longer needed by this store.
        """
        return self._rewrap(self._keyring.active_id, self._rewrap_record)

    def rotate_master_key(self, data_dir: Path) -> tuple[str, int]:
        """Make a new active master key and re-encrypt every record under it.

        Returns the new master key id and the number of records rewritten.
        """
        new_id = self._keyring.rotate(data_dir)
        return new_id, self.rewrap_all()

    @abstractmethod
    def close(self) -> None:
        """Release the backend's connections. Safe to call twice."""

    def _load(self, key_id: str) -> PrivateKeyTypes:
        record = self._select(key_id)
        if record is None:
            raise NotFoundError(
                f"no private key {key_id!r} in the key store; it may have been destroyed"
            )
        der = self._decrypt(key_id, *record)
        try:
            return load_der_private_key(der, password=None)
        except ValueError as exc:
            raise KeyCustodyError(f"private key {key_id!r} decrypted but is not PKCS#8") from exc

    def _decrypt(self, key_id: str, master_id: str, blob: bytes) -> bytes:
        try:
            return self._keyring.decrypt(master_id, blob, key_id.encode())
        except KeyCustodyError as exc:
            raise KeyCustodyError(f"cannot decrypt private key {key_id!r}: {exc.detail}") from exc

    def _rewrap_record(self, key_id: str, master_id: str, blob: bytes) -> tuple[str, bytes]:
        return self._keyring.encrypt(self._decrypt(key_id, master_id, blob), key_id.encode())

    @staticmethod
    def _duplicate(sealed: Sequence[SealedKey]) -> KeyCustodyError:
        ids = ", ".join(repr(key.key_id) for key in sealed)
        return KeyCustodyError(
            f"a private key among {ids} is already stored; key ids are never reused"
        )

    @abstractmethod
    def _insert_many(self, sealed: Sequence[SealedKey]) -> None:
        """Insert records in one transaction; raise ``self._duplicate`` if an id exists."""

    @abstractmethod
    def _select(self, key_id: str) -> tuple[str, bytes] | None:
        """Return (master_key_id, blob) or None."""

    @abstractmethod
    def _delete(self, key_id: str) -> bool:
        """Delete a record; True if it existed."""

    @abstractmethod
    def _rewrap(self, active_id: str, rewrap: Rewrapper) -> int:
        """Apply ``rewrap`` to every record not under ``active_id``, in one transaction."""


_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS pca_keys (
    key_id TEXT PRIMARY KEY,
    master_key_id TEXT NOT NULL,
    blob BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
)
"""


class SQLiteKeyStore(KeyStore):
    """A key store in one SQLite file (WAL, mode 0600), shareable by threads and processes.

    Deleted rows are zeroed (secure_delete) and the WAL is truncated after a destroy
    or rewrap, so neither a destroyed key nor an old wrapping lingers in the files.
    """

    def __init__(self, path: Path, keyring: MasterKeyring) -> None:
        """Open (creating if missing, mode 0600, parent 0700) the store at ``path``."""
        super().__init__(keyring)
        self._path = path
        self._db_lock = threading.Lock()
        self._conn = _open_sqlite(path)

    def close(self) -> None:
        """Close the connection."""
        with self._db_lock:
            self._conn.close()

    def _insert_many(self, sealed: Sequence[SealedKey]) -> None:
        with self._db_lock:
            try:
                with self._transaction():
                    self._conn.executemany(
                        "INSERT INTO pca_keys (key_id, master_key_id, blob) VALUES (?, ?, ?)",
                        [(key.key_id, key.master_key_id, key.blob) for key in sealed],
                    )
            except sqlite3.IntegrityError:
                raise self._duplicate(sealed) from None

    def _select(self, key_id: str) -> tuple[str, bytes] | None:
        with self._db_lock:
            row = self._conn.execute(
                "SELECT master_key_id, blob FROM pca_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def _delete(self, key_id: str) -> bool:
        with self._db_lock:
            cursor = self._conn.execute("DELETE FROM pca_keys WHERE key_id = ?", (key_id,))
            existed = cursor.rowcount > 0
            if existed:
                self._truncate_wal()
        return existed

    def _rewrap(self, active_id: str, rewrap: Rewrapper) -> int:
        with self._db_lock:
            with self._transaction():
                rows = self._conn.execute(
                    "SELECT key_id, master_key_id, blob FROM pca_keys WHERE master_key_id <> ?",
                    (active_id,),
                ).fetchall()
                for key_id, master_id, blob in rows:
                    new_id, new_blob = rewrap(key_id, master_id, blob)
                    self._conn.execute(
                        "UPDATE pca_keys SET master_key_id = ?, blob = ? WHERE key_id = ?",
                        (new_id, new_blob, key_id),
                    )
            if rows:
                self._truncate_wal()
        return len(rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """A write transaction taken up front (BEGIN IMMEDIATE); caller holds _db_lock."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _truncate_wal(self) -> None:
        """Copy the WAL into the database and empty it; caller holds _db_lock."""
        busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            logger.warning(
                "%s: WAL not truncated after a delete because another connection was busy;"
                " old pages leave the WAL at its next reset",
                self._path,
            )


def _open_sqlite(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    conn = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    try:
        for pragma in ("busy_timeout = 10000", "secure_delete = ON", "synchronous = FULL"):
            conn.execute(f"PRAGMA {pragma}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise KeyCustodyError(f"{path}: SQLite refused WAL mode (got {mode}); use a local disk")
        conn.execute(_SQLITE_SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


OUTAGE_WAIT_SECONDS = 2.0
_PG_DDL_LOCK = 0x70636B657973  # "pckeys": serialises concurrent table creation


class PostgresKeyStore(KeyStore):
    """A key store in PostgreSQL table ``<schema>.pca_keys``, through a small pool.

    A destroyed row is deleted; PostgreSQL may keep its (encrypted) bytes in dead
    tuples, WAL or backups until vacuumed, so to shred keys for good rotate the
    master key, rewrap_all() and then drop the old master key.
    """

    def __init__(
        self,
        conninfo: str,
        keyring: MasterKeyring,
        schema: str = "public",
        *,
        pool_size: int = 4,
    ) -> None:
        """Connect (waiting up to 10 s) and create the schema and table if missing."""
        super().__init__(keyring)
        self._table = sql.Identifier(schema, "pca_keys")
        # During a database outage a request waits at most OUTAGE_WAIT_SECONDS for a
        # connection, then fails (503 with Retry-After) instead of hanging for half a minute.
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            conninfo,
            min_size=1,
            max_size=pool_size,
            timeout=OUTAGE_WAIT_SECONDS,
            kwargs={"autocommit": True, "connect_timeout": round(OUTAGE_WAIT_SECONDS)},
            open=True,
        )
        try:
            self._pool.wait(timeout=10.0)
            self._create_table(schema)
        except BaseException:
            self._pool.close()
            raise

    def close(self) -> None:
        """Close the connection pool."""
        self._pool.close()

    def _create_table(self, schema: str) -> None:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_DDL_LOCK,))
            exists = conn.execute(
                "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)
            ).fetchone()
            if not (exists and exists[0]):
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (key_id text PRIMARY KEY,"
                    " master_key_id text NOT NULL, blob bytea NOT NULL,"
                    " created_at timestamptz NOT NULL DEFAULT now())"
                ).format(self._table)
            )

    def _insert_many(self, sealed: Sequence[SealedKey]) -> None:
        query = sql.SQL("INSERT INTO {} (key_id, master_key_id, blob) VALUES (%s, %s, %s)")
        try:
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(
                    query.format(self._table),
                    [(key.key_id, key.master_key_id, key.blob) for key in sealed],
                )
        except psycopg.errors.UniqueViolation:
            raise self._duplicate(sealed) from None

    def _select(self, key_id: str) -> tuple[str, bytes] | None:
        query = sql.SQL("SELECT master_key_id, blob FROM {} WHERE key_id = %s")
        with self._pool.connection() as conn:
            row = conn.execute(query.format(self._table), (key_id,)).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def _delete(self, key_id: str) -> bool:
        query = sql.SQL("DELETE FROM {} WHERE key_id = %s")
        with self._pool.connection() as conn:
            return conn.execute(query.format(self._table), (key_id,)).rowcount > 0

    def _rewrap(self, active_id: str, rewrap: Rewrapper) -> int:
        select = sql.SQL(
            "SELECT key_id, master_key_id, blob FROM {} WHERE master_key_id <> %s FOR UPDATE"
        ).format(self._table)
        update = sql.SQL("UPDATE {} SET master_key_id = %s, blob = %s WHERE key_id = %s").format(
            self._table
        )
        with self._pool.connection() as conn, conn.transaction():
            rows = conn.execute(select, (active_id,)).fetchall()
            for key_id, master_id, blob in rows:
                new_id, new_blob = rewrap(str(key_id), str(master_id), bytes(blob))
                conn.execute(update, (new_id, new_blob, key_id))
        return len(rows)
