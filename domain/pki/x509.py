"""X.509 building per the certificate profile (DESIGN §3, RFC 5280).

Pure functions: they take keys, names and times and return signed certificates. Nothing here
reads the clock, the event store or the key store.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from domain.model.constraints import UNCONSTRAINED, NameConstraints
from domain.model.errors import CSRError, KeyCustodyError
from domain.model.policy import ExtendedKeyUsage, KeyUsage
from domain.model.values import SAN, CertificateType, KeyAlgorithm, SANType, Subject
from domain.pki import der
from domain.pki.signing import IssuerKey, SoftwareKey, sign_certificate

CA_PATH_LENGTH = 0
MIN_RSA_BITS = 2048
_CURVES: dict[KeyAlgorithm, ec.EllipticCurve] = {
    KeyAlgorithm.EC_P256: ec.SECP256R1(),
    KeyAlgorithm.EC_P384: ec.SECP384R1(),
}
_RSA_BITS = {KeyAlgorithm.RSA_2048: 2048, KeyAlgorithm.RSA_3072: 3072, KeyAlgorithm.RSA_4096: 4096}
_EC_BY_CURVE = {"secp256r1": KeyAlgorithm.EC_P256, "secp384r1": KeyAlgorithm.EC_P384}
_SUBJECT_OIDS = (
    ("country", NameOID.COUNTRY_NAME),
    ("state", NameOID.STATE_OR_PROVINCE_NAME),
    ("locality", NameOID.LOCALITY_NAME),
    ("organization", NameOID.ORGANIZATION_NAME),
    ("organizational_unit", NameOID.ORGANIZATIONAL_UNIT_NAME),
    ("common_name", NameOID.COMMON_NAME),
)


@dataclass(frozen=True)
class PublicationURLs:
    """Where relying parties fetch the issuer's CRL, certificate and OCSP answers."""

    crl: str
    delta_crl: str
    ca_issuers: str
    ocsp: str

    @classmethod
    def for_issuer(
        cls, public_url: str, issuer_id: str, generation: int = 1, ocsp_url: str | None = None
    ) -> PublicationURLs:
        """The URLs the service itself serves for key ``generation`` of the CA ``issuer_id``:
        after a key rollover each key has its own CRLs and CA certificate (``-g2``, ...);
        one OCSP URL answers for every key, under ``ocsp_url`` (a dedicated responder's
        base URL) if given, else under ``public_url``."""
        base = public_url.rstrip("/")
        ocsp_base = (ocsp_url or public_url).rstrip("/")
        name = issuer_id if generation == 1 else f"{issuer_id}-g{generation}"
        return cls(
            crl=f"{base}/crl/{name}.crl",
            delta_crl=f"{base}/crl/{name}-delta.crl",
            ca_issuers=f"{base}/ca/{name}.crt",
            ocsp=f"{ocsp_base}/ocsp/{issuer_id}",
        )


@dataclass(frozen=True)
class Usages:
    """The keyUsage bits and extended key usages a profile asks for; empty: the
    service's own choice per certificate type and key."""

    key_usage: tuple[KeyUsage, ...] = ()
    extended_key_usage: tuple[ExtendedKeyUsage, ...] = ()


@dataclass(frozen=True)
class LeafProfile:
    """What goes into an end-entity certificate besides keys and times."""

    type: CertificateType
    subject: Subject
    sans: tuple[SAN, ...]
    include_crl: bool
    usages: Usages = Usages()


def generate_private_key(algorithm: KeyAlgorithm) -> SoftwareKey:
    """A fresh private key of ``algorithm`` (RSA with e=65537)."""
    if algorithm.is_rsa:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS[algorithm])
    return ec.generate_private_key(_CURVES[algorithm])


def as_issuer_key(key: PrivateKeyTypes) -> SoftwareKey:
    """``key`` narrowed to the kinds a CA signs with; KeyCustodyError for anything else."""
    if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        return key
    raise KeyCustodyError(f"A CA key must be RSA or ECDSA; the key store holds {type(key)}.")


def key_algorithm_of(public_key: CertificatePublicKeyTypes) -> KeyAlgorithm:
    """The offered algorithm ``public_key`` belongs to; weak or unsupported keys are refused."""
    if isinstance(public_key, rsa.RSAPublicKey):
        bits = public_key.key_size
        if bits < MIN_RSA_BITS:
            raise CSRError(f"RSA keys need at least 2048 bits; this CSR has {bits}.", field="csr")
        for algorithm, size in _RSA_BITS.items():
            if size == bits:
                return algorithm
        raise CSRError(f"RSA keys must be 2048, 3072 or 4096 bits; got {bits}.", field="csr")
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        found = _EC_BY_CURVE.get(public_key.curve.name)
        if found is None:
            raise CSRError(
                f"EC keys must be on P-256 or P-384; got {public_key.curve.name}.", field="csr"
            )
        return found
    raise CSRError("The CSR's key must be RSA (2048+) or ECDSA P-256/P-384.", field="csr")


def x509_name(subject: Subject) -> x509.Name:
    """The distinguished name for ``subject``, most general attribute first."""
    attributes = [
        x509.NameAttribute(oid, value)
        for field, oid in _SUBJECT_OIDS
        if (value := getattr(subject, field)) is not None
    ]
    return x509.Name(attributes)


def build_root(
    key: IssuerKey,
    subject: Subject,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """A self-signed root CA certificate."""
    name = x509_name(subject)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = _ca_builder(name, name, key.public_key(), not_before, not_after, path_length=None)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
    )
    return sign_certificate(builder, key)


def build_intermediate(
    public_key: CertificatePublicKeyTypes,
    subject: Subject,
    issuer: x509.Certificate,
    issuer_key: IssuerKey,
    window: tuple[dt.datetime, dt.datetime],
    urls: PublicationURLs,
    constraints: NameConstraints = UNCONSTRAINED,
) -> x509.Certificate:
    """An intermediate CA certificate signed by ``issuer`` (pathLenConstraint 0), with
    its name constraints as a critical extension when it has any (RFC 5280 §4.2.1.10)."""
    builder = _ca_builder(
        x509_name(subject), issuer.subject, public_key, *window, path_length=CA_PATH_LENGTH
    )
    for link in _issuer_links(issuer, urls, True):
        builder = builder.add_extension(link.value, critical=link.critical)
    if constraints:
        builder = builder.add_extension(_name_constraints(constraints), critical=True)
    return sign_certificate(builder, issuer_key)


def build_link(
    public_key: CertificatePublicKeyTypes,
    issuer: x509.Certificate,
    issuer_key: IssuerKey,
    window: tuple[dt.datetime, dt.datetime],
) -> x509.Certificate:
    """A root key-rollover link certificate: the root's name with ``public_key``, issued by
    the root's other key (``issuer`` and ``issuer_key``), without a path length limit so
    that chains through it reach what either key certified."""
    builder = _ca_builder(issuer.subject, issuer.subject, public_key, *window, path_length=None)
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False
    )
    return sign_certificate(builder, issuer_key)


def build_leaf(
    public_key: CertificatePublicKeyTypes,
    profile: LeafProfile,
    issuer: x509.Certificate,
    issuer_key: IssuerKey,
    window: tuple[dt.datetime, dt.datetime],
    urls: PublicationURLs,
) -> x509.Certificate:
    """An end-entity certificate for a server or a client, signed by ``issuer``.

    The extensions are handed to the builder at once: adding them one by one copies and
    re-checks the builder each time, which cost more than the signature itself.
    """
    extensions = [
        *_leaf_constants(profile.type, isinstance(public_key, rsa.RSAPublicKey), profile.usages),
        _extension(x509.SubjectKeyIdentifier.from_public_key(public_key)),
    ]
    if profile.sans:
        extensions.append(_extension(x509.SubjectAlternativeName(_general_names(profile.sans))))
    extensions.extend(_issuer_links(issuer, urls, profile.include_crl))
    builder = x509.CertificateBuilder(
        issuer_name=issuer.subject,
        subject_name=x509_name(profile.subject),
        public_key=public_key,
        serial_number=x509.random_serial_number(),
        extensions=extensions,
    )
    builder = builder.not_valid_before(window[0]).not_valid_after(window[1])
    return sign_certificate(builder, issuer_key)


def _extension(value: x509.ExtensionType, *, critical: bool = False) -> x509.Extension[Any]:
    return x509.Extension(value.oid, critical, value)


@functools.lru_cache(maxsize=64)
def _leaf_constants(
    certificate_type: CertificateType, rsa_key: bool, usages: Usages
) -> tuple[x509.Extension[Any], ...]:
    """Basic constraints, key usage and extended key usage: fixed per type, key kind and
    the profile's usages."""
    key_usage = _leaf_key_usage(certificate_type, rsa_key)
    if usages.key_usage:
        key_usage = _profile_key_usage(usages.key_usage, rsa_key)
    ekus = [_EKU_OIDS[usage] for usage in usages.extended_key_usage] or [_eku(certificate_type)]
    return (
        _extension(x509.BasicConstraints(ca=False, path_length=None), critical=True),
        _extension(key_usage, critical=True),
        _extension(x509.ExtendedKeyUsage(ekus)),
    )


def _profile_key_usage(bits: tuple[KeyUsage, ...], rsa_key: bool) -> x509.KeyUsage:
    """The profile's bits that the key can serve: encipherment needs an RSA key, key
    agreement an EC one (a bit the key cannot honour is left out, not refused)."""
    wanted = {bit.value for bit in bits}
    if rsa_key:
        wanted.discard(KeyUsage.KEY_AGREEMENT.value)
    else:
        wanted -= {KeyUsage.KEY_ENCIPHERMENT.value, KeyUsage.DATA_ENCIPHERMENT.value}
    wanted = wanted or {KeyUsage.DIGITAL_SIGNATURE.value}
    return x509.KeyUsage(
        **{bit.value: bit.value in wanted for bit in KeyUsage},
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def load_csr(pem: str) -> x509.CertificateSigningRequest:
    """A parsed CSR whose self-signature verifies and whose key is strong enough."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode("utf-8"))
    except (ValueError, UnicodeEncodeError, x509.InvalidVersion):
        raise CSRError(
            "The CSR is not a PEM 'CERTIFICATE REQUEST'; paste the whole PEM block.", field="csr"
        ) from None
    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise CSRError(
            "The CSR's key cannot be read; use RSA (2048+) or ECDSA P-256/P-384.", field="csr"
        ) from None
    try:
        valid = csr.is_signature_valid
    except (ValueError, InvalidSignature, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise CSRError("The CSR's signature does not verify; create it again.", field="csr")
    key_algorithm_of(public_key)
    return csr


def csr_names(csr: x509.CertificateSigningRequest) -> tuple[str | None, list[SAN]]:
    """The common name and the SANs a CSR asks for (CSRError for a SAN of another kind)."""
    common_names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(common_names[0].value) if common_names else None
    try:
        requested = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return common_name, []
    sans: list[SAN] = []
    for name in requested:
        san_type = _SAN_TYPES.get(type(name))
        if san_type is None:
            raise CSRError(
                "The CSR asks for a SAN that is not a DNS name, IP address, e-mail address or"
                " URI; remove it.",
                field="csr",
            )
        sans.append(SAN(san_type, str(name.value)))
    return common_name, sans


_SAN_TYPES: dict[type[x509.GeneralName], SANType] = {
    x509.DNSName: SANType.DNS,
    x509.IPAddress: SANType.IP,
    x509.RFC822Name: SANType.EMAIL,
    x509.UniformResourceIdentifier: SANType.URI,
}


def public_key_pem(key: CertificatePublicKeyTypes) -> str:
    """``key`` as SubjectPublicKeyInfo PEM (``PUBLIC KEY``), the form openssl reads."""
    return der.pem(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo), "PUBLIC KEY")


def _ca_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: CertificatePublicKeyTypes,
    not_before: dt.datetime,
    not_after: dt.datetime,
    *,
    path_length: int | None,
) -> x509.CertificateBuilder:
    usage = _key_usage(key_cert_sign=True)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


@functools.lru_cache(maxsize=256)
def _issuer_links(
    issuer: x509.Certificate, urls: PublicationURLs, include_crl: bool
) -> tuple[x509.Extension[Any], ...]:
    """AKI, AIA and (optionally) the CRL pointers: the same for every certificate an issuer
    signs, so they are made once per issuer rather than on every issuance."""
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    links: list[x509.ExtensionType] = [
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
        x509.AuthorityInformationAccess(
            [
                x509.AccessDescription(
                    AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(urls.ocsp)
                ),
                x509.AccessDescription(
                    AuthorityInformationAccessOID.CA_ISSUERS,
                    x509.UniformResourceIdentifier(urls.ca_issuers),
                ),
            ]
        ),
    ]
    if include_crl:
        links.append(x509.CRLDistributionPoints([_distribution_point(urls.crl)]))
        # Relying parties that use delta CRLs find them here (RFC 5280 §5.2.6).
        links.append(x509.FreshestCRL([_distribution_point(urls.delta_crl)]))
    return tuple(_extension(link) for link in links)


def _distribution_point(url: str) -> x509.DistributionPoint:
    return x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)],
        relative_name=None,
        reasons=None,
        crl_issuer=None,
    )


def _leaf_key_usage(certificate_type: CertificateType, rsa_key: bool) -> x509.KeyUsage:
    """keyEncipherment only for RSA server keys (RSA key transport in TLS 1.2)."""
    return _key_usage(key_encipherment=certificate_type is CertificateType.SERVER and rsa_key)


def _key_usage(*, key_encipherment: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    """digitalSignature always; keyCertSign comes with cRLSign for CAs."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


_EKU_OIDS = {
    ExtendedKeyUsage.SERVER_AUTH: ExtendedKeyUsageOID.SERVER_AUTH,
    ExtendedKeyUsage.CLIENT_AUTH: ExtendedKeyUsageOID.CLIENT_AUTH,
    ExtendedKeyUsage.CODE_SIGNING: ExtendedKeyUsageOID.CODE_SIGNING,
    ExtendedKeyUsage.EMAIL_PROTECTION: ExtendedKeyUsageOID.EMAIL_PROTECTION,
}


def _eku(certificate_type: CertificateType) -> x509.ObjectIdentifier:
    if certificate_type is CertificateType.SERVER:
        return ExtendedKeyUsageOID.SERVER_AUTH
    return ExtendedKeyUsageOID.CLIENT_AUTH


def _name_constraints(constraints: NameConstraints) -> x509.NameConstraints:
    return x509.NameConstraints(
        permitted_subtrees=_subtrees(constraints.permitted) or None,
        excluded_subtrees=_subtrees(constraints.excluded) or None,
    )


def _subtrees(trees: Sequence[SAN]) -> list[x509.GeneralName]:
    """Subtrees as GeneralNames: an IP subtree is a network, the others are names."""
    return [
        x509.IPAddress(ip_network(tree.value))
        if tree.type is SANType.IP
        else _general_names([tree])[0]
        for tree in trees
    ]


def _general_names(sans: Sequence[SAN]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for san in sans:
        if san.type is SANType.DNS:
            names.append(x509.DNSName(san.value))
        elif san.type is SANType.IP:
            names.append(x509.IPAddress(ip_address(san.value)))
        elif san.type is SANType.EMAIL:
            names.append(x509.RFC822Name(san.value))
        else:
            names.append(x509.UniformResourceIdentifier(san.value))
    return names
