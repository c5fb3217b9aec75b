"""Several processes starting on an empty data directory share one key store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from domain.adapters.keystore_backends import SQLiteKeyStore
from domain.adapters.masterkeys import MasterKeyring
from domain.model.errors import NotFoundError

REPO_ROOT = Path(__file__).resolve().parents[2]


_WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from cryptography.hazmat.primitives.asymmetric import ec
    from domain.adapters.keystore_backends import SQLiteKeyStore
    from domain.adapters.masterkeys import MasterKeyring

    data_dir, worker = Path(sys.argv[1]), sys.argv[2]
    ring = MasterKeyring.load(data_dir, None)
    with SQLiteKeyStore(data_dir / "keys.sqlite3", ring) as store:
        for n in range(15):
            store.put(f"p{worker}-{n}", ec.generate_private_key(ec.SECP256R1()))
            store.get(f"p{worker}-{n}")
        store.destroy(f"p{worker}-0")
    print(ring.active_id)
    """
)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.mark.slow
def test_several_processes_can_start_on_an_empty_data_dir_and_share_the_store(
    data_dir: Path,
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(data_dir), str(w)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    results = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, [err for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1  # one master key for all

    with SQLiteKeyStore(data_dir / "keys.sqlite3", MasterKeyring.load(data_dir, None)) as store:
        for w in range(4):
            with pytest.raises(NotFoundError):
                store.get(f"p{w}-0")
            for n in range(1, 15):
                assert isinstance(store.get(f"p{w}-{n}"), ec.EllipticCurvePrivateKey)
