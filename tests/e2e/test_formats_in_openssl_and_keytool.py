"""Certificate downloads read back by openssl and keytool as a user would (keytool starts a JVM
per call, which is why these live with the end-to-end tests)."""

from __future__ import annotations

import io
import subprocess
import zipfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from domain.pki.formats import Download, DownloadFormat
from tests.unit.test_formats import NAME, PASSWORD, Chain, build_chain, render


@pytest.fixture(scope="module")
def ec_chain() -> Chain:
    return build_chain(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def rsa_chain() -> Chain:
    return build_chain(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(params=["ec", pytest.param("rsa", marks=pytest.mark.slow)])
def chain(request: pytest.FixtureRequest) -> Chain:
    """The EC P-256 leaf, then an RSA-2048 leaf (both under EC CAs)."""
    found: Chain = request.getfixturevalue(f"{request.param}_chain")
    return found


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _subjects(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("subject=")]


def _extract(download: Download, directory: Path) -> list[str]:
    """The member names in archive order, written into ``directory``."""
    with zipfile.ZipFile(io.BytesIO(download.body)) as archive:
        archive.extractall(directory)
        return archive.namelist()


def _run(*args: str | Path, stdin: bytes = b"") -> str:
    """stdout and stderr of a command that must succeed."""
    done = subprocess.run([str(arg) for arg in args], input=stdin, capture_output=True, check=False)
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 0, output
    return output


def _certificate_public_key(certificate: x509.Certificate) -> str:
    """The SubjectPublicKeyInfo PEM as openssl reads it from the certificate."""
    return _run(
        "openssl", "x509", "-pubkey", "-noout", stdin=certificate.public_bytes(Encoding.PEM)
    )


def _key_public_key(key_file: Path, passin: str) -> str:
    """The public half of an encrypted key file as openssl decrypts it with ``passin``."""
    return _run("openssl", "pkey", "-in", key_file, "-passin", passin, "-pubout")


@pytest.mark.slow
def test_pem_lists_leaf_then_intermediate_then_root_and_verifies(
    ec_chain: Chain, tmp_path: Path
) -> None:
    download = render(DownloadFormat.PEM, ec_chain, password=None)

    certificates = x509.load_pem_x509_certificates(download.body)
    assert certificates == [ec_chain.leaf, ec_chain.intermediate, ec_chain.root]
    bundle = _write(tmp_path / download.filename, download.body)
    root = _write(tmp_path / "root.pem", ec_chain.pem(ec_chain.root))
    leaf = _write(tmp_path / "leaf.pem", ec_chain.pem(ec_chain.leaf))
    assert ": OK" in _run("openssl", "verify", "-CAfile", root, "-untrusted", bundle, leaf)


@pytest.mark.slow
def test_der_is_the_leaf_alone_even_when_the_chain_is_asked_for(ec_chain: Chain) -> None:
    download = render(DownloadFormat.DER, ec_chain, include_chain=True)

    printed = _run("openssl", "x509", "-inform", "DER", "-noout", "-subject", stdin=download.body)
    assert printed.strip() == f"subject=CN = {NAME}"
    assert download.body == ec_chain.leaf.public_bytes(Encoding.DER)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("include_chain", "expected"),
    [(True, [NAME, "Test Issuing CA", "Test Root"]), (False, [NAME])],
)
def test_pkcs7_holds_the_leaf_and_the_chain_when_asked(
    ec_chain: Chain, include_chain: bool, expected: list[str]
) -> None:
    download = render(DownloadFormat.PKCS7, ec_chain, include_chain=include_chain)

    printed = _run("openssl", "pkcs7", "-inform", "DER", "-print_certs", stdin=download.body)
    # certificates is a DER SET OF, sorted by encoding: the order carries no meaning
    assert sorted(_subjects(printed)) == sorted(f"subject=CN = {cn}" for cn in expected)


@pytest.mark.slow
def test_pkcs8_key_opens_with_the_password_and_matches_the_certificate(
    chain: Chain, tmp_path: Path
) -> None:
    download = render(DownloadFormat.PKCS8, chain)

    key_file = _write(tmp_path / download.filename, download.body)
    assert download.body.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert _key_public_key(key_file, f"pass:{PASSWORD}") == _certificate_public_key(chain.leaf)


@pytest.mark.slow
def test_pkcs8_key_uses_pbes2_with_pbkdf2_sha256_and_aes_256(
    ec_chain: Chain, tmp_path: Path
) -> None:
    download = render(DownloadFormat.PKCS8, ec_chain)

    parsed = _run("openssl", "asn1parse", "-in", _write(tmp_path / "k.pem", download.body))
    for algorithm in (":PBES2", ":PBKDF2", ":hmacWithSHA256", ":aes-256-cbc"):
        assert algorithm in parsed
    assert ":0927C0" in parsed  # 600,000 PBKDF2 rounds


@pytest.mark.slow
def test_pkcs8_key_does_not_open_with_another_password(ec_chain: Chain, tmp_path: Path) -> None:
    download = render(DownloadFormat.PKCS8, ec_chain)

    key_file = _write(tmp_path / "k.pem", download.body)
    done = subprocess.run(
        ["openssl", "pkey", "-in", key_file, "-passin", "pass:not the password"],
        capture_output=True,
        check=False,
    )
    assert done.returncode != 0
    assert b"PRIVATE KEY" not in done.stdout


@pytest.mark.slow
def test_pkcs12_uses_aes_256_and_a_sha256_mac_and_no_legacy_cipher(
    chain: Chain, tmp_path: Path
) -> None:
    download = render(DownloadFormat.PKCS12, chain)

    p12 = _write(tmp_path / download.filename, download.body)
    info = _run("openssl", "pkcs12", "-info", "-noout", "-in", p12, "-passin", f"pass:{PASSWORD}")
    assert "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC" in info
    assert "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC" in info
    assert "MAC: sha256" in info
    for legacy in ("RC2", "3DES", "DES-EDE", "pbeWithSHA1"):
        assert legacy not in info


@pytest.mark.slow
@pytest.mark.parametrize(("include_chain", "count"), [(True, 3), (False, 1)])
def test_pkcs12_holds_the_key_for_the_leaf_and_the_chain_when_asked(
    chain: Chain, tmp_path: Path, include_chain: bool, count: int
) -> None:
    download = render(DownloadFormat.PKCS12, chain, include_chain=include_chain)

    p12 = _write(tmp_path / download.filename, download.body)
    certificates = _run("openssl", "pkcs12", "-in", p12, "-nokeys", "-passin", f"pass:{PASSWORD}")
    key = _run("openssl", "pkcs12", "-in", p12, "-nocerts", "-noenc", "-passin", f"pass:{PASSWORD}")
    key_file = _write(tmp_path / "key.pem", key)
    assert certificates.count("-----BEGIN CERTIFICATE-----") == count
    assert _key_public_key(key_file, "pass:") == _certificate_public_key(chain.leaf)


@pytest.mark.slow
@pytest.mark.parametrize(("include_chain", "length"), [(True, 3), (False, 1)])
def test_jks_lists_a_private_key_entry_with_its_chain_in_keytool(
    chain: Chain, tmp_path: Path, include_chain: bool, length: int
) -> None:
    download = render(DownloadFormat.JKS, chain, include_chain=include_chain)

    jks = _write(tmp_path / download.filename, download.body)
    listing = _run("keytool", "-list", "-v", "-keystore", jks, "-storepass", PASSWORD)
    assert f"Alias name: {NAME}" in listing
    assert "Entry type: PrivateKeyEntry" in listing
    assert f"Certificate chain length: {length}" in listing
    assert f"Owner: CN={NAME}" in listing


@pytest.mark.slow
def test_nginx_zip_holds_a_full_chain_without_root_and_an_encrypted_key_with_its_password(
    ec_chain: Chain, tmp_path: Path
) -> None:
    download = render(DownloadFormat.NGINX, ec_chain)

    members = _extract(download, tmp_path)
    assert members == [f"{NAME}.pem", f"{NAME}.key", f"{NAME}.pass.txt"]
    fullchain = (tmp_path / f"{NAME}.pem").read_bytes()
    assert x509.load_pem_x509_certificates(fullchain) == [ec_chain.leaf, ec_chain.intermediate]
    root = _write(tmp_path / "root.pem", ec_chain.pem(ec_chain.root))
    leaf = _write(tmp_path / "leaf.pem", ec_chain.pem(ec_chain.leaf))
    verified = _run("openssl", "verify", "-CAfile", root, "-untrusted", tmp_path / members[0], leaf)
    assert ": OK" in verified
    assert (tmp_path / f"{NAME}.pass.txt").read_text() == f"{PASSWORD}\n"
    public_key = _key_public_key(tmp_path / f"{NAME}.key", f"file:{tmp_path / members[2]}")
    assert public_key == _certificate_public_key(ec_chain.leaf)


@pytest.mark.slow
def test_apache_zip_holds_certificate_chain_and_encrypted_key_with_its_password(
    ec_chain: Chain, tmp_path: Path
) -> None:
    download = render(DownloadFormat.APACHE, ec_chain)

    members = _extract(download, tmp_path)
    assert members == [f"{NAME}.crt", f"{NAME}_chain.crt", f"{NAME}.key", f"{NAME}.pass.txt"]
    certificate, chain_file, key_file, pass_file = (tmp_path / member for member in members)
    assert x509.load_pem_x509_certificates(certificate.read_bytes()) == [ec_chain.leaf]
    assert x509.load_pem_x509_certificates(chain_file.read_bytes()) == [ec_chain.intermediate]
    root = _write(tmp_path / "root.pem", ec_chain.pem(ec_chain.root))
    verified = _run("openssl", "verify", "-CAfile", root, "-untrusted", chain_file, certificate)
    assert ": OK" in verified
    public_key = _key_public_key(key_file, f"file:{pass_file}")
    assert public_key == _certificate_public_key(ec_chain.leaf)


@pytest.mark.slow
def test_tomcat_zip_generates_a_password_when_none_is_given_and_keytool_opens_the_keystore(
    ec_chain: Chain, tmp_path: Path
) -> None:
    download = render(DownloadFormat.TOMCAT, ec_chain, password=None)

    members = _extract(download, tmp_path)
    assert members == [f"{NAME}.jks", "jks-password.txt"]
    password = (tmp_path / "jks-password.txt").read_text().removesuffix("\n")
    assert len(password) == 24
    listing = _run(
        "keytool", "-list", "-v", "-keystore", tmp_path / members[0], "-storepass", password
    )
    assert "Entry type: PrivateKeyEntry" in listing
    assert "Certificate chain length: 3" in listing


@pytest.mark.slow
def test_iis_zip_holds_a_pfx_that_opens_with_the_generated_password(
    ec_chain: Chain, tmp_path: Path
) -> None:
    download = render(DownloadFormat.IIS, ec_chain, password=None)

    members = _extract(download, tmp_path)
    assert members == [f"{NAME}.pfx", "pfx-password.txt"]
    passin = f"file:{tmp_path / 'pfx-password.txt'}"
    info = _run(
        "openssl", "pkcs12", "-info", "-noout", "-in", tmp_path / members[0], "-passin", passin
    )
    assert "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC" in info
