"""The backup archive format, apart from any store: parts, manifest, authenticator.

A backup is one zip file (format ``pca-backup``, version 2)::

    events.jsonl             the event log: position, originator id, version, topic, state
    snapshots.jsonl          aggregate snapshots (a cache, restored so loads stay fast)
    audit_chain.jsonl        the hash chain: position, previous, link, commit stamp
    audit_checkpoints.jsonl  signed checkpoints: position, head, time, key id, public key, sig
    keys.jsonl               the key store: key id, master key id, encrypted blob, created at
    crls.jsonl               the CRLs being served: issuer, kind, number, DER, SHA-256, times
    manifest.json            what the parts hold, with each part's row count and SHA-256
    manifest.auth            an AES-GCM tag over the manifest's SHA-256, under the master key

Each part is JSON lines, one JSON array per row, in the order above; integers stay
integers (null for a commit stamp not yet given), byte strings are base64, UUIDs their
36-character form, so one archive restores into SQLite or PostgreSQL whichever it came from.
Private keys stay as the key store holds them: encrypted under the master keyring, which is
never written into a backup.

The checksums find a damaged or truncated file; the authenticator (GMAC with a fresh
nonce, through :meth:`MasterKeyring.encrypt` with empty plaintext) finds an edit by someone
who recomputed them, since making it needs the master key. Restore needs that key anyway.

Version 1 (before the chain's commit stamps) is read too: its chain rows have no stamp, and
the service stamps them when it next opens the log (:mod:`domain.audit.stamps`).
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import json
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import IO, Any

from domain.adapters.masterkeys import MasterKeyring
from domain.adapters.resources import Closeable
from domain.model.errors import KeyCustodyError, NotFoundError, ValidationError

__all__ = [
    "FORMAT",
    "PARTS",
    "VERSION",
    "ArchiveReader",
    "ArchiveWriter",
    "BackupDamagedError",
    "Kind",
    "Manifest",
    "Part",
    "PartDigest",
]

FORMAT = "pca-backup"
VERSION = 2
_READABLE = (1, 2)
MANIFEST = "manifest.json"
AUTHENTICATOR = "manifest.auth"
_AUTH_LABEL = b"pca-backup/v1 manifest sha256="
_CHUNK = 1 << 20


class BackupDamagedError(ValidationError):
    """Raised when a backup file is not a pca backup, or was altered, truncated or damaged."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, field="path")


class Kind(Enum):
    """How a column travels in a part."""

    INT = "int"
    OPTIONAL_INT = "int or null"
    TEXT = "text"
    BYTES = "bytes"  # base64
    UUID = "uuid"  # 36-character form; SQLite keeps eventsourcing's 32 hex digits


@dataclass(frozen=True)
class Part:
    """One table's rows in the archive."""

    name: str
    kinds: tuple[Kind, ...]
    added: int = 0  # trailing columns a version-1 archive lacks (read as null)

    @property
    def member(self) -> str:
        return f"{self.name}.jsonl"


_I, _T, _B, _U = Kind.INT, Kind.TEXT, Kind.BYTES, Kind.UUID
EVENTS = Part("events", (_I, _U, _I, _T, _B))
SNAPSHOTS = Part("snapshots", (_U, _I, _T, _B))
AUDIT_CHAIN = Part("audit_chain", (_I, _I, _B, Kind.OPTIONAL_INT), added=1)
AUDIT_CHECKPOINTS = Part("audit_checkpoints", (_I, _B, _T, _T, _B, _B))
KEYS = Part("keys", (_T, _T, _B, _T))
CRLS = Part("crls", (_T, _T, _I, _B, _T, _T, _T))
PARTS = (EVENTS, SNAPSHOTS, AUDIT_CHAIN, AUDIT_CHECKPOINTS, KEYS, CRLS)

Row = tuple[Any, ...]


@dataclass(frozen=True)
class PartDigest:
    """How many rows a part holds and the SHA-256 of its bytes."""

    rows: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What a backup holds; ``parts`` binds every part by its SHA-256."""

    created_at: str
    source: str  # "sqlite" or "postgresql"
    head_position: int  # the last event's position (0 for an empty log)
    chain_head: str | None  # hex link at the chain's last position
    master_key_ids: tuple[str, ...]  # the master keys the key store's records need
    parts: dict[str, PartDigest]
    # Where each CA key lives, by key id: "software" (in the keys part) or "pkcs11" (in the
    # token named token_label, which the backup cannot hold). Older archives have neither.
    ca_keys: dict[str, str] = field(default_factory=dict)
    token_label: str | None = None

    @property
    def token_keys(self) -> list[str]:
        """The ids of the CA keys that live in a PKCS#11 token, not in the backup."""
        return sorted(key_id for key_id, storage in self.ca_keys.items() if storage == "pkcs11")

    def count(self, part: Part) -> int:
        return self.parts[part.name].rows

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "created_at": self.created_at,
            "source": self.source,
            "head_position": self.head_position,
            "chain_head": self.chain_head,
            "master_key_ids": list(self.master_key_ids),
            "ca_keys": dict(sorted(self.ca_keys.items())),
            "token_label": self.token_label,
            "parts": {
                name: {"member": f"{name}.jsonl", "rows": d.rows, "sha256": d.sha256}
                for name, d in self.parts.items()
            },
        }

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """The manifest ``data`` describes; BackupDamagedError if it is not one we read."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BackupDamagedError(f"the file is not a {FORMAT} archive (its manifest says not)")
        if data.get("version") not in _READABLE:
            raise BackupDamagedError(
                f"the backup has format version {data.get('version')!r}; this pca reads version"
                f" {VERSION} and earlier: restore it with the pca release that wrote it"
            )
        try:
            parts = {
                part.name: PartDigest(
                    int(data["parts"][part.name]["rows"]), str(data["parts"][part.name]["sha256"])
                )
                for part in PARTS
            }
            return cls(
                str(data["created_at"]),
                str(data["source"]),
                int(data["head_position"]),
                None if data["chain_head"] is None else str(data["chain_head"]),
                tuple(str(key_id) for key_id in data["master_key_ids"]),
                parts,
                {str(key_id): str(storage) for key_id, storage in data.get("ca_keys", {}).items()},
                None if data.get("token_label") is None else str(data["token_label"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BackupDamagedError(f"the backup's manifest lacks or garbles {exc}") from None


class ArchiveWriter(Closeable):
    """Writes parts, then the manifest and its authenticator, into an open binary file."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._zip = zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED)

    def close(self) -> None:
        self._zip.close()

    def write_part(self, part: Part, rows: Iterable[Sequence[Any]]) -> PartDigest:
        """Stream ``rows`` (values in ``part.kinds``) into the part's member."""
        digest = hashlib.sha256()
        count = 0
        chunk = bytearray()  # zipfile compresses per write: hand it chunks, not lines
        with self._zip.open(part.member, "w", force_zip64=True) as member:
            for row in rows:
                line = _encode_row(part, row)
                digest.update(line)
                count += 1
                chunk += line
                if len(chunk) >= _CHUNK:
                    member.write(chunk)
                    chunk.clear()
            member.write(chunk)
        return PartDigest(count, digest.hexdigest())

    def finish(self, manifest: Manifest, keyring: MasterKeyring) -> None:
        """Write the manifest and its authenticator under the active master key."""
        text = json.dumps(manifest.to_json(), indent=2, sort_keys=True).encode("ascii") + b"\n"
        master_id, tag = keyring.encrypt(b"", _auth_data(text))
        auth = {"master_key_id": master_id, "gmac": base64.b64encode(tag).decode("ascii")}
        self._zip.writestr(MANIFEST, text)
        self._zip.writestr(AUTHENTICATOR, json.dumps(auth, sort_keys=True) + "\n")


class ArchiveReader(Closeable):
    """Reads an archive: the manifest first, then each part, checked against it."""

    def __init__(self, path: Path) -> None:
        """Open ``path``; BackupDamagedError if it is not a readable backup archive."""
        try:
            self._zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise NotFoundError(f"there is no backup file {path}", field="path") from None
        except (zipfile.BadZipFile, OSError) as exc:
            raise _unreadable(path, exc) from None
        try:
            self._manifest_bytes = self._zip.read(MANIFEST)
            auth = json.loads(self._zip.read(AUTHENTICATOR))
            self._auth_key_id = str(auth["master_key_id"])
            self._tag = base64.b64decode(str(auth["gmac"]), validate=True)
            self.manifest = Manifest.from_json(json.loads(self._manifest_bytes))
        except (zipfile.BadZipFile, OSError, KeyError, TypeError, ValueError) as exc:
            self._zip.close()
            raise _unreadable(path, exc) from None
        except BaseException:
            self._zip.close()
            raise

    def close(self) -> None:
        self._zip.close()

    def authenticate(self, keyring: MasterKeyring) -> None:
        """Check the manifest's tag and that ``keyring`` holds every master key it needs.

        KeyCustodyError names a missing master key; BackupDamagedError an altered manifest.
        """
        needed = [self._auth_key_id, *self.manifest.master_key_ids]
        missing = sorted(set(needed) - set(keyring.key_ids))
        if missing:
            raise KeyCustodyError(
                f"the backup needs master key(s) {', '.join(missing)}, which the configured"
                f" keyring ({', '.join(keyring.key_ids)}) does not hold: set PCA_MASTER_KEY, or"
                " copy master.keys from the source's data directory into PCA_DATA_DIR (mode"
                " 0600), then restore again",
                field="PCA_MASTER_KEY",
            )
        try:
            keyring.decrypt(self._auth_key_id, self._tag, _auth_data(self._manifest_bytes))
        except KeyCustodyError:
            raise BackupDamagedError(
                "the backup's manifest does not authenticate under master key"
                f" {self._auth_key_id}: the file was altered; use another copy"
            ) from None

    def verify(self) -> None:
        """Read every part through, checking its row count and SHA-256."""
        for part in PARTS:
            collections.deque(self._lines(part), maxlen=0)

    def rows(self, part: Part) -> Iterator[Row]:
        """The part's rows, decoded; BackupDamagedError, once the part is read through,
        if it does not match the manifest (so a caller writing them rolls back)."""
        for number, line in enumerate(self._lines(part), start=1):
            yield _decode_row(part, line, number)

    def _lines(self, part: Part) -> Iterator[bytes]:
        expected = self.manifest.parts[part.name]
        digest = hashlib.sha256()
        count = 0
        try:
            with self._zip.open(part.member) as member:
                for line in member:
                    digest.update(line)
                    count += 1
                    yield line
        except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
            raise BackupDamagedError(
                f"part {part.member} of the backup cannot be read ({_reason(exc)}); the file"
                " is damaged: use another copy"
            ) from None
        if (count, digest.hexdigest()) != (expected.rows, expected.sha256):
            raise BackupDamagedError(
                f"part {part.member} of the backup does not match its manifest (SHA-256 or row"
                " count differs): the file was altered or damaged; use another copy"
            )


def _unreadable(path: Path, exc: BaseException) -> BackupDamagedError:
    return BackupDamagedError(
        f"{path} is not a readable {FORMAT} archive ({_reason(exc)}); it is damaged or not a"
        " backup: use another copy"
    )


def _auth_data(manifest: bytes) -> bytes:
    return _AUTH_LABEL + hashlib.sha256(manifest).hexdigest().encode("ascii")


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _encode_row(part: Part, row: Sequence[Any]) -> bytes:
    values = [_encode(kind, value) for kind, value in zip(part.kinds, row, strict=True)]
    return json.dumps(values, separators=(",", ":")).encode("ascii") + b"\n"


def _encode(kind: Kind, value: Any) -> object:
    if kind is Kind.OPTIONAL_INT:
        return None if value is None else int(value)
    if kind is Kind.INT:
        return int(value)
    if kind is Kind.BYTES:
        return base64.b64encode(bytes(value)).decode("ascii")
    if kind is Kind.UUID:
        return str(uuid.UUID(str(value)))
    return str(value)


def _decode_row(part: Part, line: bytes, number: int) -> Row:
    try:
        values = json.loads(line)
        if not isinstance(values, list) or not 0 <= len(part.kinds) - len(values) <= part.added:
            raise ValueError(f"expected {len(part.kinds)} values")
        values += [None] * (len(part.kinds) - len(values))
        return tuple(_decode(kind, value) for kind, value in zip(part.kinds, values, strict=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise BackupDamagedError(
            f"part {part.member} line {number} is not a valid row ({exc}): the file was altered"
            " or damaged; use another copy"
        ) from None


def _decode(kind: Kind, value: object) -> object:
    if kind is Kind.OPTIONAL_INT and value is None:
        return None
    if kind in (Kind.INT, Kind.OPTIONAL_INT):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{value!r} is not an integer")
        return value
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    if kind is Kind.BYTES:
        return base64.b64decode(value, validate=True)
    if kind is Kind.UUID:
        return uuid.UUID(value)
    return value
