"""A small real PKI (root, intermediate, two leaves) built with the service's own profile,
for tests of what is published about it (CRLs, OCSP)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from domain.model.values import SAN, CertificateType, KeyAlgorithm, SANType, Subject
from domain.pki import signing
from domain.pki import x509 as certs

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Pki:
    """A root, an intermediate (the CRL/OCSP issuer) and its key, and two leaves it issued."""

    root: x509.Certificate
    intermediate: x509.Certificate
    intermediate_key: signing.SoftwareKey
    urls: certs.PublicationURLs
    leaves: tuple[x509.Certificate, x509.Certificate]


def make_pki(algorithm: KeyAlgorithm, now: dt.datetime = NOW) -> Pki:
    """A real chain built with the service's own certificate profile."""
    window = (now - dt.timedelta(days=1), now + dt.timedelta(days=365))
    root_key = certs.as_issuer_key(certs.generate_private_key(KeyAlgorithm.EC_P256))
    root = certs.build_root(root_key, Subject("Test Root CA"), *window)
    key = certs.as_issuer_key(certs.generate_private_key(algorithm))
    root_urls = certs.PublicationURLs.for_issuer("http://pca.test", "root")
    intermediate = certs.build_intermediate(
        key.public_key(),
        Subject("Test Issuing CA", country="DE"),
        root,
        root_key,
        window,
        root_urls,
    )
    urls = certs.PublicationURLs.for_issuer("http://pca.test", "issuing")

    def leaf(name: str) -> x509.Certificate:
        public_key = certs.generate_private_key(KeyAlgorithm.EC_P256).public_key()
        profile = certs.LeafProfile(
            CertificateType.SERVER, Subject(name), (SAN(SANType.DNS, name),), include_crl=True
        )
        leaf_window = (now - dt.timedelta(hours=1), now + dt.timedelta(days=90))
        return certs.build_leaf(public_key, profile, intermediate, key, leaf_window, urls)

    return Pki(root, intermediate, key, urls, (leaf("revoked.example"), leaf("fine.example")))


def write_pem(path: Path, *certificates: x509.Certificate) -> Path:
    """``certificates`` as a PEM file at ``path``."""
    path.write_bytes(b"".join(cert.public_bytes(Encoding.PEM) for cert in certificates))
    return path
