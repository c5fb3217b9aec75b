"""Master keys: the AES-256-GCM keyring that encrypts the key store's records.

A :class:`MasterKeyring` holds one or more master keys. The active one encrypts new
records; the others stay readable so that a rotation never strands a key. The keyring
comes from ``PCA_MASTER_KEY`` (read by :mod:`domain.adapters.settings`: comma-separated
base64 keys, first active) or from ``<data_dir>/master.keys`` (``<id> <base64>`` per line,
last active, mode 0600), which :meth:`MasterKeyring.rotate` extends under a file lock.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.model.errors import KeyCustodyError

__all__ = ["MASTER_KEYS_FILE", "MasterKeyring", "master_key_id"]


MASTER_KEYS_FILE = "master.keys"
_KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_LOCK_FILE = ".master.keys.lock"
_GENERATE_HINT = 'python -c "import base64, os; print(base64.b64encode(os.urandom(32)).decode())"'
_CONFIG_HINT = f"PCA_MASTER_KEY must be base64 of 32 bytes; generate one with: {_GENERATE_HINT}"


def master_key_id(key: bytes) -> str:
    """Return the public id of a master key: the first 16 hex chars of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:16]


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
