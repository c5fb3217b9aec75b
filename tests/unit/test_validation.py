"""Behaviour of subject and subjectAltName validation (domain/model/validation.py)."""

from __future__ import annotations

import contextlib
import ipaddress

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.model.errors import SANError, SubjectError
from domain.model.validation import normalize_sans, normalize_subject, parse_san_list
from domain.model.values import SAN, CertificateType, SANType, Subject

SERVER = CertificateType.SERVER
CLIENT = CertificateType.CLIENT


def _cert_type_for(san_type: SANType) -> CertificateType:
    return SERVER if san_type in (SANType.DNS, SANType.IP) else CLIENT


def normalized(san_type: SANType, value: str) -> str:
    """Normalise one SAN under the certificate type that accepts its type."""
    return normalize_sans(_cert_type_for(san_type), [SAN(san_type, value)])[0].value


def refused(san_type: SANType, value: str) -> SANError:
    """Return the SANError raised for one SAN under the type that accepts it."""
    with pytest.raises(SANError) as info:
        normalized(san_type, value)
    return info.value


def subject_refused(subject: Subject) -> SubjectError:
    with pytest.raises(SubjectError) as info:
        normalize_subject(subject)
    return info.value


def general_name(san: SAN) -> x509.GeneralName:
    """Build the cryptography GeneralName a certificate would carry for ``san``."""
    if san.type is SANType.DNS:
        return x509.DNSName(san.value)
    if san.type is SANType.IP:
        return x509.IPAddress(ipaddress.ip_address(san.value))
    if san.type is SANType.EMAIL:
        return x509.RFC822Name(san.value)
    return x509.UniformResourceIdentifier(san.value)


def encode_in_extension(san: SAN) -> bytes:
    return x509.SubjectAlternativeName([general_name(san)]).public_bytes()


# --- subject -----------------------------------------------------------------------------


def test_subject_attributes_are_stripped_and_empty_optionals_become_none() -> None:
    subject = Subject(
        common_name="  web.example.com ",
        organization=" Example GmbH ",
        organizational_unit="   ",
        locality="",
        state=None,
        country=" de ",
    )

    assert normalize_subject(subject) == Subject(
        common_name="web.example.com", organization="Example GmbH", country="DE"
    )


def test_subject_keeps_non_ascii_text() -> None:
    subject = Subject(common_name="Jürgen Müller", locality="Köln", state="Nordrhein-Westfalen")

    assert normalize_subject(subject) == subject


@pytest.mark.parametrize("common_name", ["", "   "])
def test_subject_without_common_name_is_refused(common_name: str) -> None:
    error = subject_refused(Subject(common_name=common_name))

    assert error.field == "subject.common_name"
    assert "required" in error.detail


def test_common_name_of_64_characters_is_accepted() -> None:
    assert normalize_subject(Subject("a" * 64)).common_name == "a" * 64


def test_common_name_of_65_characters_is_refused() -> None:
    error = subject_refused(Subject("a" * 65))

    assert error.field == "subject.common_name"
    assert "at most 64" in error.detail


def test_common_name_longer_than_64_utf8_bytes_is_refused() -> None:
    error = subject_refused(Subject("ü" * 33))

    assert error.field == "subject.common_name"


@pytest.mark.parametrize(
    ("attribute", "limit"),
    [("organization", 64), ("organizational_unit", 64), ("locality", 128), ("state", 128)],
)
def test_optional_attributes_are_limited_to_their_rfc5280_bounds(
    attribute: str, limit: int
) -> None:
    accepted = normalize_subject(Subject("cn", **{attribute: "x" * limit}))
    assert getattr(accepted, attribute) == "x" * limit

    error = subject_refused(Subject("cn", **{attribute: "x" * (limit + 1)}))
    assert error.field == f"subject.{attribute}"
    assert f"at most {limit}" in error.detail


def test_country_is_upper_cased() -> None:
    assert normalize_subject(Subject("cn", country="fr")).country == "FR"


def test_country_name_in_full_is_refused_with_an_example() -> None:
    error = subject_refused(Subject("cn", country="Germany"))

    assert error.field == "subject.country"
    assert error.detail == "country must be a 2-letter ISO 3166 code such as 'DE'; got 'Germany'"


@pytest.mark.parametrize("country", ["D", "DEU", "1A", "D-", "\u00c4\u00d6", "D E"])
def test_country_must_be_two_ascii_letters(country: str) -> None:
    assert subject_refused(Subject("cn", country=country)).field == "subject.country"


@pytest.mark.parametrize(
    "attribute",
    ["common_name", "organization", "organizational_unit", "locality", "state", "country"],
)
@pytest.mark.parametrize("char", ["\x00", "\x07", "\t", "\n", "\x1f", "\x7f", "\x85", "\x9f"])
def test_control_characters_are_refused_anywhere_in_the_subject(attribute: str, char: str) -> None:
    values = {"common_name": "cn", attribute: f"D{char}E"}
    error = subject_refused(Subject(**values))

    assert error.field == f"subject.{attribute}"
    assert f"U+{ord(char):04X}" in error.detail


def test_trailing_newline_in_common_name_is_refused_not_stripped() -> None:
    assert subject_refused(Subject("web.example.com\n")).field == "subject.common_name"


# --- SAN list: count, types, duplicates ---------------------------------------------------


def test_empty_san_list_is_accepted() -> None:
    assert normalize_sans(SERVER, []) == ()


def test_ten_sans_are_accepted() -> None:
    sans = [SAN(SANType.DNS, f"host{i}.example.com") for i in range(10)]

    assert len(normalize_sans(SERVER, sans)) == 10


def test_eleven_sans_are_refused() -> None:
    sans = [SAN(SANType.DNS, f"host{i}.example.com") for i in range(11)]

    with pytest.raises(SANError) as info:
        normalize_sans(SERVER, sans)

    assert info.value.field == "sans"
    assert "at most 10" in info.value.detail


def test_san_order_is_kept() -> None:
    sans = [SAN(SANType.IP, "192.0.2.1"), SAN(SANType.DNS, "B.example"), SAN(SANType.DNS, "a.ex")]

    assert normalize_sans(SERVER, sans) == (
        SAN(SANType.IP, "192.0.2.1"),
        SAN(SANType.DNS, "b.example"),
        SAN(SANType.DNS, "a.ex"),
    )


@pytest.mark.parametrize(
    ("san_type", "value"), [(SANType.EMAIL, "a@example.com"), (SANType.URI, "urn:x:y")]
)
def test_server_certificate_refuses_email_and_uri(san_type: SANType, value: str) -> None:
    sans = [SAN(SANType.DNS, "example.com"), SAN(san_type, value)]

    with pytest.raises(SANError) as info:
        normalize_sans(SERVER, sans)

    assert info.value.field == "sans[1].type"
    assert "'dns' and 'ip'" in info.value.detail


@pytest.mark.parametrize(
    ("san_type", "value"), [(SANType.DNS, "example.com"), (SANType.IP, "192.0.2.1")]
)
def test_client_certificate_refuses_dns_names_and_ip_addresses(
    san_type: SANType, value: str
) -> None:
    with pytest.raises(SANError) as info:
        normalize_sans(CLIENT, [SAN(san_type, value)])

    assert info.value.field == "sans[0].type"
    assert "'email' and 'uri'" in info.value.detail


@pytest.mark.parametrize(
    ("san_type", "first", "second"),
    [
        (SANType.DNS, "Example.com", "example.com."),
        (SANType.DNS, "bücher.example", "xn--bcher-kva.example"),
        (SANType.IP, "2001:db8::1", "2001:DB8:0:0:0:0:0:1"),
        (SANType.EMAIL, "a@Example.com", "a@example.com"),
        (SANType.URI, "SPIFFE://example.org/x", "spiffe://example.org/x"),
    ],
)
def test_duplicates_after_normalisation_are_refused(
    san_type: SANType, first: str, second: str
) -> None:
    other = SAN(SANType.IP, "192.0.2.9") if san_type in (SANType.DNS, SANType.IP) else None
    sans = [SAN(san_type, first), *([other] if other else []), SAN(san_type, second)]

    with pytest.raises(SANError) as info:
        normalize_sans(_cert_type_for(san_type), sans)

    index = len(sans) - 1
    assert info.value.field == f"sans[{index}].value"
    assert "repeats sans[0]" in info.value.detail


def test_error_field_names_the_index_of_the_bad_entry() -> None:
    sans = [SAN(SANType.DNS, f"h{i}.example.com") for i in range(3)]
    sans.append(SAN(SANType.DNS, "bad_name.example.com"))

    with pytest.raises(SANError) as info:
        normalize_sans(SERVER, sans)

    assert info.value.field == "sans[3].value"


def test_san_given_with_a_plain_string_type_is_accepted() -> None:
    raw = SAN(type="dns", value="Example.com")  # type: ignore[arg-type]

    assert normalize_sans(SERVER, [raw]) == (SAN(SANType.DNS, "example.com"),)


# --- parse_san_list ----------------------------------------------------------------------


def test_parse_san_list_turns_pairs_into_sans_without_touching_values() -> None:
    raw = [("dns", " A.example "), ("IP", "192.0.2.1"), (" Email ", "a@b.c"), ("uri", "urn:a")]

    assert parse_san_list(raw) == [
        SAN(SANType.DNS, " A.example "),
        SAN(SANType.IP, "192.0.2.1"),
        SAN(SANType.EMAIL, "a@b.c"),
        SAN(SANType.URI, "urn:a"),
    ]


def test_parse_san_list_refuses_an_unknown_type_and_lists_the_allowed_ones() -> None:
    with pytest.raises(SANError) as info:
        parse_san_list([("dns", "a.example"), ("x400", "c=de")])

    assert info.value.field == "sans[1].type"
    assert "'dns', 'ip', 'email' or 'uri'" in info.value.detail
    assert "'x400'" in info.value.detail


# --- DNS names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.Example", "xn--bcher-kva.example"),
        ("münchen.de", "xn--mnchen-3ya.de"),
        ("faß.de", "xn--fa-hia.de"),  # IDNA2008: not mapped to "fass.de"
        ("cafe\u0301.example", "xn--caf-dma.example"),  # decomposed input is composed
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
        ("XN--BCHER-KVA.example", "xn--bcher-kva.example"),
    ],
)
def test_internationalised_names_become_lower_case_a_labels(value: str, expected: str) -> None:
    assert normalized(SANType.DNS, value) == expected


def test_dns_name_is_lower_cased_stripped_and_loses_its_trailing_dot() -> None:
    assert normalized(SANType.DNS, "  WWW.Example.COM. ") == "www.example.com"


def test_single_label_dns_name_is_accepted() -> None:
    assert normalized(SANType.DNS, "localhost") == "localhost"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("*.example.com", "*.example.com"), ("*.Bücher.example", "*.xn--bcher-kva.example")],
)
def test_wildcard_leftmost_label_is_accepted(value: str, expected: str) -> None:
    assert normalized(SANType.DNS, value) == expected


@pytest.mark.parametrize(
    "value",
    ["f*o.example.com", "*foo.example.com", "foo*.example.com", "a.*.example.com", "*.*.ex.com"],
)
def test_wildcard_must_be_the_whole_leftmost_label(value: str) -> None:
    error = refused(SANType.DNS, value)

    assert error.field == "sans[0].value"
    assert "whole leftmost label" in error.detail


@pytest.mark.parametrize("value", ["*.com", "*", "*."])
def test_wildcard_needs_two_labels_after_it(value: str) -> None:
    assert "at least two labels" in refused(SANType.DNS, value).detail


@pytest.mark.parametrize("value", ["", "   ", "."])
def test_empty_dns_name_is_refused(value: str) -> None:
    assert "must not be empty" in refused(SANType.DNS, value).detail


@pytest.mark.parametrize("value", [".example.com", "a..example.com", "example.com.."])
def test_empty_label_is_refused(value: str) -> None:
    assert "empty label" in refused(SANType.DNS, value).detail


@pytest.mark.parametrize("value", ["-a.example.com", "a-.example.com", "a.-example.com"])
def test_label_with_leading_or_trailing_hyphen_is_refused(value: str) -> None:
    assert "hyphen" in refused(SANType.DNS, value).detail


def test_label_with_hyphens_in_third_and_fourth_position_is_refused() -> None:
    assert "'--'" in refused(SANType.DNS, "ab--cd.example.com").detail


@pytest.mark.parametrize(
    "value", ["a_b.example.com", "a b.example.com", "a/b.example.com", "snow\u2603.example"]
)
def test_characters_other_than_letters_digits_and_hyphen_are_refused(value: str) -> None:
    assert "letters, digits and '-'" in refused(SANType.DNS, value).detail


def test_full_width_letters_are_refused_with_the_plain_spelling() -> None:
    error = refused(SANType.DNS, "\uff45xample.com")

    assert "'example'" in error.detail


def test_label_starting_with_a_combining_mark_is_refused() -> None:
    assert "combining mark" in refused(SANType.DNS, "\u0301a.example").detail


@pytest.mark.parametrize("value", ["xn--a-.example", "xn--zz.example", "xn--.example"])
def test_malformed_a_label_is_refused(value: str) -> None:
    assert "not a valid" in refused(SANType.DNS, value).detail


def test_a_label_decoding_to_a_symbol_is_refused() -> None:
    assert "not a valid A-label" in refused(SANType.DNS, "xn--ls8h.example").detail


def test_label_of_63_characters_is_accepted_and_64_refused() -> None:
    assert normalized(SANType.DNS, "a" * 63 + ".example") == "a" * 63 + ".example"

    assert "at most 63" in refused(SANType.DNS, "a" * 64 + ".example").detail


def _cjk(count: int) -> str:
    """``count`` distinct CJK ideographs: short in Unicode, long as an A-label."""
    return "".join(chr(0x4E00 + 97 * i) for i in range(count))


def test_unicode_label_too_long_once_encoded_is_refused() -> None:
    label = _cjk(30)
    assert len("xn--" + label.encode("punycode").decode()) > 63

    assert "at most 63" in refused(SANType.DNS, label + ".example").detail


def test_name_of_253_characters_is_accepted_and_254_refused() -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(name) == 253
    assert normalized(SANType.DNS, name) == name

    assert "at most 253" in refused(SANType.DNS, name + "d").detail


def test_name_too_long_once_encoded_is_refused() -> None:
    name = ".".join([_cjk(12)] * 8)  # 103 characters; 271 once encoded

    assert "at most 253" in refused(SANType.DNS, name).detail


@pytest.mark.parametrize("value", ["192.0.2.1", "2001:db8::1", "[2001:db8::1]"])
def test_ip_address_given_as_dns_name_is_refused_with_a_hint(value: str) -> None:
    assert "'ip' entry" in refused(SANType.DNS, value).detail


@pytest.mark.parametrize("value", ["1.2.3", "123", "host.example.42"])
def test_dns_name_ending_in_an_all_digit_label_is_refused(value: str) -> None:
    assert "all digits" in refused(SANType.DNS, value).detail


@pytest.mark.parametrize("char", ["\x00", "\t", "\x7f", "\x85"])
def test_control_characters_in_a_dns_name_are_refused(char: str) -> None:
    error = refused(SANType.DNS, f"www{char}.example.com")

    assert error.field == "sans[0].value"
    assert "control character" in error.detail


# --- IP addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("192.0.2.1", "192.0.2.1"),
        (" 192.0.2.1 ", "192.0.2.1"),
        ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("2001:db8:0:1:0:0:0:0", "2001:db8:0:1::"),
    ],
)
def test_ip_address_is_normalised_to_its_compressed_form(value: str, expected: str) -> None:
    assert normalized(SANType.IP, value) == expected


@pytest.mark.parametrize("value", ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1/32"])
def test_ip_network_is_refused(value: str) -> None:
    error = refused(SANType.IP, value)

    assert error.field == "sans[0].value"
    assert "not a network" in error.detail


def test_ipv6_zone_index_is_refused() -> None:
    assert "zone index" in refused(SANType.IP, "fe80::1%eth0").detail


@pytest.mark.parametrize("value", ["", "256.0.0.1", "010.0.0.1", "1.2.3", "example.com", "::g"])
def test_text_that_is_not_an_ip_address_is_refused(value: str) -> None:
    assert "IPv4 address such as" in refused(SANType.IP, value).detail


# --- email addresses ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("John.Doe@Example.COM", "John.Doe@example.com"),
        ("anna@bücher.example", "anna@xn--bcher-kva.example"),
        ("o'brien+tag@example.com", "o'brien+tag@example.com"),
        ("a@example.com.", "a@example.com"),
        ('"john doe"@example.com', '"john doe"@example.com'),
        ('"a@b"@example.com', '"a@b"@example.com'),
        ('"a\\"b"@example.com', '"a\\"b"@example.com'),
    ],
)
def test_email_address_keeps_its_local_part_and_normalises_its_domain(
    value: str, expected: str
) -> None:
    assert normalized(SANType.EMAIL, value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "no-at-sign",
        "@example.com",
        "a@",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a b@example.com",
        "a(b)@example.com",
        '"unterminated@example.com',
        'a"b"@example.com',
        "ü@example.com",
    ],
)
def test_malformed_email_address_is_refused(value: str) -> None:
    assert refused(SANType.EMAIL, value).field == "sans[0].value"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a@10.0.0.1", "host name"),
        ("a@[10.0.0.1]", "host name"),
        ("a@exa_mple.com", "letters, digits"),
        ("a@*.example.com", "'*'"),
        ("a@-x.example.com", "hyphen"),
    ],
)
def test_email_domain_must_be_a_valid_dns_name(value: str, message: str) -> None:
    assert message in refused(SANType.EMAIL, value).detail


def test_email_local_part_of_64_characters_is_accepted_and_65_refused() -> None:
    assert normalized(SANType.EMAIL, "a" * 64 + "@example.com") == "a" * 64 + "@example.com"

    assert "at most 64" in refused(SANType.EMAIL, "a" * 65 + "@example.com").detail


def test_email_address_of_254_characters_is_accepted_and_255_refused() -> None:
    domain = ".".join(["a" * 63, "b" * 63, "c" * 61])
    address = "l" * 64 + "@" + domain
    assert len(address) == 254
    assert normalized(SANType.EMAIL, address) == address

    assert "at most 254" in refused(SANType.EMAIL, address + "c").detail


# --- URIs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "spiffe://example.org/ns/prod/sa/web",
        "urn:uuid:123e4567-e89b-12d3-a456-426614174000",
        "https://example.com:8443/a/b?c=d&e=f#g",
        "https://user@example.com/",
        "http://[2001:db8::1]:8080/x",
        "mailto:someone@example.com",
        "https://example.com/%E2%82%AC",
        "tag:example.com,2024:thing",
    ],
)
def test_absolute_uri_is_accepted_unchanged(value: str) -> None:
    assert normalized(SANType.URI, value) == value


def test_uri_scheme_is_lower_cased_and_the_rest_kept() -> None:
    assert normalized(SANType.URI, " SPIFFE://Example.org/Web ") == "spiffe://Example.org/Web"


@pytest.mark.parametrize("value", ["example.com/x", "/relative", "", "1http://x", "ht tp://x"])
def test_uri_without_a_scheme_is_refused(value: str) -> None:
    assert "must be absolute" in refused(SANType.URI, value).detail


def test_uri_with_nothing_after_the_scheme_is_refused() -> None:
    assert "after 'urn:'" in refused(SANType.URI, "urn:").detail


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://example.com/a b", "percent-encode ' '"),
        ("https://example.com/\u00e9", "percent-encode"),
        ('https://example.com/"x"', "percent-encode"),
        ("https://example.com/%zz", "two hex digits"),
        ("https://example.com/a#b#c", "only one '#'"),
        ("file:///etc/passwd", "must name a host"),
        ("https://", "must name a host"),
        ("https://u@v@example.com/", "only one '@'"),
        ("https://[not-ipv6]/", "IPv6 address"),
        ("https://example.com/[x]", "'[' and ']'"),
        ("https://example.com:http/", "port"),
        ("urn:a\x00b", "control character"),
    ],
)
def test_malformed_uri_is_refused_with_the_reason(value: str, message: str) -> None:
    error = refused(SANType.URI, value)

    assert error.field == "sans[0].value"
    assert message in error.detail


def test_uri_of_2048_characters_is_accepted_and_2049_refused() -> None:
    prefix = "https://example.com/"
    uri = prefix + "a" * (2048 - len(prefix))
    assert normalized(SANType.URI, uri) == uri

    assert "at most 2048" in refused(SANType.URI, uri + "a").detail


# --- properties --------------------------------------------------------------------------

# The first draw of st.characters() builds Hypothesis's Unicode table (about a second on
# a cold cache), which would trip the too_slow health check in a fresh checkout.
property_test = settings(suppress_health_check=[HealthCheck.too_slow])

# Every code point, including controls, unassigned ones and lone surrogates.
any_char = st.characters(exclude_categories=())
label_char = st.one_of(
    st.sampled_from("abcxyz0189-AZ_*.\u00fc\u00df\u00e9\u0436\u4e2d\u03b1\u0301\uff45"),
    st.characters(categories=["Ll", "Lo", "Lu", "Nd", "Mn"]),
)
dns_like = st.builds(
    lambda wildcard, labels, dot: ("*." if wildcard else "") + ".".join(labels) + dot,
    st.booleans(),
    st.lists(st.text(label_char, min_size=1, max_size=20), min_size=1, max_size=5),
    st.sampled_from(["", "."]),
)
local_part = st.one_of(
    st.from_regex(
        r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,10}(\.[A-Za-z0-9_-]{1,5}){0,2}", fullmatch=True
    ),
    st.from_regex(r'"([ !#-\[\]-~]|\\[ -~]){0,10}"', fullmatch=True),
    st.text(any_char, max_size=10),
)
uri_like = st.builds(
    lambda scheme, rest: f"{scheme}:{rest}",
    st.from_regex(r"[A-Za-z][A-Za-z0-9+.-]{0,5}", fullmatch=True),
    st.one_of(
        st.from_regex(r"//[a-z0-9.-]{1,10}(:[0-9]{1,4})?(/[A-Za-z0-9._~%!$&'()*+,;=:@-]*){0,3}"),
        st.text(st.sampled_from("abz09-._~:/?#[]@!$&'()*+,;=% \u00e9"), max_size=20),
    ),
)
candidates: dict[SANType, st.SearchStrategy[str]] = {
    SANType.DNS: dns_like,
    SANType.IP: st.ip_addresses().map(lambda ip: ip.exploded.upper()),
    SANType.EMAIL: st.builds(lambda local, domain: f"{local}@{domain}", local_part, dns_like),
    SANType.URI: uri_like,
}
shaped_text = st.one_of(
    st.text(any_char),
    st.builds(
        str.__add__,
        st.sampled_from(["xn--", "*.", "a@", '"a', "https://", "urn:", "[", "::", "10.0."]),
        st.text(any_char),
    ),
    st.builds(lambda a, b: f"{a}@{b}", st.text(any_char), st.text(any_char)),
)


def _accepted(san_type: SANType, value: str) -> str | None:
    """The normalised value, or None when the value is refused with SANError."""
    try:
        return normalized(san_type, value)
    except SANError:
        return None


@property_test
@given(st.sampled_from(SANType).flatmap(lambda t: st.tuples(st.just(t), candidates[t])))
def test_normalising_a_normalised_san_changes_nothing(case: tuple[SANType, str]) -> None:
    san_type, value = case
    once = _accepted(san_type, value)
    if once is not None:
        assert normalized(san_type, once) == once


@property_test
@given(
    st.sampled_from(SANType),
    st.one_of(shaped_text, st.sampled_from(SANType).flatmap(lambda t: candidates[t])),
)
def test_any_text_is_either_accepted_or_refused_with_san_error(
    san_type: SANType, value: str
) -> None:
    for cert_type in CertificateType:
        with contextlib.suppress(SANError):
            normalize_sans(cert_type, [SAN(san_type, value)])


@property_test
@given(shaped_text, shaped_text)
def test_any_san_type_text_is_parsed_or_refused_with_san_error(type_name: str, value: str) -> None:
    with contextlib.suppress(SANError):
        parse_san_list([(type_name, value)])


@property_test
@given(dns_like)
def test_every_accepted_dns_name_fits_in_a_certificate(value: str) -> None:
    name = _accepted(SANType.DNS, value)
    if name is not None:
        assert name.isascii()
        assert len(name) <= 253
        assert encode_in_extension(SAN(SANType.DNS, name))


@property_test
@given(st.sampled_from(SANType).flatmap(lambda t: st.tuples(st.just(t), candidates[t])))
def test_every_accepted_san_can_be_encoded_in_a_certificate(case: tuple[SANType, str]) -> None:
    san_type, value = case
    accepted = _accepted(san_type, value)
    if accepted is not None:
        assert encode_in_extension(SAN(san_type, accepted))


subject_text = st.one_of(st.none(), st.text(any_char, max_size=70), st.text(max_size=5))


@property_test
@given(st.builds(Subject, st.text(any_char, max_size=70), *[subject_text] * 5))
def test_any_subject_text_is_either_accepted_or_refused_with_subject_error(
    subject: Subject,
) -> None:
    with contextlib.suppress(SubjectError):
        normalize_subject(subject)


@property_test
@given(
    st.builds(
        Subject,
        st.text(max_size=64),
        *[st.one_of(st.none(), st.text(max_size=64))] * 4,
        st.one_of(st.none(), st.from_regex(r"\s*[A-Za-z]{2}\s*", fullmatch=True)),
    )
)
def test_accepted_subject_is_stable_and_fits_in_a_certificate_name(subject: Subject) -> None:
    try:
        once = normalize_subject(subject)
    except SubjectError:
        return
    assert normalize_subject(once) == once
    attributes = [
        (NameOID.COMMON_NAME, once.common_name),
        (NameOID.ORGANIZATION_NAME, once.organization),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, once.organizational_unit),
        (NameOID.LOCALITY_NAME, once.locality),
        (NameOID.STATE_OR_PROVINCE_NAME, once.state),
        (NameOID.COUNTRY_NAME, once.country),
    ]
    name = x509.Name([x509.NameAttribute(oid, v) for oid, v in attributes if v is not None])
    assert name.public_bytes()
