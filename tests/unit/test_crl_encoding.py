"""The hand-made CRL encoder: DER primitives, entries, incremental lists, signed CRLs.

The reference is cryptography's own CRL builder (byte-for-byte with RSA, whose PKCS#1 v1.5
signatures are deterministic; the TBSCertList with ECDSA). openssl reads them back in
tests/integration/test_crl_openssl.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import SignatureAlgorithmOID
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.model.values import KeyAlgorithm, RevocationReason
from domain.pki import crl, der, signing
from domain.pki.crl import EncodedRevocationList, RecutPolicy, RevokedEntry
from tests.pki import NOW, Pki, make_pki

THIS_UPDATE = NOW - dt.timedelta(minutes=5)
NEXT_UPDATE = NOW + dt.timedelta(days=7)
DELTA_URL = "http://pca.test/crl/issuing-delta.crl"
MAX_SERIAL = 2**159 - 1


@pytest.fixture(scope="module")
def rsa_pki() -> Pki:
    return make_pki(KeyAlgorithm.RSA_2048)


@pytest.fixture(scope="module")
def ec_pki() -> Pki:
    return make_pki(KeyAlgorithm.EC_P256)


def reference_crl(
    pki: Pki,
    entries: Sequence[RevokedEntry],
    number: int,
    *,
    delta_of: int | None = None,
    freshest_url: str | None = None,
    idp_url: str | None = None,
    times: tuple[dt.datetime, dt.datetime] = (THIS_UPDATE, NEXT_UPDATE),
) -> x509.CertificateRevocationList:
    """The same CRL made by cryptography's builder (constructor list: linear, not quadratic)."""
    ski = pki.intermediate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    extensions: list[x509.Extension[x509.ExtensionType]] = [
        _ext(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)),
        _ext(x509.CRLNumber(number)),
    ]
    if delta_of is not None:
        extensions.append(_ext(x509.DeltaCRLIndicator(delta_of), critical=True))
    if idp_url is not None:
        extensions.append(_ext(_idp(idp_url), critical=True))
    if freshest_url is not None:
        extensions.append(_ext(x509.FreshestCRL([_point(freshest_url)])))
    builder = x509.CertificateRevocationListBuilder(
        pki.intermediate.subject, *times, extensions, [_revoked(entry) for entry in entries]
    )
    return builder.sign(pki.intermediate_key, signing.signature_hash(pki.intermediate_key))


def _ext(
    value: x509.ExtensionType, *, critical: bool = False
) -> x509.Extension[x509.ExtensionType]:
    return x509.Extension(value.oid, critical, value)


def _point(url: str) -> x509.DistributionPoint:
    return x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)


def _idp(url: str) -> x509.IssuingDistributionPoint:
    return x509.IssuingDistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)],
        relative_name=None,
        only_contains_user_certs=False,
        only_contains_ca_certs=False,
        only_some_reasons=None,
        indirect_crl=False,
        only_contains_attribute_certs=False,
    )


def _revoked(entry: RevokedEntry) -> x509.RevokedCertificate:
    builder = (
        x509.RevokedCertificateBuilder()
        .serial_number(entry.serial_number)
        .revocation_date(entry.revoked_at)
    )
    if entry.reason not in (None, RevocationReason.UNSPECIFIED):
        assert entry.reason is not None
        flag = x509.ReasonFlags[entry.reason.value]
        builder = builder.add_extension(x509.CRLReason(flag), critical=False)
    return builder.build()


def der_of(reference: x509.CertificateRevocationList) -> bytes:
    return reference.public_bytes(Encoding.DER)


SAMPLE_ENTRIES = (
    RevokedEntry(1, NOW - dt.timedelta(days=3), RevocationReason.KEY_COMPROMISE),
    RevokedEntry(0x80, NOW - dt.timedelta(days=2), None),
    RevokedEntry(MAX_SERIAL, NOW - dt.timedelta(days=1), RevocationReason.UNSPECIFIED),
    RevokedEntry(0xFF00, dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC), None),
    RevokedEntry(0x7F, dt.datetime(2050, 1, 1, tzinfo=dt.UTC), RevocationReason.SUPERSEDED),
    *(RevokedEntry(1000 + code, NOW, reason) for code, reason in enumerate(crl.CRL_REASON_CODES)),
)


# --- DER primitives ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "octets"),
    [(0, "00"), (127, "7f"), (128, "8180"), (255, "81ff"), (256, "820100"), (2**24, "8401000000")],
)
def test_length_uses_short_form_below_128_and_minimal_long_form_above(
    size: int, octets: str
) -> None:
    assert der.length(size).hex() == octets


@pytest.mark.parametrize(
    ("value", "encoding"),
    [
        (0, "020100"),
        (127, "02017f"),
        (128, "02020080"),
        (255, "020200ff"),
        (256, "02020100"),
        (-1, "0201ff"),
        (-128, "020180"),
        (-129, "0202ff7f"),
        (MAX_SERIAL, "0214" + "7f" + "ff" * 19),
        (2**159, "021500" + "80" + "00" * 19),
    ],
)
def test_integer_is_minimal_twos_complement(value: int, encoding: str) -> None:
    assert der.integer(value).hex() == encoding


@given(st.integers(min_value=-(2**200), max_value=2**200))
def test_integer_round_trips_without_redundant_leading_octets(value: int) -> None:
    tag, contents, _ = der.read_tlv(der.integer(value))
    assert (tag, int.from_bytes(contents, "big", signed=True)) == (der.TAG_INTEGER, value)
    if len(contents) > 1:
        redundant = contents[0] == 0 and contents[1] < 0x80
        redundant |= contents[0] == 0xFF and contents[1] >= 0x80
        assert not redundant


@pytest.mark.parametrize(
    ("dotted", "encoding"),
    [
        ("2.5.29.20", "0603551d14"),
        ("1.2.840.113549.1.1.11", "06092a864886f70d01010b"),
        ("1.3.6.1.5.5.7.48.1.5", "06092b0601050507300105"),
        ("2.999.3", "0603883703"),
    ],
)
def test_oid_encodes_base_128_arcs(dotted: str, encoding: str) -> None:
    assert der.oid(dotted).hex() == encoding


@pytest.mark.parametrize(
    ("moment", "encoding"),
    [
        (dt.datetime(1949, 12, 31, 23, 59, 59, tzinfo=dt.UTC), b"\x18\x0f19491231235959Z"),
        (dt.datetime(1950, 1, 1, tzinfo=dt.UTC), b"\x17\x0d500101000000Z"),
        (dt.datetime(2049, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC), b"\x17\x0d491231235959Z"),
        (dt.datetime(2050, 1, 1, tzinfo=dt.UTC), b"\x18\x0f20500101000000Z"),
        (
            dt.datetime(2026, 1, 1, 5, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
            b"\x17\x0d260101000000Z",
        ),
    ],
)
def test_time_is_utctime_from_1950_to_2049_and_generalized_otherwise(
    moment: dt.datetime, encoding: bytes
) -> None:
    assert der.time(moment) == encoding


def test_time_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        der.time(dt.datetime(2026, 1, 1))


def test_small_values_match_x690() -> None:
    assert der.boolean(True).hex() == "0101ff"
    assert der.boolean(False).hex() == "010100"
    assert der.null().hex() == "0500"
    assert der.enumerated(9).hex() == "0a0109"
    assert der.octet_string(b"\x01").hex() == "040101"
    assert der.bit_string(b"\xaa").hex() == "030200aa"
    assert der.sequence(der.null(), der.null()).hex() == "300405000500"
    assert der.context(0, der.null()).hex() == "a0020500"
    assert der.context(6, b"x", constructed=False).hex() == "860178"


def test_pem_is_the_text_cryptography_writes(ec_pki: Pki) -> None:
    for certificate in (ec_pki.root, ec_pki.intermediate, *ec_pki.leaves):
        written = certificate.public_bytes(Encoding.PEM).decode("ascii")
        assert der.pem(certificate.public_bytes(Encoding.DER)) == written


def test_pem_of_a_crl_is_the_text_cryptography_writes(ec_pki: Pki) -> None:
    encoded = crl.build_crl(
        ec_pki.intermediate,
        ec_pki.intermediate_key,
        EncodedRevocationList(SAMPLE_ENTRIES),
        7,
        THIS_UPDATE,
        NEXT_UPDATE,
    )
    written = x509.load_der_x509_crl(encoded).public_bytes(Encoding.PEM).decode("ascii")
    assert der.pem(encoded, "X509 CRL") == written


@pytest.mark.parametrize(
    "encoded",
    [b"", b"\x30", b"\x30\x05\x00", b"\x30\x80", b"\x30\x81\x05" + b"\x00" * 5, b"\x1f\x01\x00"],
)
def test_read_tlv_rejects_truncated_indefinite_or_non_minimal_values(encoded: bytes) -> None:
    with pytest.raises(ValueError, match=r"DER|tag"):
        der.read_tlv(encoded)


def test_read_tlv_reads_long_form_lengths() -> None:
    value = der.octet_string(b"\x07" * 300)
    assert der.read_tlv(value + b"tail") == (der.TAG_OCTET_STRING, b"\x07" * 300, len(value))


# --- Entries and the incremental list ---------------------------------------------------------


def test_entry_carries_reason_code_unless_unspecified() -> None:
    with_reason = crl.encode_entry(RevokedEntry(5, NOW, RevocationReason.PRIVILEGE_WITHDRAWN))
    assert with_reason.hex() == (
        "3020020105170d" + b"260301120000Z".hex() + "300c300a0603551d1504030a0109"
    )
    bare = "3012020105170d" + b"260301120000Z".hex()
    assert crl.encode_entry(RevokedEntry(5, NOW, RevocationReason.UNSPECIFIED)).hex() == bare
    assert crl.encode_entry(RevokedEntry(5, NOW, None)).hex() == bare


@pytest.fixture
def encode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The serial numbers ``crl.encode_entry`` is called with, in order."""
    calls: list[int] = []
    original = crl.encode_entry

    def counting(entry: RevokedEntry) -> bytes:
        calls.append(entry.serial_number)
        return original(entry)

    monkeypatch.setattr(crl, "encode_entry", counting)
    return calls


def test_adding_and_removing_entries_never_re_encodes_the_others(encode_calls: list[int]) -> None:
    entries = [RevokedEntry(serial, NOW, None) for serial in range(1, 101)]
    revocations = EncodedRevocationList(entries)
    revocations.body()
    revocations.add(RevokedEntry(500, NOW, RevocationReason.KEY_COMPROMISE))
    revocations.remove(50)
    revocations.body()
    assert encode_calls == [*range(1, 101), 500]


def test_body_is_the_entries_in_revocation_order_after_adds_and_removals() -> None:
    revocations = EncodedRevocationList(SAMPLE_ENTRIES[:3])
    assert revocations.body() == b"".join(map(crl.encode_entry, SAMPLE_ENTRIES[:3]))
    revocations.add(SAMPLE_ENTRIES[3])
    revocations.add(SAMPLE_ENTRIES[4])
    revocations.remove(SAMPLE_ENTRIES[1].serial_number)
    revocations.add(SAMPLE_ENTRIES[5])
    kept = [SAMPLE_ENTRIES[i] for i in (0, 2, 3, 4, 5)]
    assert revocations.body() == b"".join(map(crl.encode_entry, kept))
    assert len(revocations) == 5
    assert SAMPLE_ENTRIES[1].serial_number not in revocations
    assert SAMPLE_ENTRIES[0].serial_number in revocations


@given(
    st.lists(st.tuples(st.sampled_from(["add", "remove", "publish"]), st.integers(1, 12))),
    st.integers(min_value=0, max_value=3),
)
def test_chunks_and_body_follow_a_plain_list_through_any_changes(
    operations: list[tuple[str, int]], max_appended: int
) -> None:
    revocations = EncodedRevocationList()
    revocations.MAX_APPENDED_CHUNKS = max_appended
    model: dict[int, RevokedEntry] = {}
    for operation, serial in operations:
        if operation == "add" and serial not in model:
            model[serial] = RevokedEntry(serial, NOW + dt.timedelta(seconds=serial), None)
            revocations.add(model[serial])
        elif operation == "remove" and serial in model:
            del model[serial]
            revocations.remove(serial)
        expected = b"".join(map(crl.encode_entry, model.values()))
        assert b"".join(revocations.chunks()) == expected
        if operation == "publish":
            assert revocations.body() == expected
        assert len(revocations.chunks()) <= max_appended + 1
    assert len(revocations) == len(model)


def test_body_is_cached_until_the_list_changes() -> None:
    revocations = EncodedRevocationList(SAMPLE_ENTRIES)
    assert revocations.body() is revocations.body()


def test_a_serial_number_is_listed_once() -> None:
    revocations = EncodedRevocationList(SAMPLE_ENTRIES[:1])
    with pytest.raises(ValueError, match="already on the list"):
        revocations.add(SAMPLE_ENTRIES[0])
    with pytest.raises(KeyError):
        revocations.remove(424242)


# --- Signed CRLs against cryptography's builder -----------------------------------------------


@pytest.mark.slow
def test_rsa_crl_is_byte_identical_to_cryptography_builder(rsa_pki: Pki) -> None:
    ours = crl.build_crl(
        rsa_pki.intermediate,
        rsa_pki.intermediate_key,
        EncodedRevocationList(SAMPLE_ENTRIES),
        42,
        THIS_UPDATE,
        NEXT_UPDATE,
        freshest_url=DELTA_URL,
    )
    assert ours == der_of(reference_crl(rsa_pki, SAMPLE_ENTRIES, 42, freshest_url=DELTA_URL))


@pytest.mark.slow
def test_rsa_delta_crl_with_idp_is_byte_identical_to_cryptography_builder(rsa_pki: Pki) -> None:
    ours = crl.build_crl(
        rsa_pki.intermediate,
        rsa_pki.intermediate_key,
        EncodedRevocationList(SAMPLE_ENTRIES[:2]),
        43,
        THIS_UPDATE,
        NEXT_UPDATE,
        delta_of=42,
        idp_url=rsa_pki.urls.crl,
    )
    expected = reference_crl(rsa_pki, SAMPLE_ENTRIES[:2], 43, delta_of=42, idp_url=rsa_pki.urls.crl)
    assert ours == der_of(expected)


@pytest.mark.slow
def test_empty_crl_omits_revoked_certificates_like_the_builder(rsa_pki: Pki) -> None:
    ours = crl.build_crl(
        rsa_pki.intermediate, rsa_pki.intermediate_key, b"", 1, THIS_UPDATE, NEXT_UPDATE
    )
    assert ours == der_of(reference_crl(rsa_pki, [], 1))
    assert len(x509.load_der_x509_crl(ours)) == 0


@pytest.mark.parametrize(
    ("algorithm", "signature_oid"),
    [
        (KeyAlgorithm.EC_P256, SignatureAlgorithmOID.ECDSA_WITH_SHA256),
        (KeyAlgorithm.EC_P384, SignatureAlgorithmOID.ECDSA_WITH_SHA384),
    ],
)
def test_ecdsa_crl_has_builder_tbs_and_a_valid_signature(
    algorithm: KeyAlgorithm, signature_oid: x509.ObjectIdentifier
) -> None:
    pki = make_pki(algorithm)
    revocations = EncodedRevocationList(SAMPLE_ENTRIES)
    ours = x509.load_der_x509_crl(
        crl.build_crl(
            pki.intermediate, pki.intermediate_key, revocations, 7, THIS_UPDATE, NEXT_UPDATE
        )
    )
    assert ours.tbs_certlist_bytes == reference_crl(pki, SAMPLE_ENTRIES, 7).tbs_certlist_bytes
    assert ours.signature_algorithm_oid == signature_oid
    assert ours.is_signature_valid(pki.intermediate_key.public_key())


def test_crl_reads_back_with_its_extensions_and_entries(ec_pki: Pki) -> None:
    der_bytes = crl.build_crl(
        ec_pki.intermediate,
        ec_pki.intermediate_key,
        EncodedRevocationList(SAMPLE_ENTRIES),
        12,
        THIS_UPDATE,
        NEXT_UPDATE,
        freshest_url=DELTA_URL,
    )
    parsed = x509.load_der_x509_crl(der_bytes)
    extensions = parsed.extensions
    ski = ec_pki.intermediate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.value.digest
    assert extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 12
    freshest = extensions.get_extension_for_class(x509.FreshestCRL).value
    assert freshest == x509.FreshestCRL([_point(DELTA_URL)])
    assert (parsed.issuer, parsed.last_update_utc, parsed.next_update_utc) == (
        ec_pki.intermediate.subject,
        THIS_UPDATE,
        NEXT_UPDATE,
    )
    for entry in SAMPLE_ENTRIES:
        found = parsed.get_revoked_certificate_by_serial_number(entry.serial_number)
        assert found is not None
        assert found.revocation_date_utc == entry.revoked_at
        assert _reason_of(found) == _listed_reason(entry.reason)


def test_delta_crl_carries_a_critical_delta_crl_indicator(ec_pki: Pki) -> None:
    parsed = x509.load_der_x509_crl(
        crl.build_crl(
            ec_pki.intermediate,
            ec_pki.intermediate_key,
            EncodedRevocationList(SAMPLE_ENTRIES[:1]),
            13,
            THIS_UPDATE,
            NEXT_UPDATE,
            delta_of=12,
        )
    )
    indicator = parsed.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert (indicator.critical, indicator.value.crl_number) == (True, 12)
    assert parsed.is_signature_valid(ec_pki.intermediate_key.public_key())


@pytest.mark.slow
def test_prejoined_body_gives_the_same_crl_as_the_list(rsa_pki: Pki) -> None:
    revocations = EncodedRevocationList(SAMPLE_ENTRIES)
    key, issuer = rsa_pki.intermediate_key, rsa_pki.intermediate
    from_list = crl.build_crl(issuer, key, revocations, 3, THIS_UPDATE, NEXT_UPDATE)
    from_body = crl.build_crl(issuer, key, revocations.body(), 3, THIS_UPDATE, NEXT_UPDATE)
    assert from_list == from_body


@pytest.mark.parametrize(
    ("number", "next_update", "delta_of", "freshest_url", "message"),
    [
        (-1, NEXT_UPDATE, None, None, "non-negative"),
        (2**159, NEXT_UPDATE, None, None, "20 octets"),
        (5, THIS_UPDATE, None, None, "later than"),
        (5, NEXT_UPDATE, 5, None, "lower than"),
        (5, NEXT_UPDATE, 4, DELTA_URL, "freshestCRL"),
    ],
)
def test_build_crl_refuses_what_rfc_5280_forbids(
    ec_pki: Pki,
    number: int,
    next_update: dt.datetime,
    delta_of: int | None,
    freshest_url: str | None,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        crl.build_crl(
            ec_pki.intermediate,
            ec_pki.intermediate_key,
            b"",
            number,
            THIS_UPDATE,
            next_update,
            delta_of=delta_of,
            freshest_url=freshest_url,
        )


def _reason_of(revoked: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def _listed_reason(reason: RevocationReason | None) -> x509.ReasonFlags | None:
    if reason is None or reason is RevocationReason.UNSPECIFIED:
        return None
    return x509.ReasonFlags[reason.value]


# --- Property: any entries, any times, the builder's bytes ------------------------------------

_TIMEZONES = st.sampled_from(
    [dt.UTC, dt.timezone(dt.timedelta(hours=5, minutes=30)), dt.timezone(dt.timedelta(hours=-8))]
)
# cryptography refuses times before 1950; a day of margin keeps offsets inside its range.
_TIMES = st.datetimes(
    min_value=dt.datetime(1950, 1, 2),
    max_value=dt.datetime(2100, 12, 31),
    timezones=_TIMEZONES,
)
_ENTRIES = st.lists(
    st.builds(
        RevokedEntry,
        serial_number=st.integers(min_value=1, max_value=MAX_SERIAL),
        revoked_at=_TIMES,
        reason=st.none() | st.sampled_from(RevocationReason),
    ),
    max_size=30,
    unique_by=lambda entry: entry.serial_number,
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(
    entries=_ENTRIES,
    number=st.integers(min_value=0, max_value=MAX_SERIAL),
    this_update=_TIMES,
    validity=st.timedeltas(min_value=dt.timedelta(seconds=1), max_value=dt.timedelta(days=800)),
    freshest=st.booleans(),
)
def test_any_crl_is_byte_identical_to_cryptography_builder(
    rsa_pki: Pki,
    entries: list[RevokedEntry],
    number: int,
    this_update: dt.datetime,
    validity: dt.timedelta,
    freshest: bool,
) -> None:
    next_update = this_update.replace(microsecond=0) + max(validity, dt.timedelta(seconds=1))
    freshest_url = DELTA_URL if freshest else None
    ours = crl.build_crl(
        rsa_pki.intermediate,
        rsa_pki.intermediate_key,
        EncodedRevocationList(entries),
        number,
        this_update,
        next_update,
        freshest_url=freshest_url,
    )
    expected = reference_crl(
        rsa_pki, entries, number, freshest_url=freshest_url, times=(this_update, next_update)
    )
    assert ours == der_of(expected)


def test_times_before_1950_are_generalized_time_that_cryptography_reads(ec_pki: Pki) -> None:
    old = RevokedEntry(9, dt.datetime(1949, 6, 1, tzinfo=dt.UTC), None)
    parsed = x509.load_der_x509_crl(
        crl.build_crl(
            ec_pki.intermediate,
            ec_pki.intermediate_key,
            EncodedRevocationList([old]),
            1,
            dt.datetime(1949, 6, 1, tzinfo=dt.UTC),
            NEXT_UPDATE,
        )
    )
    revoked = parsed.get_revoked_certificate_by_serial_number(9)
    assert revoked is not None
    assert revoked.revocation_date_utc == old.revoked_at
    assert parsed.last_update_utc == old.revoked_at


# --- Re-cut policy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_entries", "delta_entries", "base_age", "due"),
    [
        (None, 0, dt.timedelta(0), True),
        (100_000, 5_000, dt.timedelta(hours=1), False),
        (100_000, 10_001, dt.timedelta(hours=1), True),
        (1_000, 101, dt.timedelta(hours=1), True),
        (1_000, 100, dt.timedelta(hours=1), False),
        (1_000, 0, dt.timedelta(hours=24), True),
    ],
)
def test_base_is_recut_when_the_delta_grows_or_the_base_ages(
    base_entries: int | None, delta_entries: int, base_age: dt.timedelta, due: bool
) -> None:
    assert RecutPolicy().base_due(base_entries, delta_entries, base_age) is due
