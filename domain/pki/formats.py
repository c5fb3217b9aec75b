"""Certificate downloads in the formats servers need, and the presets the reference product zips.

``render_download`` turns one certificate, its chain and (when the service generated it) its
private key into a single file: the body, a file name and a content type.

Chain order, wherever a chain appears: the leaf first, then the issuing intermediate, then the
root (``DownloadMaterial.chain_der`` is intermediate first, root last). ``include_chain`` adds
the chain to every format but ``der``, which is always the leaf alone. PKCS#7 is the exception
to the order: its certificates are a DER ``SET OF``, which sorts them. The server presets
(``nginx``, ``apache``) send intermediates only: the root is the trust anchor clients hold
already, and sending it costs bytes on every handshake while proving nothing.

Key policy: no private key leaves the service unencrypted.

* ``pkcs8``, ``pkcs12``, ``jks``, ``nginx`` and ``apache`` require a password of at least
  8 printable ASCII characters (ASCII so OpenSSL, Java and Windows derive the same key from it).
* ``tomcat`` and ``iis`` use the password given, or generate one, and put it in a ``.txt``
  next to the keystore, as the reference product does.
* The ``nginx`` and ``apache`` zips carry the key as encrypted PKCS#8 plus ``<name>.pass.txt``
  holding the password alone on one line, for nginx's ``ssl_password_file`` or a
  ``SSLPassPhraseDialog exec:`` script that prints it. nginx cannot prompt at start, so a key
  without that file would not load; shipping it beside the key keeps the key encrypted at rest in
  the archive while letting the operator decide where the password lives.
* A certificate issued from a CSR has no key in the service: the formats above are refused and
  ``pem``, ``der`` and ``pkcs7`` remain.

How keys are encrypted (PKCS#8 and PKCS#12, no RC2 or 3DES) is in :mod:`domain.pki.key_export`.

JKS: a real JKS protects keys with Sun's proprietary XOR/SHA-1 scheme, which contradicts "AES, not
RC2/3DES". The ``jks`` format is therefore a PKCS#12 keystore named ``.jks``: keytool has created
PKCS#12 by default since Java 9 and detects the type from the content, so ``keytool -list
-keystore x.jks`` and Tomcat's ``certificateKeystoreFile`` read it unchanged (Tomcat needs no
``certificateKeystoreType``). The entry's alias is the sanitised name; Java lowercases it.

Zip presets list their members in a fixed order with a fixed timestamp; key and password members
carry Unix mode 0600, certificates 0644.
"""

from __future__ import annotations

import dataclasses
import io
import re
import secrets
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from domain.model.certificate_facts import load_certificate
from domain.model.errors import ValidationError
from domain.pki.der import pem
from domain.pki.key_export import encrypted_pkcs8_pem, pkcs12_bundle

MIN_PASSWORD_LENGTH = 8
MAX_NAME_LENGTH = 64


class DownloadFormat(Enum):
    """The file formats ``POST /api/v1/certificates/{id}/download`` offers."""

    PEM = "pem"
    DER = "der"
    PKCS8 = "pkcs8"
    PKCS12 = "pkcs12"
    JKS = "jks"
    PKCS7 = "pkcs7"
    NGINX = "nginx"
    APACHE = "apache"
    TOMCAT = "tomcat"
    IIS = "iis"


@dataclass(frozen=True)
class DownloadMaterial:
    """What a download is made of; ``private_key`` is None for a certificate issued from a CSR."""

    name: str
    certificate_der: bytes
    chain_der: tuple[bytes, ...]
    private_key: PrivateKeyTypes | None


@dataclass(frozen=True)
class DownloadOptions:
    """The user's choices: a password for key formats, and whether to add the chain."""

    password: str | None
    include_chain: bool = True


@dataclass(frozen=True)
class Download:
    """One file for the HTTP response: ``Content-Disposition`` name, ``Content-Type``, body.

    ``filename`` is safe everywhere (ASCII, no separators); ``display_filename`` keeps the
    certificate's own name (any script) with the same extension, for RFC 6266's filename*.
    """

    filename: str
    content_type: str
    body: bytes
    display_filename: str = ""


@dataclass(frozen=True)
class _Certificates:
    """The sanitised file stem, the leaf and the chain the user asked for (maybe empty)."""

    name: str
    leaf_der: bytes
    chain_der: tuple[bytes, ...]

    @property
    def intermediates_der(self) -> tuple[bytes, ...]:
        """The chain without its root (the last element)."""
        return self.chain_der[:-1]


@dataclass(frozen=True)
class _Member:
    """One file inside a zip preset; ``secret`` members get mode 0600."""

    name: str
    data: bytes
    secret: bool


_PublicRenderer = Callable[[_Certificates], Download]
_KeyedRenderer = Callable[[_Certificates, PrivateKeyTypes, str], Download]

_GENERATES_PASSWORD = frozenset({DownloadFormat.TOMCAT, DownloadFormat.IIS})
_NO_KEY = (
    "This certificate was issued from a CSR, so the service holds no key; choose pem, der or "
    "pkcs7 (the key stays with you)."
)
_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")
_ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
_SECRET_MODE = 0o100600
_PUBLIC_MODE = 0o100644


def parse_format(text: str) -> DownloadFormat:
    """The format named by ``text`` (case-insensitive); ValidationError listing the choices."""
    try:
        return DownloadFormat(text.strip().lower())
    except ValueError:
        allowed = ", ".join(fmt.value for fmt in DownloadFormat)
        raise ValidationError(
            f"Unknown download format {text!r}; choose one of {allowed}.", field="format"
        ) from None


def render_download(
    fmt: DownloadFormat, material: DownloadMaterial, options: DownloadOptions
) -> Download:
    """The file for ``fmt``; ValidationError when it needs a key the service lacks or a password.

    A missing key is reported before a bad password: no password could fix it.
    """
    certificates = _Certificates(
        safe_name(material.name),
        material.certificate_der,
        material.chain_der if options.include_chain else (),
    )
    public = _PUBLIC_RENDERERS.get(fmt)
    if public is not None:
        if options.password is not None:
            check_password(options.password)  # unused, but held to the rule it is sent under
        return _named(public(certificates), material.name, certificates.name)
    if material.private_key is None:
        raise ValidationError(_NO_KEY, field="format")
    password = _password_for(fmt, options.password)
    keyed = _KEYED_RENDERERS[fmt](certificates, material.private_key, password)
    return _named(keyed, material.name, certificates.name)


def _named(download: Download, name: str, stem: str) -> Download:
    """``download`` with its display file name: the name as given (separators and control
    characters replaced, as long as the safe stem allows) plus the file's extension."""
    extension = download.filename.removeprefix(stem)
    shown = _DISPLAY_UNSAFE.sub("_", name).strip(". ")[:MAX_NAME_LENGTH] or stem
    return dataclasses.replace(download, display_filename=shown + extension)


_DISPLAY_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\\"]")


def needs_password(fmt: DownloadFormat) -> bool:
    """Whether a download in ``fmt`` needs the client's password (the others need none,
    or make one up and hand it over in the file)."""
    return fmt not in _PUBLIC_RENDERERS and fmt not in _GENERATES_PASSWORD


def carries_private_key(fmt: DownloadFormat) -> bool:
    """Whether ``fmt`` includes the private key (and so its download is an audited export)."""
    return fmt not in _PUBLIC_RENDERERS


def safe_name(name: str) -> str:
    """``name`` as a file stem: only ``[A-Za-z0-9._-]``, no leading dot or dash, 64 at most."""
    cleaned = _UNSAFE_NAME_CHARACTERS.sub("_", name).lstrip(".-")[:MAX_NAME_LENGTH]
    return cleaned or "certificate"


def check_password(password: str) -> None:
    """ValidationError unless ``password`` has 8+ characters, all printable ASCII."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(
            f"The password needs at least {MIN_PASSWORD_LENGTH} characters; "
            f"this one has {len(password)}.",
            field="password",
        )
    if not password.strip(" "):
        raise ValidationError(
            "The password is only spaces; choose one with letters, digits or punctuation.",
            field="password",
        )
    if not (password.isascii() and password.isprintable()):
        raise ValidationError(
            "The password may hold only printable ASCII (letters, digits, punctuation, spaces), "
            "so OpenSSL, Java and Windows all derive the same key from it.",
            field="password",
        )


def _password_for(fmt: DownloadFormat, given: str | None) -> str:
    if given is not None:
        check_password(given)
        return given
    if fmt in _GENERATES_PASSWORD:
        return secrets.token_urlsafe(18)
    raise ValidationError(
        f"The {fmt.value} download holds the private key and leaves the service only encrypted: "
        f"give a password of at least {MIN_PASSWORD_LENGTH} characters.",
        field="password",
    )


def _render_pem(certificates: _Certificates) -> Download:
    body = _pem_certificates((certificates.leaf_der, *certificates.chain_der))
    return Download(f"{certificates.name}.pem", "application/x-pem-file", body)


def _render_der(certificates: _Certificates) -> Download:
    return Download(f"{certificates.name}.cer", "application/pkix-cert", certificates.leaf_der)


def _render_pkcs7(certificates: _Certificates) -> Download:
    parsed = [load_certificate(der) for der in (certificates.leaf_der, *certificates.chain_der)]
    body = pkcs7.serialize_certificates(parsed, Encoding.DER)
    return Download(f"{certificates.name}.p7b", "application/x-pkcs7-certificates", body)


def _render_pkcs8(certificates: _Certificates, key: PrivateKeyTypes, password: str) -> Download:
    body = encrypted_pkcs8_pem(key, password)
    return Download(f"{certificates.name}.key", "application/x-pem-file", body)


def _render_pkcs12(certificates: _Certificates, key: PrivateKeyTypes, password: str) -> Download:
    body = _keystore(certificates, key, password)
    return Download(f"{certificates.name}.p12", "application/x-pkcs12", body)


def _render_jks(certificates: _Certificates, key: PrivateKeyTypes, password: str) -> Download:
    body = _keystore(certificates, key, password)
    return Download(f"{certificates.name}.jks", "application/x-java-keystore", body)


def _render_nginx(certificates: _Certificates, key: PrivateKeyTypes, password: str) -> Download:
    name = certificates.name
    fullchain = _pem_certificates((certificates.leaf_der, *certificates.intermediates_der))
    return _zip_download(
        f"{name}_nginx.zip",
        [
            _Member(f"{name}.pem", fullchain, secret=False),
            _Member(f"{name}.key", encrypted_pkcs8_pem(key, password), secret=True),
            _Member(f"{name}.pass.txt", _password_file(password), secret=True),
        ],
    )


def _render_apache(certificates: _Certificates, key: PrivateKeyTypes, password: str) -> Download:
    name = certificates.name
    members = [_Member(f"{name}.crt", _pem_certificates([certificates.leaf_der]), secret=False)]
    if certificates.intermediates_der:
        chain = _pem_certificates(certificates.intermediates_der)
        members.append(_Member(f"{name}_chain.crt", chain, secret=False))
    members += [
        _Member(f"{name}.key", encrypted_pkcs8_pem(key, password), secret=True),
        _Member(f"{name}.pass.txt", _password_file(password), secret=True),
    ]
    return _zip_download(f"{name}_apache.zip", members)


def _render_tomcat(certificates: _Certificates, key: PrivateKeyTypes, password: str) -> Download:
    name = certificates.name
    return _zip_download(
        f"{name}_tomcat.zip",
        [
            _Member(f"{name}.jks", _keystore(certificates, key, password), secret=True),
            _Member("jks-password.txt", _password_file(password), secret=True),
        ],
    )


def _render_iis(certificates: _Certificates, key: PrivateKeyTypes, password: str) -> Download:
    name = certificates.name
    return _zip_download(
        f"{name}_iis.zip",
        [
            _Member(f"{name}.pfx", _keystore(certificates, key, password), secret=True),
            _Member("pfx-password.txt", _password_file(password), secret=True),
        ],
    )


_PUBLIC_RENDERERS: dict[DownloadFormat, _PublicRenderer] = {
    DownloadFormat.PEM: _render_pem,
    DownloadFormat.DER: _render_der,
    DownloadFormat.PKCS7: _render_pkcs7,
}
_KEYED_RENDERERS: dict[DownloadFormat, _KeyedRenderer] = {
    DownloadFormat.PKCS8: _render_pkcs8,
    DownloadFormat.PKCS12: _render_pkcs12,
    DownloadFormat.JKS: _render_jks,
    DownloadFormat.NGINX: _render_nginx,
    DownloadFormat.APACHE: _render_apache,
    DownloadFormat.TOMCAT: _render_tomcat,
    DownloadFormat.IIS: _render_iis,
}


def _keystore(certificates: _Certificates, key: PrivateKeyTypes, password: str) -> bytes:
    return pkcs12_bundle(
        key, certificates.leaf_der, certificates.chain_der, password, certificates.name
    )


def _pem_certificates(ders: Sequence[bytes]) -> bytes:
    return "".join(pem(der) for der in ders).encode("ascii")


def _password_file(password: str) -> bytes:
    return password.encode("ascii") + b"\n"


def _zip_download(filename: str, members: Sequence[_Member]) -> Download:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member in members:
            info = zipfile.ZipInfo(member.name, date_time=_ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so unzip applies the mode below
            info.external_attr = (_SECRET_MODE if member.secret else _PUBLIC_MODE) << 16
            archive.writestr(info, member.data)
    return Download(filename, "application/zip", buffer.getvalue())
