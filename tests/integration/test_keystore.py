"""Key custody: the SQLite and PostgreSQL key stores (the master keyring alone:
tests/unit/test_master_keyring.py)."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from psycopg import sql

from domain.adapters.keystore import KeyStore
from domain.adapters.keystore_backends import PostgresKeyStore, SQLiteKeyStore
from domain.adapters.masterkeys import MASTER_KEYS_FILE, MasterKeyring
from domain.model.errors import KeyCustodyError, NotFoundError
from tests.unit.test_master_keyring import keyring_of, pkcs8

StoreFactory = Callable[[MasterKeyring], KeyStore]


def fresh_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


# --- fixtures ---------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def ec_key() -> ec.EllipticCurvePrivateKey:
    return fresh_ec_key()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def keyring(data_dir: Path) -> MasterKeyring:
    return MasterKeyring.load(data_dir, None)


@pytest.fixture
def db_path(data_dir: Path) -> Path:
    return data_dir / "keys.sqlite3"


@pytest.fixture(params=["sqlite", "postgres"])
def make_store(request: pytest.FixtureRequest, db_path: Path) -> Iterator[StoreFactory]:
    """Open stores that share one backing storage, each with the keyring given."""
    opened: list[KeyStore] = []
    if request.param == "sqlite":

        def open_store(ring: MasterKeyring) -> KeyStore:
            opened.append(SQLiteKeyStore(db_path, ring))
            return opened[-1]

    else:
        url: str = request.getfixturevalue("postgres_url")
        schema: str = request.getfixturevalue("pg_schema")

        def open_store(ring: MasterKeyring) -> KeyStore:
            opened.append(PostgresKeyStore(url, ring, schema=schema))
            return opened[-1]

    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def sqlite_store(db_path: Path, keyring: MasterKeyring) -> Iterator[SQLiteKeyStore]:
    with SQLiteKeyStore(db_path, keyring) as store:
        yield store


def sqlite_file_bytes(db_path: Path) -> bytes:
    """Everything SQLite keeps on disk for the store: main file, WAL and shared memory."""
    parts = [
        db_path,
        db_path.with_name(db_path.name + "-wal"),
        db_path.with_name(db_path.name + "-shm"),
    ]
    return b"".join(p.read_bytes() for p in parts if p.exists())


# --- key stores, both backends ---------------------------------------------


def test_rsa_and_ec_keys_come_back_as_they_went_in(
    make_store: StoreFactory,
    keyring: MasterKeyring,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    writer = make_store(keyring)
    writer.put("ca-rsa", rsa_key)
    writer.put("leaf-ec", ec_key)

    reader = make_store(keyring)  # a fresh store: nothing cached
    assert pkcs8(reader.get("ca-rsa")) == pkcs8(rsa_key)
    assert pkcs8(reader.get("leaf-ec")) == pkcs8(ec_key)
    assert isinstance(reader.get("ca-rsa"), rsa.RSAPrivateKey)
    assert isinstance(reader.get("leaf-ec"), ec.EllipticCurvePrivateKey)


def test_getting_an_unknown_key_raises_not_found_naming_it(
    make_store: StoreFactory, keyring: MasterKeyring
) -> None:
    with pytest.raises(NotFoundError, match=r"'nope'.*destroyed"):
        make_store(keyring).get("nope")


def test_a_key_id_cannot_be_stored_twice(
    make_store: StoreFactory, keyring: MasterKeyring, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    store = make_store(keyring)
    store.put("leaf", ec_key)
    with pytest.raises(KeyCustodyError, match=r"among 'leaf' is already stored"):
        store.put("leaf", fresh_ec_key())
    assert pkcs8(make_store(keyring).get("leaf")) == pkcs8(ec_key)


def test_a_store_opened_with_another_master_key_cannot_read_the_keys(
    make_store: StoreFactory, keyring: MasterKeyring, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    make_store(keyring).put("leaf", ec_key)
    stranger = make_store(keyring_of(os.urandom(32)))
    with pytest.raises(KeyCustodyError, match=r"'leaf'.*not in the keyring"):
        stranger.get("leaf")


def test_rotation_keeps_old_keys_readable_and_writes_new_keys_under_the_new_master_key(
    make_store: StoreFactory,
    data_dir: Path,
    keyring: MasterKeyring,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    store = make_store(keyring)
    store.put("before", ec_key)
    new_id = keyring.rotate(data_dir)
    after = fresh_ec_key()
    store.put("after", after)

    reopened = make_store(MasterKeyring.load(data_dir, None))
    assert pkcs8(reopened.get("before")) == pkcs8(ec_key)
    only_new = make_store(MasterKeyring([_raw_key(data_dir, new_id)]))
    assert pkcs8(only_new.get("after")) == pkcs8(after)
    with pytest.raises(KeyCustodyError):
        only_new.get("before")


def test_rewrap_all_moves_every_key_to_the_active_master_key_so_the_old_one_can_go(
    make_store: StoreFactory,
    data_dir: Path,
    keyring: MasterKeyring,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    store = make_store(keyring)
    store.put("ca", rsa_key)
    store.put("leaf", ec_key)
    new_id = keyring.rotate(data_dir)
    store.put("newer", fresh_ec_key())

    assert store.rewrap_all() == 2
    assert store.rewrap_all() == 0

    only_new = make_store(MasterKeyring([_raw_key(data_dir, new_id)]))
    assert pkcs8(only_new.get("ca")) == pkcs8(rsa_key)
    assert pkcs8(only_new.get("leaf")) == pkcs8(ec_key)


def test_rewrap_all_changes_nothing_when_a_record_cannot_be_decrypted(
    make_store: StoreFactory, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    lost, kept, new = os.urandom(32), os.urandom(32), os.urandom(32)
    make_store(keyring_of(kept)).put("fine", ec_key)  # first, so it is rewrapped first
    make_store(keyring_of(lost)).put("orphan", fresh_ec_key())

    with pytest.raises(KeyCustodyError, match=r"'orphan'"):
        make_store(keyring_of(new, kept)).rewrap_all()

    with pytest.raises(KeyCustodyError):  # "fine" is still under the kept key
        make_store(keyring_of(new)).get("fine")
    assert pkcs8(make_store(keyring_of(kept)).get("fine")) == pkcs8(ec_key)


def test_a_destroyed_key_is_gone_for_every_store(
    make_store: StoreFactory, keyring: MasterKeyring, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    store = make_store(keyring)
    store.put("leaf", ec_key)
    assert pkcs8(store.get("leaf")) == pkcs8(ec_key)

    assert store.destroy("leaf") is True
    assert store.destroy("leaf") is False
    with pytest.raises(NotFoundError, match=r"'leaf'"):
        store.get("leaf")
    with pytest.raises(NotFoundError):
        make_store(keyring).get("leaf")


def test_a_key_destroyed_by_another_store_is_dropped_from_this_one_only_on_its_own_destroy(
    make_store: StoreFactory, keyring: MasterKeyring, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    """Documents the cache: a key already read stays usable in that store's memory."""
    first, second = make_store(keyring), make_store(keyring)
    first.put("leaf", ec_key)
    assert pkcs8(second.get("leaf")) == pkcs8(ec_key)
    first.destroy("leaf")
    assert pkcs8(second.get("leaf")) == pkcs8(ec_key)
    assert second.destroy("leaf") is False
    with pytest.raises(NotFoundError):
        second.get("leaf")


def _raw_key(data_dir: Path, key_id: str) -> bytes:
    for line in (data_dir / MASTER_KEYS_FILE).read_text().splitlines():
        found_id, encoded = line.split()
        if found_id == key_id:
            return base64.b64decode(encoded)
    raise AssertionError(f"{key_id} not in master.keys")


# --- SQLite on disk ---------------------------------------------------------


def test_the_sqlite_file_is_created_owner_only(
    sqlite_store: SQLiteKeyStore, db_path: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    sqlite_store.put("leaf", ec_key)
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    for suffix in ("-wal", "-shm"):
        side = db_path.with_name(db_path.name + suffix)
        if side.exists():
            assert stat.S_IMODE(side.stat().st_mode) & 0o077 == 0


def test_the_sqlite_files_hold_no_private_key_in_any_encoding(
    sqlite_store: SQLiteKeyStore,
    db_path: Path,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    sqlite_store.put("ca", rsa_key)
    sqlite_store.put("leaf", ec_key)
    on_disk = sqlite_file_bytes(db_path)

    assert b"pca_keys" in on_disk  # we are looking at the right files
    assert b"PRIVATE KEY" not in on_disk
    for key in (rsa_key, ec_key):
        assert pkcs8(key) not in on_disk
        assert (
            key.private_bytes(Encoding.DER, PrivateFormat.TraditionalOpenSSL, NoEncryption())
            not in on_disk
        )
    d = rsa_key.private_numbers().d
    assert d.to_bytes((d.bit_length() + 7) // 8, "big") not in on_disk
    assert ec_key.private_numbers().private_value.to_bytes(32, "big") not in on_disk


def test_a_destroyed_key_leaves_no_trace_in_the_sqlite_files(
    sqlite_store: SQLiteKeyStore,
    db_path: Path,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    sqlite_store.put("ca", rsa_key)
    sqlite_store.put("leaf", ec_key)
    with sqlite3.connect(db_path) as raw:
        (blob,) = raw.execute("SELECT blob FROM pca_keys WHERE key_id = 'leaf'").fetchone()
    raw.close()
    assert blob in sqlite_file_bytes(db_path)

    assert sqlite_store.destroy("leaf")

    on_disk = sqlite_file_bytes(db_path)
    assert blob not in on_disk
    assert blob[-16:] not in on_disk  # not even the GCM tag
    assert pkcs8(ec_key) not in on_disk
    assert pkcs8(sqlite_store.get("ca")) == pkcs8(rsa_key)


def test_rewrap_leaves_no_copy_wrapped_under_the_old_master_key(
    sqlite_store: SQLiteKeyStore,
    db_path: Path,
    data_dir: Path,
    keyring: MasterKeyring,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    sqlite_store.put("leaf", ec_key)
    with sqlite3.connect(db_path) as raw:
        (old_blob,) = raw.execute("SELECT blob FROM pca_keys").fetchone()
    raw.close()
    keyring.rotate(data_dir)

    assert sqlite_store.rewrap_all() == 1
    assert old_blob not in sqlite_file_bytes(db_path)


def test_one_sqlite_store_serves_many_threads(
    sqlite_store: SQLiteKeyStore, keyring: MasterKeyring
) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(10):
                key = fresh_ec_key()
                sqlite_store.put(f"t{worker}-{n}", key)
                assert pkcs8(sqlite_store.get(f"t{worker}-{n}")) == pkcs8(key)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


# --- PostgreSQL specifics ---------------------------------------------------


def test_the_postgres_store_creates_its_table_in_the_schema_it_is_given(
    postgres_url: str, pg_schema: str, keyring: MasterKeyring, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    with PostgresKeyStore(postgres_url, keyring, schema=pg_schema) as store:
        store.put("leaf", ec_key)
    with PostgresKeyStore(postgres_url, keyring, schema=pg_schema) as store:
        assert pkcs8(store.get("leaf")) == pkcs8(ec_key)
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'pca_keys'"
        ).fetchall()
        query = sql.SQL("SELECT blob FROM {}").format(sql.Identifier(pg_schema, "pca_keys"))
        (blob,) = conn.execute(query).fetchone() or (b"",)
    assert (pg_schema,) in rows
    assert pkcs8(ec_key) not in bytes(blob)


def test_rotating_the_master_key_re_encrypts_every_stored_key(
    data_dir: Path, db_path: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    keyring = MasterKeyring.load(data_dir, None)
    old_id = keyring.active_id
    with SQLiteKeyStore(db_path, keyring) as store:
        store.put("ca-1", ec_key)
        new_id, rewritten = store.rotate_master_key(data_dir)
    assert (new_id != old_id, rewritten) == (True, 1)
    only_new = MasterKeyring.load(data_dir, None)
    assert only_new.active_id == new_id
    with SQLiteKeyStore(db_path, keyring_of(_last_key(data_dir))) as reopened:
        assert pkcs8(reopened.get("ca-1")) == pkcs8(ec_key)


def _last_key(data_dir: Path) -> bytes:
    line = (data_dir / MASTER_KEYS_FILE).read_text().strip().splitlines()[-1]
    return base64.b64decode(line.split()[1])
