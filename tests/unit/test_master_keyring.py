"""The master keyring: key ids, the owner-only master.keys file, configured keys, rotation,
and AES-GCM wrapping bound to its context."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from domain.adapters.keystore_backends import SQLiteKeyStore
from domain.adapters.masterkeys import MASTER_KEYS_FILE, MasterKeyring, master_key_id
from domain.model.errors import KeyCustodyError


def pkcs8(key: PrivateKeyTypes) -> bytes:
    return key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def keyring_of(*keys: bytes) -> MasterKeyring:
    return MasterKeyring(list(keys))


@pytest.fixture
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def keyring(data_dir: Path) -> MasterKeyring:
    return MasterKeyring.load(data_dir, None)


@pytest.fixture
def db_path(data_dir: Path) -> Path:
    return data_dir / "keys.sqlite3"


def test_master_key_id_is_the_first_16_hex_chars_of_its_sha256() -> None:
    key = os.urandom(32)
    assert master_key_id(key) == hashlib.sha256(key).hexdigest()[:16]


def test_first_start_creates_an_owner_only_master_keys_file_with_one_key(
    data_dir: Path, keyring: MasterKeyring
) -> None:
    path = data_dir / MASTER_KEYS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    (line,) = path.read_text().splitlines()
    key_id, encoded = line.split(" ")
    assert key_id == keyring.active_id == master_key_id(base64.b64decode(encoded))


def test_restarting_loads_the_same_master_keys_file(data_dir: Path, keyring: MasterKeyring) -> None:
    again = MasterKeyring.load(data_dir, None)
    assert again.active_id == keyring.active_id
    assert again.key_ids == keyring.key_ids


def test_a_group_readable_master_keys_file_is_refused_with_chmod_advice(
    data_dir: Path, keyring: MasterKeyring
) -> None:
    path = data_dir / MASTER_KEYS_FILE
    path.chmod(0o640)
    with pytest.raises(KeyCustodyError, match=r"chmod 600"):
        MasterKeyring.load(data_dir, None)


def test_a_damaged_master_keys_file_is_refused(data_dir: Path, keyring: MasterKeyring) -> None:
    path = data_dir / MASTER_KEYS_FILE
    key_id, encoded = path.read_text().split()
    path.write_text(f"{key_id[::-1]} {encoded}\n")
    with pytest.raises(KeyCustodyError, match=r"damaged"):
        MasterKeyring.load(data_dir, None)


def test_configured_master_keys_make_the_first_active_and_keep_the_rest_readable(
    tmp_path: Path,
) -> None:
    old, new = os.urandom(32), os.urandom(32)
    old_id, blob = keyring_of(old).encrypt(b"secret", b"aad")

    ring = MasterKeyring.load(tmp_path / "unused", f" {b64(new)} , {b64(old)}")

    assert ring.active_id == master_key_id(new)
    assert ring.encrypt(b"x", b"aad")[0] == master_key_id(new)
    assert ring.decrypt(old_id, blob, b"aad") == b"secret"
    assert not (tmp_path / "unused").exists()


@pytest.mark.parametrize(
    "configured",
    [
        pytest.param("not base64 at all!", id="not-base64"),
        pytest.param(base64.b64encode(b"k" * 16).decode(), id="16-bytes"),
        pytest.param(base64.b64encode(b"k" * 33).decode(), id="33-bytes"),
        pytest.param(base64.b64encode(b"k" * 32).decode().rstrip("="), id="unpadded"),
        pytest.param(base64.urlsafe_b64encode(b"\xfb" * 32).decode(), id="urlsafe"),
        pytest.param(f"{base64.b64encode(b'k' * 32).decode()},", id="empty-second-entry"),
        pytest.param("", id="empty"),
    ],
)
def test_an_unusable_configured_master_key_is_refused_saying_how_to_make_one(
    tmp_path: Path, configured: str
) -> None:
    with pytest.raises(KeyCustodyError, match=r"PCA_MASTER_KEY") as caught:
        MasterKeyring.load(tmp_path, configured)
    assert "python -c" in caught.value.detail
    if configured:
        assert configured not in caught.value.detail


def test_decrypting_with_a_missing_master_key_is_refused_naming_it() -> None:
    key_id, blob = keyring_of(os.urandom(32)).encrypt(b"secret", b"aad")
    with pytest.raises(KeyCustodyError, match=key_id):
        keyring_of(os.urandom(32)).decrypt(key_id, blob, b"aad")


def test_a_ciphertext_that_was_altered_or_moved_to_other_aad_is_refused() -> None:
    ring = keyring_of(os.urandom(32))
    key_id, blob = ring.encrypt(b"secret", b"key-a")
    altered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(KeyCustodyError, match=r"authentication"):
        ring.decrypt(key_id, altered, b"key-a")
    with pytest.raises(KeyCustodyError, match=r"authentication"):
        ring.decrypt(key_id, blob, b"key-b")


def test_keyring_repr_does_not_reveal_key_material() -> None:
    key = os.urandom(32)
    text = repr(keyring_of(key))
    assert b64(key) not in text
    assert key.hex() not in text


def test_rotation_appends_an_active_key_to_the_owner_only_file(
    data_dir: Path, keyring: MasterKeyring
) -> None:
    old_id = keyring.active_id
    new_id = keyring.rotate(data_dir)

    path = data_dir / MASTER_KEYS_FILE
    assert [line.split()[0] for line in path.read_text().splitlines()] == [old_id, new_id]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keyring.active_id == new_id
    assert MasterKeyring.load(data_dir, None).active_id == new_id
    assert not [p for p in data_dir.iterdir() if p.name.endswith(".tmp")]


def test_rotation_is_refused_for_a_configured_keyring_advising_to_prepend(tmp_path: Path) -> None:
    ring = MasterKeyring.load(tmp_path, b64(os.urandom(32)))
    with pytest.raises(KeyCustodyError, match=r"prepend a new key to PCA_MASTER_KEY"):
        ring.rotate(tmp_path)
    assert not (tmp_path / MASTER_KEYS_FILE).exists()


def test_a_keyring_loaded_before_a_rotation_reads_keys_written_after_it(
    data_dir: Path, db_path: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    rotating = MasterKeyring.load(data_dir, None)
    stale = MasterKeyring.load(data_dir, None)
    rotating.rotate(data_dir)
    with SQLiteKeyStore(db_path, rotating) as writer, SQLiteKeyStore(db_path, stale) as reader:
        writer.put("leaf", ec_key)
        assert pkcs8(reader.get("leaf")) == pkcs8(ec_key)
