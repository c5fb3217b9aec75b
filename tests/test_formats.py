"""Certificate downloads, each read back with openssl, keytool or zipfile as a user would."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from domain.model.errors import ValidationError
from domain.pki.formats import (
    Download,
    DownloadFormat,
    DownloadMaterial,
    DownloadOptions,
    parse_format,
    render_download,
)

PASSWORD = "correct horse 42"
NAME = "www.example.com"
KEY_FORMATS = (
    DownloadFormat.PKCS8,
    DownloadFormat.PKCS12,
    DownloadFormat.JKS,
    DownloadFormat.NGINX,
    DownloadFormat.APACHE,
    DownloadFormat.TOMCAT,
    DownloadFormat.IIS,
)
PASSWORD_REQUIRED = (
    DownloadFormat.PKCS8,
    DownloadFormat.PKCS12,
    DownloadFormat.JKS,
    DownloadFormat.NGINX,
    DownloadFormat.APACHE,
)
CERTIFICATE_ONLY = (DownloadFormat.PEM, DownloadFormat.DER, DownloadFormat.PKCS7)


@dataclass(frozen=True)
class Chain:
    """A root, an intermediate under it and a leaf under that, with the leaf's key."""

    root: x509.Certificate
    intermediate: x509.Certificate
    leaf: x509.Certificate
    leaf_key: CertificateIssuerPrivateKeyTypes

    def material(self, *, with_key: bool = True) -> DownloadMaterial:
        return DownloadMaterial(
            name=NAME,
            certificate_der=self.leaf.public_bytes(Encoding.DER),
            chain_der=(
                self.intermediate.public_bytes(Encoding.DER),
                self.root.public_bytes(Encoding.DER),
            ),
            private_key=self.leaf_key if with_key else None,
        )

    def pem(self, certificate: x509.Certificate) -> str:
        return certificate.public_bytes(Encoding.PEM).decode("ascii")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    public_key: CertificatePublicKeyTypes,
    issuer: str,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    *,
    ca: bool,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _build_chain(leaf_key: CertificateIssuerPrivateKeyTypes) -> Chain:
    root_key = ec.generate_private_key(ec.SECP256R1())
    intermediate_key = ec.generate_private_key(ec.SECP256R1())
    root = _certificate("Test Root", root_key.public_key(), "Test Root", root_key, ca=True)
    intermediate = _certificate(
        "Test Issuing CA", intermediate_key.public_key(), "Test Root", root_key, ca=True
    )
    leaf = _certificate(NAME, leaf_key.public_key(), "Test Issuing CA", intermediate_key, ca=False)
    return Chain(root, intermediate, leaf, leaf_key)


@pytest.fixture(scope="module")
def ec_chain() -> Chain:
    return _build_chain(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def rsa_chain() -> Chain:
    return _build_chain(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(params=["ec", pytest.param("rsa", marks=pytest.mark.slow)])
def chain(request: pytest.FixtureRequest) -> Chain:
    """The EC P-256 leaf, then an RSA-2048 leaf (both under EC CAs)."""
    found: Chain = request.getfixturevalue(f"{request.param}_chain")
    return found


def _render(
    fmt: DownloadFormat,
    chain: Chain,
    *,
    password: str | None = PASSWORD,
    include_chain: bool = True,
) -> Download:
    return render_download(fmt, chain.material(), DownloadOptions(password, include_chain))


def _run(*args: str | Path, stdin: bytes = b"") -> str:
    """stdout and stderr of a command that must succeed."""
    done = subprocess.run([str(arg) for arg in args], input=stdin, capture_output=True, check=False)
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 0, output
    return output


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _certificate_public_key(certificate: x509.Certificate) -> str:
    """The SubjectPublicKeyInfo PEM as openssl reads it from the certificate."""
    return _run(
        "openssl", "x509", "-pubkey", "-noout", stdin=certificate.public_bytes(Encoding.PEM)
    )


def _key_public_key(key_file: Path, passin: str) -> str:
    """The public half of an encrypted key file as openssl decrypts it with ``passin``."""
    return _run("openssl", "pkey", "-in", key_file, "-passin", passin, "-pubout")


def _subjects(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("subject=")]


def _unzip(download: Download) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(io.BytesIO(download.body)) as archive:
        return {info.filename: info for info in archive.infolist()}


def _extract(download: Download, directory: Path) -> list[str]:
    """The member names in archive order, written into ``directory``."""
    with zipfile.ZipFile(io.BytesIO(download.body)) as archive:
        archive.extractall(directory)
        return archive.namelist()


def _mode(info: zipfile.ZipInfo) -> int:
    return (info.external_attr >> 16) & 0o777


# Certificates only


@pytest.mark.slow
def test_pem_lists_leaf_then_intermediate_then_root_and_verifies(
    ec_chain: Chain, tmp_path: Path
) -> None:
    download = _render(DownloadFormat.PEM, ec_chain, password=None)

    certificates = x509.load_pem_x509_certificates(download.body)
    assert certificates == [ec_chain.leaf, ec_chain.intermediate, ec_chain.root]
    bundle = _write(tmp_path / download.filename, download.body)
    root = _write(tmp_path / "root.pem", ec_chain.pem(ec_chain.root))
    leaf = _write(tmp_path / "leaf.pem", ec_chain.pem(ec_chain.leaf))
    assert ": OK" in _run("openssl", "verify", "-CAfile", root, "-untrusted", bundle, leaf)


def test_pem_without_chain_holds_the_leaf_alone(ec_chain: Chain) -> None:
    download = _render(DownloadFormat.PEM, ec_chain, include_chain=False)

    assert x509.load_pem_x509_certificates(download.body) == [ec_chain.leaf]
    assert b"PRIVATE KEY" not in download.body


@pytest.mark.slow
def test_der_is_the_leaf_alone_even_when_the_chain_is_asked_for(ec_chain: Chain) -> None:
    download = _render(DownloadFormat.DER, ec_chain, include_chain=True)

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
    download = _render(DownloadFormat.PKCS7, ec_chain, include_chain=include_chain)

    printed = _run("openssl", "pkcs7", "-inform", "DER", "-print_certs", stdin=download.body)
    # certificates is a DER SET OF, sorted by encoding: the order carries no meaning
    assert sorted(_subjects(printed)) == sorted(f"subject=CN = {cn}" for cn in expected)


@pytest.mark.parametrize("fmt", CERTIFICATE_ONLY)
def test_certificate_only_formats_need_no_key_and_no_password(
    ec_chain: Chain, fmt: DownloadFormat
) -> None:
    download = render_download(fmt, ec_chain.material(with_key=False), DownloadOptions(None))

    assert download.body


# Keys and keystores


@pytest.mark.slow
def test_pkcs8_key_opens_with_the_password_and_matches_the_certificate(
    chain: Chain, tmp_path: Path
) -> None:
    download = _render(DownloadFormat.PKCS8, chain)

    key_file = _write(tmp_path / download.filename, download.body)
    assert download.body.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert _key_public_key(key_file, f"pass:{PASSWORD}") == _certificate_public_key(chain.leaf)


@pytest.mark.slow
def test_pkcs8_key_uses_pbes2_with_pbkdf2_sha256_and_aes_256(
    ec_chain: Chain, tmp_path: Path
) -> None:
    download = _render(DownloadFormat.PKCS8, ec_chain)

    parsed = _run("openssl", "asn1parse", "-in", _write(tmp_path / "k.pem", download.body))
    for algorithm in (":PBES2", ":PBKDF2", ":hmacWithSHA256", ":aes-256-cbc"):
        assert algorithm in parsed
    assert ":0927C0" in parsed  # 600,000 PBKDF2 rounds


@pytest.mark.slow
def test_pkcs8_key_does_not_open_with_another_password(ec_chain: Chain, tmp_path: Path) -> None:
    download = _render(DownloadFormat.PKCS8, ec_chain)

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
    download = _render(DownloadFormat.PKCS12, chain)

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
    download = _render(DownloadFormat.PKCS12, chain, include_chain=include_chain)

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
    download = _render(DownloadFormat.JKS, chain, include_chain=include_chain)

    jks = _write(tmp_path / download.filename, download.body)
    listing = _run("keytool", "-list", "-v", "-keystore", jks, "-storepass", PASSWORD)
    assert f"Alias name: {NAME}" in listing
    assert "Entry type: PrivateKeyEntry" in listing
    assert f"Certificate chain length: {length}" in listing
    assert f"Owner: CN={NAME}" in listing


# Server presets


@pytest.mark.slow
def test_nginx_zip_holds_a_full_chain_without_root_and_an_encrypted_key_with_its_password(
    ec_chain: Chain, tmp_path: Path
) -> None:
    download = _render(DownloadFormat.NGINX, ec_chain)

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
    download = _render(DownloadFormat.APACHE, ec_chain)

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


def test_apache_zip_leaves_out_the_chain_file_when_no_chain_is_asked_for(ec_chain: Chain) -> None:
    download = _render(DownloadFormat.APACHE, ec_chain, include_chain=False)

    assert list(_unzip(download)) == [f"{NAME}.crt", f"{NAME}.key", f"{NAME}.pass.txt"]


@pytest.mark.slow
def test_tomcat_zip_generates_a_password_when_none_is_given_and_keytool_opens_the_keystore(
    ec_chain: Chain, tmp_path: Path
) -> None:
    download = _render(DownloadFormat.TOMCAT, ec_chain, password=None)

    members = _extract(download, tmp_path)
    assert members == [f"{NAME}.jks", "jks-password.txt"]
    password = (tmp_path / "jks-password.txt").read_text().removesuffix("\n")
    assert len(password) == 24
    listing = _run(
        "keytool", "-list", "-v", "-keystore", tmp_path / members[0], "-storepass", password
    )
    assert "Entry type: PrivateKeyEntry" in listing
    assert "Certificate chain length: 3" in listing


@pytest.mark.parametrize(
    ("fmt", "password_file"),
    [(DownloadFormat.TOMCAT, "jks-password.txt"), (DownloadFormat.IIS, "pfx-password.txt")],
)
def test_tomcat_and_iis_zips_use_the_password_given(
    ec_chain: Chain, fmt: DownloadFormat, password_file: str
) -> None:
    download = _render(fmt, ec_chain)

    with zipfile.ZipFile(io.BytesIO(download.body)) as archive:
        assert archive.read(password_file) == f"{PASSWORD}\n".encode()


@pytest.mark.slow
def test_iis_zip_holds_a_pfx_that_opens_with_the_generated_password(
    ec_chain: Chain, tmp_path: Path
) -> None:
    download = _render(DownloadFormat.IIS, ec_chain, password=None)

    members = _extract(download, tmp_path)
    assert members == [f"{NAME}.pfx", "pfx-password.txt"]
    passin = f"file:{tmp_path / 'pfx-password.txt'}"
    info = _run(
        "openssl", "pkcs12", "-info", "-noout", "-in", tmp_path / members[0], "-passin", passin
    )
    assert "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC" in info


@pytest.mark.parametrize(
    "fmt", [DownloadFormat.NGINX, DownloadFormat.APACHE, DownloadFormat.TOMCAT, DownloadFormat.IIS]
)
def test_zip_members_holding_keys_or_passwords_are_mode_0600_with_a_fixed_timestamp(
    ec_chain: Chain, fmt: DownloadFormat
) -> None:
    members = _unzip(_render(fmt, ec_chain))

    for name, info in members.items():
        secret = name.endswith((".key", ".txt", ".jks", ".pfx"))
        assert _mode(info) == (0o600 if secret else 0o644), name
        assert info.date_time == (1980, 1, 1, 0, 0, 0)


# File names and content types


@pytest.mark.parametrize(
    ("fmt", "filename", "content_type"),
    [
        (DownloadFormat.PEM, f"{NAME}.pem", "application/x-pem-file"),
        (DownloadFormat.DER, f"{NAME}.cer", "application/pkix-cert"),
        (DownloadFormat.PKCS8, f"{NAME}.key", "application/x-pem-file"),
        (DownloadFormat.PKCS12, f"{NAME}.p12", "application/x-pkcs12"),
        (DownloadFormat.JKS, f"{NAME}.jks", "application/x-java-keystore"),
        (DownloadFormat.PKCS7, f"{NAME}.p7b", "application/x-pkcs7-certificates"),
        (DownloadFormat.NGINX, f"{NAME}_nginx.zip", "application/zip"),
        (DownloadFormat.APACHE, f"{NAME}_apache.zip", "application/zip"),
        (DownloadFormat.TOMCAT, f"{NAME}_tomcat.zip", "application/zip"),
        (DownloadFormat.IIS, f"{NAME}_iis.zip", "application/zip"),
    ],
)
def test_each_format_has_its_file_name_and_content_type(
    ec_chain: Chain, fmt: DownloadFormat, filename: str, content_type: str
) -> None:
    download = _render(fmt, ec_chain)

    assert (download.filename, download.content_type) == (filename, content_type)


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("*.example.com", "_.example.com"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("-rf", "rf"),
        ("büro server", "b_ro_server"),
        ("", "certificate"),
        ("a" * 100, "a" * 64),
    ],
)
def test_file_names_keep_only_safe_characters(ec_chain: Chain, name: str, stem: str) -> None:
    material = DownloadMaterial(name, ec_chain.material().certificate_der, (), None)

    download = render_download(DownloadFormat.DER, material, DownloadOptions(None))

    assert download.filename == f"{stem}.cer"


def test_parse_format_accepts_any_case_and_lists_the_choices_otherwise() -> None:
    assert parse_format(" PKCS12 ") is DownloadFormat.PKCS12

    with pytest.raises(ValidationError, match="choose one of pem, der, pkcs8") as raised:
        parse_format("p12")
    assert raised.value.field == "format"


# Refusals


@pytest.mark.parametrize("fmt", KEY_FORMATS)
def test_formats_holding_a_key_are_refused_for_a_certificate_issued_from_a_csr(
    ec_chain: Chain, fmt: DownloadFormat
) -> None:
    options = DownloadOptions(PASSWORD)

    with pytest.raises(ValidationError, match="issued from a CSR") as raised:
        render_download(fmt, ec_chain.material(with_key=False), options)
    assert raised.value.field == "format"
    assert "pem, der or pkcs7" in raised.value.detail


@pytest.mark.parametrize("fmt", PASSWORD_REQUIRED)
def test_formats_holding_a_key_refuse_to_go_without_a_password(
    ec_chain: Chain, fmt: DownloadFormat
) -> None:
    with pytest.raises(ValidationError, match='send "password"') as raised:
        _render(fmt, ec_chain, password=None)
    assert raised.value.field == "password"


@pytest.mark.parametrize("fmt", KEY_FORMATS)
@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("seven77", "at least 8 characters"),
        ("", "at least 8 characters"),
        ("pässwört-long", "printable ASCII"),
        ("line\nbreak", "printable ASCII"),
    ],
)
def test_unusable_passwords_are_refused(
    ec_chain: Chain, fmt: DownloadFormat, password: str, reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason) as raised:
        _render(fmt, ec_chain, password=password)
    assert raised.value.field == "password"
