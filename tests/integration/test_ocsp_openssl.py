"""OCSP with openssl on the other end: requests made by ``openssl ocsp`` parse, and our
responses verify with ``openssl ocsp -respin`` against the root, through the intermediate,
with the delegated responder certificate carried in the response."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp as x509_ocsp

from domain.model.values import KeyAlgorithm, RevocationReason
from domain.pki import ocsp
from domain.pki.ocsp import Good, MalformedOCSPRequest, Revoked, Unknown
from tests.pki import Pki, make_pki, write_pem
from tests.unit.test_ocsp_encoding import (
    NEXT_UPDATE,
    NOW,
    REVOKED_AT,
    THIS_UPDATE,
    Responder,
    delegated_responder,
)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki(KeyAlgorithm.EC_P256, now=NOW)


@pytest.fixture(scope="module")
def responder(pki: Pki) -> Responder:
    return delegated_responder(pki)


@pytest.fixture(scope="module")
def files(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding root.pem, intermediate.pem, revoked.pem and fine.pem."""
    directory = tmp_path_factory.mktemp("ocsp")
    write_pem(directory / "root.pem", pki.root)
    write_pem(directory / "intermediate.pem", pki.intermediate)
    write_pem(directory / "revoked.pem", pki.leaves[0])
    write_pem(directory / "fine.pem", pki.leaves[1])
    return directory


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)


def openssl_request(files: Path, *leaves: str) -> bytes:
    """An OCSP request made by openssl (SHA-1 CertIDs, a 16-octet nonce) for ``leaves``."""
    out = files / "request.der"
    cert_args = [arg for leaf in leaves for arg in ("-cert", files / leaf)]
    result = openssl("ocsp", "-issuer", files / "intermediate.pem", *cert_args, "-reqout", out)
    assert result.returncode == 0, result.stderr
    return out.read_bytes()


@pytest.mark.slow
def test_parses_an_openssl_request_with_its_nonce(pki: Pki, files: Path) -> None:
    query = ocsp.parse_request(openssl_request(files, "revoked.pem"))
    assert query.serial_number == pki.leaves[0].serial_number
    assert isinstance(query.hash_algorithm, hashes.SHA1)
    assert query.nonce is not None
    assert len(query.nonce) == 16
    assert ocsp.asks_about(query, pki.intermediate)


@pytest.mark.slow
def test_unreadable_requests_are_malformed(pki: Pki, files: Path) -> None:
    valid = openssl_request(files, "revoked.pem")
    for garbage in (b"", b"\x30\x03\x02\x01", b"GET / HTTP/1.1\r\n", valid[:-3], valid + b"\x00"):
        with pytest.raises(MalformedOCSPRequest, match="cannot be read"):
            ocsp.parse_request(garbage)


@pytest.mark.slow
def test_a_request_for_several_certificates_is_malformed(files: Path) -> None:
    with pytest.raises(MalformedOCSPRequest):
        ocsp.parse_request(openssl_request(files, "revoked.pem", "fine.pem"))


def _openssl_check(files: Path, leaf: str, response: bytes) -> str:
    """openssl's verdict on ``response`` for ``leaf``: signature, chain, status and times."""
    (files / "response.der").write_bytes(response)
    result = openssl(
        "ocsp",
        "-respin",
        files / "response.der",
        "-CAfile",
        files / "root.pem",
        "-verify_other",
        files / "intermediate.pem",
        "-issuer",
        files / "intermediate.pem",
        "-cert",
        files / leaf,
        "-no_nonce",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("leaf", "status", "verdict"),
    [
        ("revoked.pem", Revoked(REVOKED_AT, RevocationReason.KEY_COMPROMISE), "revoked"),
        ("fine.pem", Good(), "good"),
        ("fine.pem", Unknown(), "unknown"),
    ],
)
def test_openssl_verifies_the_delegated_response(
    pki: Pki,
    responder: Responder,
    files: Path,
    leaf: str,
    status: ocsp.CertStatusAnswer,
    verdict: str,
) -> None:
    query = ocsp.parse_request(openssl_request(files, leaf))
    response = ocsp.respond(
        query, status, pki.intermediate, responder.cert, responder.key, THIS_UPDATE, NEXT_UPDATE
    )
    output = _openssl_check(files, leaf, response)
    assert "Response verify OK" in output
    assert f"{files / leaf}: {verdict}\n" in output
    assert "WARNING" not in output
    if verdict == "revoked":
        assert "Reason: keyCompromise" in output


@pytest.mark.slow
def test_openssl_matches_the_nonce_of_its_own_request(
    pki: Pki, responder: Responder, files: Path
) -> None:
    request = openssl_request(files, "fine.pem")
    response = ocsp.respond(
        ocsp.parse_request(request),
        Good(),
        pki.intermediate,
        responder.cert,
        responder.key,
        THIS_UPDATE,
        NEXT_UPDATE,
    )
    (files / "response.der").write_bytes(response)
    result = openssl(
        "ocsp",
        "-reqin",
        files / "request.der",
        "-respin",
        files / "response.der",
        "-CAfile",
        files / "root.pem",
        "-verify_other",
        files / "intermediate.pem",
    )
    assert result.returncode == 0, result.stderr
    assert "Response verify OK" in result.stderr
    assert "nonce" not in (result.stdout + result.stderr).lower()


@pytest.mark.slow
def test_openssl_reads_a_malformed_request_answer() -> None:
    result = subprocess.run(
        ["openssl", "ocsp", "-respin", "/dev/stdin", "-resp_text", "-noverify"],
        input=ocsp.error_response(x509_ocsp.OCSPResponseStatus.MALFORMED_REQUEST),
        capture_output=True,
        check=False,
    )
    assert b"malformedrequest (1)" in result.stdout.lower()
