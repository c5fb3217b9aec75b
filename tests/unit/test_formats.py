"""Certificate downloads, read back with cryptography and zipfile; openssl and keytool read
them in tests/e2e/test_formats_in_openssl_and_keytool.py."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from dataclasses import dataclass

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


def build_chain(leaf_key: CertificateIssuerPrivateKeyTypes) -> Chain:
    """EC root and intermediate CAs above a leaf for ``leaf_key``, valid from now."""
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
    return build_chain(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture(scope="module")
def rsa_chain() -> Chain:
    return build_chain(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(params=["ec", pytest.param("rsa", marks=pytest.mark.slow)])
def chain(request: pytest.FixtureRequest) -> Chain:
    """The EC P-256 leaf, then an RSA-2048 leaf (both under EC CAs)."""
    found: Chain = request.getfixturevalue(f"{request.param}_chain")
    return found


def render(
    fmt: DownloadFormat,
    chain: Chain,
    *,
    password: str | None = PASSWORD,
    include_chain: bool = True,
) -> Download:
    """``fmt`` for the chain's leaf and its key, as a download with these options."""
    return render_download(fmt, chain.material(), DownloadOptions(password, include_chain))


def _unzip(download: Download) -> dict[str, zipfile.ZipInfo]:
    with zipfile.ZipFile(io.BytesIO(download.body)) as archive:
        return {info.filename: info for info in archive.infolist()}


def _mode(info: zipfile.ZipInfo) -> int:
    return (info.external_attr >> 16) & 0o777


# Certificates only


def test_pem_without_chain_holds_the_leaf_alone(ec_chain: Chain) -> None:
    download = render(DownloadFormat.PEM, ec_chain, include_chain=False)

    assert x509.load_pem_x509_certificates(download.body) == [ec_chain.leaf]
    assert b"PRIVATE KEY" not in download.body


@pytest.mark.parametrize("fmt", CERTIFICATE_ONLY)
def test_certificate_only_formats_need_no_key_and_no_password(
    ec_chain: Chain, fmt: DownloadFormat
) -> None:
    download = render_download(fmt, ec_chain.material(with_key=False), DownloadOptions(None))

    assert download.body


# Server presets


def test_apache_zip_leaves_out_the_chain_file_when_no_chain_is_asked_for(ec_chain: Chain) -> None:
    download = render(DownloadFormat.APACHE, ec_chain, include_chain=False)

    assert list(_unzip(download)) == [f"{NAME}.crt", f"{NAME}.key", f"{NAME}.pass.txt"]


@pytest.mark.parametrize(
    ("fmt", "password_file"),
    [(DownloadFormat.TOMCAT, "jks-password.txt"), (DownloadFormat.IIS, "pfx-password.txt")],
)
def test_tomcat_and_iis_zips_use_the_password_given(
    ec_chain: Chain, fmt: DownloadFormat, password_file: str
) -> None:
    download = render(fmt, ec_chain)

    with zipfile.ZipFile(io.BytesIO(download.body)) as archive:
        assert archive.read(password_file) == f"{PASSWORD}\n".encode()


@pytest.mark.parametrize(
    "fmt", [DownloadFormat.NGINX, DownloadFormat.APACHE, DownloadFormat.TOMCAT, DownloadFormat.IIS]
)
def test_zip_members_holding_keys_or_passwords_are_mode_0600_with_a_fixed_timestamp(
    ec_chain: Chain, fmt: DownloadFormat
) -> None:
    members = _unzip(render(fmt, ec_chain))

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
    download = render(fmt, ec_chain)

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
    with pytest.raises(ValidationError, match="give a password") as raised:
        render(fmt, ec_chain, password=None)
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
        render(fmt, ec_chain, password=password)
    assert raised.value.field == "password"
