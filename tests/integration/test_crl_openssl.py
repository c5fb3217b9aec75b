"""Our CRLs read by openssl, the independent reader: printed, honoured by ``openssl verify
-crl_check``, and combined with their base under ``-use_deltas``."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from domain.model.values import KeyAlgorithm, RevocationReason
from domain.pki import crl
from domain.pki.crl import EncodedRevocationList, RevokedEntry
from tests.pki import NOW, Pki, make_pki, write_pem
from tests.unit.test_crl_encoding import DELTA_URL, NEXT_UPDATE, THIS_UPDATE


@pytest.fixture(scope="module")
def ec_pki() -> Pki:
    return make_pki(KeyAlgorithm.EC_P256)


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)


def _write_crl(path: Path, der_bytes: bytes) -> Path:
    path.write_bytes(x509.load_der_x509_crl(der_bytes).public_bytes(Encoding.PEM))
    return path


@pytest.fixture
def pki_files(ec_pki: Pki, tmp_path: Path) -> Callable[[bytes, str], Path]:
    """Writes the chain and leaves to ``tmp_path``; returns a writer of CRLs as PEM files."""
    write_pem(tmp_path / "root.pem", ec_pki.root)
    write_pem(tmp_path / "intermediate.pem", ec_pki.intermediate)
    write_pem(tmp_path / "revoked.pem", ec_pki.leaves[0])
    write_pem(tmp_path / "fine.pem", ec_pki.leaves[1])
    return lambda der_bytes, name: _write_crl(tmp_path / name, der_bytes)


def _verify(tmp_path: Path, leaf: str, *crl_files: Path, deltas: bool = False) -> str:
    options = [arg for path in crl_files for arg in ("-CRLfile", str(path))]
    result = _openssl(
        "verify",
        "-crl_check",
        *(["-use_deltas"] if deltas else []),
        "-attime",
        str(int(NOW.timestamp())),
        "-CAfile",
        tmp_path / "root.pem",
        "-untrusted",
        tmp_path / "intermediate.pem",
        *options,
        tmp_path / leaf,
    )
    return result.stdout + result.stderr


def _revoked_leaf_entry(pki: Pki) -> RevokedEntry:
    return RevokedEntry(pki.leaves[0].serial_number, NOW, RevocationReason.KEY_COMPROMISE)


@pytest.mark.slow
def test_openssl_prints_the_crl_fields(ec_pki: Pki, tmp_path: Path) -> None:
    path = tmp_path / "delta.der"
    path.write_bytes(
        crl.build_crl(
            ec_pki.intermediate,
            ec_pki.intermediate_key,
            EncodedRevocationList([_revoked_leaf_entry(ec_pki)]),
            8,
            THIS_UPDATE,
            NEXT_UPDATE,
            delta_of=7,
            idp_url=ec_pki.urls.crl,
        )
    )
    result = _openssl("crl", "-inform", "DER", "-in", path, "-text", "-noout")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "CRL Number: \n                8" in text
    assert "Delta CRL Indicator: critical\n                7" in text
    assert f"URI:{ec_pki.urls.crl}" in text
    assert f"{ec_pki.leaves[0].serial_number:040X}" in text
    assert "Key Compromise" in text


@pytest.mark.slow
def test_openssl_verify_rejects_the_listed_leaf_and_accepts_the_other(
    ec_pki: Pki, tmp_path: Path, pki_files: Callable[[bytes, str], Path]
) -> None:
    revocations = EncodedRevocationList([_revoked_leaf_entry(ec_pki)])
    crl_file = pki_files(
        crl.build_crl(
            ec_pki.intermediate,
            ec_pki.intermediate_key,
            revocations,
            2,
            THIS_UPDATE,
            NEXT_UPDATE,
        ),
        "issuing.crl",
    )
    assert "certificate revoked" in _verify(tmp_path, "revoked.pem", crl_file)
    assert _verify(tmp_path, "fine.pem", crl_file).startswith(f"{tmp_path / 'fine.pem'}: OK")


@pytest.mark.slow
def test_openssl_applies_a_delta_crl_on_top_of_its_base(
    ec_pki: Pki, tmp_path: Path, pki_files: Callable[[bytes, str], Path]
) -> None:
    issuer, key, idp = ec_pki.intermediate, ec_pki.intermediate_key, ec_pki.urls.crl
    base = crl.build_crl(
        issuer, key, b"", 1, THIS_UPDATE, NEXT_UPDATE, freshest_url=DELTA_URL, idp_url=idp
    )
    delta = crl.build_crl(
        issuer,
        key,
        EncodedRevocationList([_revoked_leaf_entry(ec_pki)]),
        2,
        THIS_UPDATE,
        NEXT_UPDATE,
        delta_of=1,
        idp_url=idp,
    )
    base_file, delta_file = pki_files(base, "base.crl"), pki_files(delta, "delta.crl")
    assert ": OK" in _verify(tmp_path, "revoked.pem", base_file)
    assert "certificate revoked" in _verify(
        tmp_path, "revoked.pem", base_file, delta_file, deltas=True
    )
    assert ": OK" in _verify(tmp_path, "fine.pem", base_file, delta_file, deltas=True)
