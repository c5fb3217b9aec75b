"""CRLs (RFC 5280 §5) encoded by hand, so republishing a long list re-signs instead of rebuilding.

cryptography's ``CertificateRevocationListBuilder`` rebuilds one Python object per entry on every
publication (and its ``add_revoked_certificate`` copies the whole list per call: quadratic,
DESIGN §5). Here each ``revokedCertificates`` element is encoded once, when the certificate is
revoked, and kept as bytes in an :class:`EncodedRevocationList`. Publishing joins those bytes
behind a freshly encoded TBSCertList header and signs; the cost is hashing the bytes. The output
is byte-for-byte what cryptography's builder makes for the same inputs (the tests hold us to it).

CRL numbers: one strictly increasing sequence per issuer shared by complete and delta CRLs
(RFC 5280 §5.2.3); a delta CRL names the complete CRL it builds on in its critical
deltaCRLIndicator (§5.2.4). Entries with reason ``unspecified`` carry no reasonCode
(§5.3.1: SHOULD be absent). Revocation here is final, so entries never need ``removeFromCRL``;
an entry may leave the list once its certificate has expired.

When base CRLs are re-cut (:class:`RecutPolicy`)
-----------------------------------------------
Every publication produces a delta CRL holding all revocations since the current base
(cumulative, not since the previous delta), and a base CRL carries freshestCRL pointing at the
delta URL. A new base is cut, and the delta restarts empty, when any of these holds:

* the delta has grown past ``max_delta_entries`` (10 000) entries or ``max_delta_fraction``
  (10 %) of the base: past that the delta stops saving relying parties much download;
* the base is ``max_base_age`` (24 h) old: relying parties that ignore deltas still see every
  revocation within a day, and expired entries are pruned at that moment;
* there is no base yet.

A base's nextUpdate should exceed ``max_base_age`` by a grace period (e.g. 7 days) so that a
missed re-cut does not break validation; a delta's nextUpdate is the publication interval.
Re-cutting a base is cheap here (incremental encoding: about the cost of hashing the list), so
the policy is driven by what relying parties download, not by signing cost.

IssuingDistributionPoint is optional (``idp_url``). Each CA publishes one complete CRL for all
the certificates it issued (no partitions, no indirect CRLs), so the extension adds no scope
restriction; when used it must name the URL the certificates' cRLDistributionPoints carry and be
identical on a base and its deltas (§5.2.4; openssl compares it byte for byte). It is critical,
which some older relying parties reject, hence off by default.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from domain.model.values import RevocationReason
from domain.pki import der
from domain.pki.signing import IssuerKey, is_rsa, sign_parts, signature_hash

CRL_REASON_CODES: dict[RevocationReason, int] = {
    RevocationReason.UNSPECIFIED: 0,
    RevocationReason.KEY_COMPROMISE: 1,
    RevocationReason.CA_COMPROMISE: 2,
    RevocationReason.AFFILIATION_CHANGED: 3,
    RevocationReason.SUPERSEDED: 4,
    RevocationReason.CESSATION_OF_OPERATION: 5,
    RevocationReason.PRIVILEGE_WITHDRAWN: 9,
}
MAX_CRL_NUMBER = 2**159 - 1  # RFC 5280 §5.2.3: at most 20 octets
_V2 = der.integer(1)
_OID_REASON_CODE = der.oid("2.5.29.21")
_OID_AUTHORITY_KEY_IDENTIFIER = der.oid("2.5.29.35")
_OID_CRL_NUMBER = der.oid("2.5.29.20")
_OID_DELTA_CRL_INDICATOR = der.oid("2.5.29.27")
_OID_ISSUING_DISTRIBUTION_POINT = der.oid("2.5.29.28")
_OID_FRESHEST_CRL = der.oid("2.5.29.46")
_SIGNATURE_ALGORITHMS = {  # AlgorithmIdentifier by (key is RSA, hash name); RSA takes NULL
    (True, hashes.SHA256.name): der.sequence(der.oid("1.2.840.113549.1.1.11"), der.null()),
    (False, hashes.SHA256.name): der.sequence(der.oid("1.2.840.10045.4.3.2")),
    (False, hashes.SHA384.name): der.sequence(der.oid("1.2.840.10045.4.3.3")),
}


@dataclass(frozen=True)
class RevokedEntry:
    """One revoked certificate as a CRL lists it."""

    serial_number: int
    revoked_at: dt.datetime
    reason: RevocationReason | None


def encode_entry(entry: RevokedEntry) -> bytes:
    """The DER of one ``revokedCertificates`` element (RFC 5280 §5.1.2.6).

    userCertificate, revocationDate (whole seconds, UTC), and a reasonCode entry extension
    unless the reason is None or unspecified.
    """
    fields = [der.integer(entry.serial_number), der.time(entry.revoked_at)]
    if entry.reason is not None and entry.reason is not RevocationReason.UNSPECIFIED:
        code = der.enumerated(CRL_REASON_CODES[entry.reason])
        fields.append(der.sequence(_extension(_OID_REASON_CODE, code)))
    return der.sequence(*fields)


class EncodedRevocationList:
    """The encoded entries of one issuer's CRL, in revocation order.

    Each entry is encoded once, by :meth:`add`, and kept as bytes. The joined encoding is
    cached; entries added since are kept as separate chunks until there are more than
    ``MAX_APPENDED_CHUNKS`` of them, so a republish after a few revocations hashes the cached
    bytes without copying them. A removal drops the cache: the next publication re-joins the
    kept bytes (nothing is re-encoded), so expired entries are best pruned in batches.
    """

    MAX_APPENDED_CHUNKS = 4096

    def __init__(self, entries: Iterable[RevokedEntry] = ()) -> None:
        self._encoded: dict[int, bytes] = {}
        self._joined: bytes | None = b""
        self._appended: list[bytes] = []
        for entry in entries:
            self.add(entry)

    def add(self, entry: RevokedEntry) -> None:
        """Append ``entry``; ValueError if its serial number is already listed."""
        if entry.serial_number in self._encoded:
            raise ValueError(f"Serial number {entry.serial_number:#x} is already on the list.")
        encoded = encode_entry(entry)
        self._encoded[entry.serial_number] = encoded
        self._appended.append(encoded)

    def remove(self, serial_number: int) -> None:
        """Drop the entry for ``serial_number`` (its certificate expired); KeyError if absent."""
        del self._encoded[serial_number]
        self._joined = None

    def __len__(self) -> int:
        return len(self._encoded)

    def __contains__(self, serial_number: object) -> bool:
        return serial_number in self._encoded

    def chunks(self) -> list[bytes]:
        """Byte strings whose concatenation is :meth:`body`, joined as little as possible."""
        if self._joined is None:
            self._joined = b"".join(self._encoded.values())
            self._appended.clear()
        elif len(self._appended) > self.MAX_APPENDED_CHUNKS:
            self._joined = b"".join([self._joined, *self._appended])
            self._appended.clear()
        return [self._joined, *self._appended]

    def body(self) -> bytes:
        """The concatenated encoded entries: the contents of ``revokedCertificates``."""
        chunks = self.chunks()
        joined = b"".join(chunks) if len(chunks) > 1 else chunks[0]
        self._joined, self._appended = joined, []
        return joined


@dataclass(frozen=True)
class RecutPolicy:
    """When a new base CRL is due instead of another delta (see the module docstring)."""

    max_delta_entries: int = 10_000
    max_delta_fraction: float = 0.10
    max_base_age: dt.timedelta = dt.timedelta(hours=24)

    def base_due(
        self, base_entries: int | None, delta_entries: int, base_age: dt.timedelta
    ) -> bool:
        """True when the next publication must be a new base; ``base_entries`` None = no base."""
        if base_entries is None or base_age >= self.max_base_age:
            return True
        if delta_entries > self.max_delta_entries:
            return True
        return delta_entries > self.max_delta_fraction * base_entries


def build_crl(
    issuer: x509.Certificate,
    issuer_key: IssuerKey,
    entries: EncodedRevocationList | bytes,
    number: int,
    this_update: dt.datetime,
    next_update: dt.datetime,
    *,
    delta_of: int | None = None,
    freshest_url: str | None = None,
    idp_url: str | None = None,
) -> bytes:
    """A signed v2 CRL (CertificateList DER) of ``entries`` issued by ``issuer``.

    ``entries`` is a list or its joined :meth:`EncodedRevocationList.body`. Extensions,
    in this order: AKI (the issuer's SKI), CRLNumber ``number``, then deltaCRLIndicator
    (critical) when ``delta_of`` names the base CRL number, IssuingDistributionPoint (critical)
    for ``idp_url``, freshestCRL for ``freshest_url`` (complete CRLs only). The TBSCertList is
    hashed in pieces and signed prehashed, so the entries are copied once: into the result.
    ValueError when the numbers, URLs or times break RFC 5280.
    """
    _check_crl_fields(number, this_update, next_update, delta_of, freshest_url)
    hash_algorithm = signature_hash(issuer_key)
    algorithm = _signature_algorithm(issuer_key, hash_algorithm)
    body = entries.chunks() if isinstance(entries, EncodedRevocationList) else [entries]
    body_size = sum(map(len, body))
    extensions = _crl_extensions(issuer, number, delta_of, freshest_url, idp_url)
    tbs_parts = [
        _V2 + algorithm + issuer.subject.public_bytes(),
        der.time(this_update) + der.time(next_update),
        der.header(der.TAG_SEQUENCE, body_size) if body_size else b"",
        *body,
        der.context(0, der.sequence(*extensions)),
    ]
    tbs_parts.insert(0, der.header(der.TAG_SEQUENCE, sum(map(len, tbs_parts))))
    signature = sign_parts(issuer_key, hash_algorithm, tbs_parts)
    trailer = algorithm + der.bit_string(signature)
    size = sum(map(len, tbs_parts)) + len(trailer)
    return b"".join([der.header(der.TAG_SEQUENCE, size), *tbs_parts, trailer])


def _check_crl_fields(
    number: int,
    this_update: dt.datetime,
    next_update: dt.datetime,
    delta_of: int | None,
    freshest_url: str | None,
) -> None:
    if not 0 <= number <= MAX_CRL_NUMBER:
        raise ValueError("A CRL number is a non-negative integer of at most 20 octets.")
    if next_update <= this_update:
        raise ValueError("A CRL's nextUpdate must be later than its thisUpdate.")
    if delta_of is None:
        return
    if not 0 <= delta_of < number:
        raise ValueError("A delta CRL's base CRL number must be lower than its own number.")
    if freshest_url is not None:
        raise ValueError("A delta CRL must not carry freshestCRL (RFC 5280 §5.2.6).")


def _crl_extensions(
    issuer: x509.Certificate,
    number: int,
    delta_of: int | None,
    freshest_url: str | None,
    idp_url: str | None,
) -> list[bytes]:
    key_identifier = der.context(0, _subject_key_identifier(issuer), constructed=False)
    extensions = [
        _extension(_OID_AUTHORITY_KEY_IDENTIFIER, der.sequence(key_identifier)),
        _extension(_OID_CRL_NUMBER, der.integer(number)),
    ]
    if delta_of is not None:
        extensions.append(
            _extension(_OID_DELTA_CRL_INDICATOR, der.integer(delta_of), critical=True)
        )
    if idp_url is not None:
        idp = der.sequence(_distribution_point_name(idp_url))
        extensions.append(_extension(_OID_ISSUING_DISTRIBUTION_POINT, idp, critical=True))
    if freshest_url is not None:
        point = der.sequence(_distribution_point_name(freshest_url))
        extensions.append(_extension(_OID_FRESHEST_CRL, der.sequence(point)))
    return extensions


def _subject_key_identifier(issuer: x509.Certificate) -> bytes:
    try:
        extension = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        # Certificates made here always carry an SKI; for others, derive the RFC 5280 method 1
        # identifier so that AKI still points at the key.
        return x509.SubjectKeyIdentifier.from_public_key(issuer.public_key()).digest
    return extension.value.digest


def _distribution_point_name(url: str) -> bytes:
    """``distributionPoint [0] { fullName [0] { uniformResourceIdentifier [6] url } }``."""
    uri = der.context(6, url.encode("ascii"), constructed=False)
    return der.context(0, der.context(0, uri))


def _extension(extn_id: bytes, value: bytes, *, critical: bool = False) -> bytes:
    """An Extension; ``critical`` FALSE is the DEFAULT and so absent in DER."""
    flag = der.boolean(True) if critical else b""
    return der.sequence(extn_id, flag, der.octet_string(value))


def _signature_algorithm(key: IssuerKey, hash_algorithm: hashes.HashAlgorithm) -> bytes:
    return _SIGNATURE_ALGORITHMS[is_rsa(key), hash_algorithm.name]
