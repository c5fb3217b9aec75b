"""What the read models show: the CA list, certificate lists with filters and pages, the
revocation index, and expiry without an event; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from uuid import uuid4

import pytest
from cryptography import x509

from domain.adapters.settings import Settings
from domain.application.service import PrivateCA
from domain.model.errors import NotFoundError, ValidationError
from domain.model.values import (
    SAN,
    CAKind,
    CertificateType,
    KeyAlgorithm,
    RevocationReason,
    SANType,
)
from projections.readmodels.models import (
    CAViewStatus,
    CertificateCounts,
    CertificateFilter,
    CertificateViewStatus,
    IntermediateQuota,
    RootQuota,
)
from projections.readmodels.queries import ReadModels, encode_cursor
from projections.readmodels.worker import catch_up
from tests.builders import (
    ADMIN,
    OPERATOR,
    enabled_intermediate,
    enabled_root,
    intermediate_profile,
    issue,
    server_request,
)
from tests.conftest import SettableClock
from tests.projection_helpers import History, common_names, issue_many, list_all, write_history


@pytest.fixture
def read_models(settings: Settings) -> Iterator[ReadModels]:
    with ReadModels.open(settings) as opened:
        yield opened


@pytest.fixture
def history(service: PrivateCA, settings: Settings) -> History:
    """The representative history, projected after the fact."""
    written = write_history(service)
    catch_up(settings)
    return written


def test_the_ca_list_shows_kind_status_quota_and_counts(
    history: History, read_models: ReadModels, clock: SettableClock
) -> None:
    root, issuing, retired = read_models.list_cas(clock.now)
    assert (root.id, issuing.id, retired.id) == (
        history.root_id,
        history.issuing_id,
        history.retired_id,
    )
    assert root.kind is CAKind.ROOT
    assert root.parent_id is None
    assert root.quota == RootQuota(total=60, assigned=25, available=35)
    assert issuing.kind is CAKind.INTERMEDIATE
    assert issuing.parent_id == history.root_id
    assert issuing.status is CAViewStatus.ENABLED
    assert issuing.quota == IntermediateQuota(remaining=14, issued=6)
    assert issuing.certificates == CertificateCounts(issued=4, revoked=1, expired=0, deleted=1)
    assert retired.status is CAViewStatus.REVOKED
    assert retired.revocation_reason is RevocationReason.CA_COMPROMISE
    assert retired.quota == IntermediateQuota(remaining=4, issued=1)
    assert retired.certificates == CertificateCounts(issued=1, revoked=0, expired=0, deleted=0)


def test_a_ca_shows_its_subject_validity_and_service_period(
    service: PrivateCA, history: History, read_models: ReadModels, clock: SettableClock
) -> None:
    view = read_models.get_ca(history.issuing_id, clock.now)
    aggregate = service.get_ca(history.issuing_id)
    assert view.subject == aggregate.subject
    assert view.key_algorithm is KeyAlgorithm.EC_P256
    assert (view.not_before, view.not_after) == (aggregate.not_before, aggregate.not_after)
    assert view.validity_years == 10
    assert view.service_days == 30
    assert view.service_until == aggregate.service_until
    assert aggregate.certificate_der is not None
    serial = x509.load_der_x509_certificate(aggregate.certificate_der).serial_number
    assert view.serial_number == format(serial, "x")
    assert view.created_by == ADMIN.actor


def test_a_pending_ca_has_no_certificate_yet(
    service: PrivateCA, settings: Settings, read_models: ReadModels, clock: SettableClock
) -> None:
    root_id = enabled_root(service)
    pending_id = service.create_intermediate(ADMIN, root_id, intermediate_profile()).id
    catch_up(settings)
    view = read_models.get_ca(pending_id, clock.now)
    assert view.status is CAViewStatus.PENDING
    assert (view.not_before, view.not_after, view.serial_number) == (None, None, None)


def test_a_ca_past_its_certificate_lists_as_expired(
    history: History, read_models: ReadModels, clock: SettableClock
) -> None:
    issuing = read_models.get_ca(history.issuing_id, clock.now)
    assert issuing.not_after is not None
    later = issuing.not_after + dt.timedelta(seconds=1)
    assert read_models.get_ca(history.issuing_id, later).status is CAViewStatus.EXPIRED
    assert read_models.get_ca(history.retired_id, later).status is CAViewStatus.REVOKED


def test_an_unknown_ca_or_certificate_is_not_found(
    read_models: ReadModels, clock: SettableClock
) -> None:
    with pytest.raises(NotFoundError):
        read_models.get_ca(uuid4(), clock.now)
    with pytest.raises(NotFoundError):
        read_models.get_certificate(uuid4(), clock.now)


def test_the_certificate_list_shows_what_was_issued(
    service: PrivateCA, settings: Settings, read_models: ReadModels, clock: SettableClock
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    issued = issue(service, ca_id).certificate
    catch_up(settings)
    (view,) = read_models.list_certificates(CertificateFilter(issuer_id=ca_id), clock.now).items
    assert view.id == issued.id
    assert view.issuer_id == ca_id
    assert view.serial_number == issued.serial_number
    assert view.serial_number == view.serial_number.lower()
    assert view.type is CertificateType.SERVER
    assert view.common_name == "www.example.com"
    assert view.sans == (SAN(SANType.DNS, "www.example.com"),)
    assert view.key_algorithm is KeyAlgorithm.EC_P256
    assert (view.not_before, view.not_after) == (issued.not_before, issued.not_after)
    assert view.status is CertificateViewStatus.ISSUED
    assert (view.revoked_at, view.revocation_reason) == (None, None)
    assert view.requested_by == OPERATOR.actor
    assert read_models.get_certificate(issued.id, clock.now) == view


def test_a_revoked_certificate_enters_its_issuers_revocation_index(
    service: PrivateCA, history: History, read_models: ReadModels, clock: SettableClock
) -> None:
    revoked = service.get_certificate(history.revoked_id)
    view = read_models.get_certificate(history.revoked_id, clock.now)
    assert view.status is CertificateViewStatus.REVOKED
    assert view.revoked_at == revoked.revoked_at
    assert view.revocation_reason is RevocationReason.KEY_COMPROMISE
    entry = read_models.revocation_status(history.issuing_id, revoked.serial_number)
    assert entry is not None
    assert entry.certificate_id == history.revoked_id
    assert entry.revoked_at == revoked.revoked_at
    assert entry.reason is RevocationReason.KEY_COMPROMISE
    assert entry.not_after == revoked.not_after
    assert read_models.revocation_status(history.issuing_id, "1234abcd") is None


def _octets(serial: str) -> str:
    """The way openssl prints serials: upper-case octets, colon-separated."""
    padded = serial.upper().zfill(len(serial) + len(serial) % 2)
    return ":".join(padded[i : i + 2] for i in range(0, len(padded), 2))


@pytest.mark.parametrize("spelling", [str.upper, lambda serial: "00" + serial, _octets])
def test_revocation_status_takes_a_serial_in_any_hex_spelling(
    service: PrivateCA,
    history: History,
    read_models: ReadModels,
    spelling: Callable[[str], str],
) -> None:
    serial = service.get_certificate(history.revoked_id).serial_number
    entry = read_models.revocation_status(history.issuing_id, spelling(serial))
    assert entry is not None
    assert entry.serial_number == serial


def test_revocation_status_refuses_a_serial_that_is_not_hex(
    history: History, read_models: ReadModels
) -> None:
    with pytest.raises(ValidationError) as raised:
        read_models.revocation_status(history.issuing_id, "not-hex")
    assert raised.value.field == "serial_number"


def test_a_revoked_intermediate_is_in_its_roots_revocation_index(
    service: PrivateCA, history: History, read_models: ReadModels
) -> None:
    retired = service.get_ca(history.retired_id)
    assert retired.certificate_der is not None
    certificate = x509.load_der_x509_certificate(retired.certificate_der)
    (entry,) = read_models.revoked_serials(history.root_id)
    assert entry.issuer_id == history.root_id
    assert entry.serial_number == format(certificate.serial_number, "x")
    assert entry.certificate_id == history.retired_id
    assert entry.reason is RevocationReason.CA_COMPROMISE
    assert entry.revoked_at == retired.revoked_at
    assert entry.not_after == certificate.not_valid_after_utc


def test_a_deleted_certificate_leaves_the_list_but_stays_revoked(
    service: PrivateCA, history: History, read_models: ReadModels, clock: SettableClock
) -> None:
    listed = {view.id for view in list_all(read_models, CertificateFilter(), clock.now)}
    assert history.deleted_id not in listed
    assert history.revoked_id in listed
    with pytest.raises(NotFoundError):
        read_models.get_certificate(history.deleted_id, clock.now)
    serials = {entry.certificate_id for entry in read_models.revoked_serials(history.issuing_id)}
    assert serials == {history.revoked_id, history.deleted_id}


def test_a_certificate_past_not_after_lists_as_expired_without_an_event(
    service: PrivateCA, history: History, read_models: ReadModels, clock: SettableClock
) -> None:
    position = read_models.position()
    later = clock.now + dt.timedelta(days=91)  # the builders' certificates last 90 days
    view = read_models.get_certificate(history.server_ids[0], later)
    assert view.status is CertificateViewStatus.EXPIRED
    assert read_models.get_certificate(history.revoked_id, later).status is (
        CertificateViewStatus.REVOKED
    )
    counts = read_models.get_ca(history.issuing_id, later).certificates
    assert counts == CertificateCounts(issued=0, revoked=1, expired=4, deleted=1)
    assert read_models.position() == position


def test_the_status_filter_derives_expiry_from_now(
    service: PrivateCA, settings: Settings, read_models: ReadModels, clock: SettableClock
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    issue(service, ca_id, server_request("short.example.com", validity_days=1))
    issue(service, ca_id, server_request("long.example.com", validity_days=60))
    revoked = issue(service, ca_id, server_request("bad.example.com", validity_days=1))
    service.revoke_certificate(ADMIN, revoked.certificate.id, RevocationReason.UNSPECIFIED)
    catch_up(settings)
    later = clock.now + dt.timedelta(days=2)

    def names(status: CertificateViewStatus) -> list[str]:
        return common_names(read_models, CertificateFilter(status=status), later)

    assert names(CertificateViewStatus.ISSUED) == ["long.example.com"]
    assert names(CertificateViewStatus.EXPIRED) == ["short.example.com"]
    assert names(CertificateViewStatus.REVOKED) == ["bad.example.com"]


def test_the_type_filter_tells_servers_from_clients(
    history: History, read_models: ReadModels, clock: SettableClock
) -> None:
    clients = CertificateFilter(type=CertificateType.CLIENT)
    servers = CertificateFilter(issuer_id=history.issuing_id, type=CertificateType.SERVER)
    assert common_names(read_models, clients, clock.now) == ["Dev Client"]
    assert common_names(read_models, servers, clock.now) == [
        "old.example.com",
        "app2.example.com",
        "app1.example.com",
        "app0.example.com",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("APP1", ["app1.example.com"]),  # common name, any case
        ("dev@example", ["Dev Client"]),  # a SAN only
        ("legacy", ["legacy.example.com"]),
        ("app_", []),  # LIKE wildcards are taken literally
        ("%", []),
    ],
)
def test_the_text_filter_matches_the_common_name_or_a_san(
    history: History,
    read_models: ReadModels,
    clock: SettableClock,
    text: str,
    expected: list[str],
) -> None:
    assert common_names(read_models, CertificateFilter(text=text), clock.now) == expected


def test_the_expiring_before_filter_keeps_certificates_ending_earlier(
    service: PrivateCA, settings: Settings, read_models: ReadModels, clock: SettableClock
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    for days in (10, 20, 30):
        issue(service, ca_id, server_request(f"d{days}.example.com", validity_days=days))
    catch_up(settings)
    before = CertificateFilter(expiring_before=clock.now + dt.timedelta(days=25))
    assert common_names(read_models, before, clock.now) == ["d20.example.com", "d10.example.com"]


def test_the_issuer_filter_lists_one_intermediates_certificates(
    history: History, read_models: ReadModels, clock: SettableClock
) -> None:
    retired = CertificateFilter(issuer_id=history.retired_id)
    assert common_names(read_models, retired, clock.now) == ["legacy.example.com"]
    everything = common_names(read_models, CertificateFilter(), clock.now)
    assert everything[0] == "legacy.example.com"
    assert len(everything) == 6


def test_filters_combine(history: History, read_models: ReadModels, clock: SettableClock) -> None:
    combined = CertificateFilter(
        issuer_id=history.issuing_id,
        status=CertificateViewStatus.ISSUED,
        type=CertificateType.SERVER,
        text="app",
        expiring_before=clock.now + dt.timedelta(days=365),
    )
    assert common_names(read_models, combined, clock.now) == [
        "app2.example.com",
        "app1.example.com",
        "app0.example.com",
    ]


def test_pages_stay_stable_while_new_certificates_arrive(
    service: PrivateCA, settings: Settings, read_models: ReadModels, clock: SettableClock
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    issue_many(service, ca_id, 7, prefix="old")
    catch_up(settings)
    mine = CertificateFilter(issuer_id=ca_id)
    first = read_models.list_certificates(mine, clock.now, limit=3)
    issue_many(service, ca_id, 3, prefix="new")
    catch_up(settings)
    second = read_models.list_certificates(mine, clock.now, 3, first.next_cursor)
    third = read_models.list_certificates(mine, clock.now, 3, second.next_cursor)
    assert [v.common_name for v in first.items] == [f"old{n}.example.com" for n in (6, 5, 4)]
    assert [v.common_name for v in second.items] == [f"old{n}.example.com" for n in (3, 2, 1)]
    assert [v.common_name for v in third.items] == ["old0.example.com"]
    assert third.next_cursor is None
    fresh = read_models.list_certificates(mine, clock.now, limit=3)
    assert [v.common_name for v in fresh.items] == [f"new{n}.example.com" for n in (2, 1, 0)]


def test_an_exactly_full_last_page_has_no_next_cursor(
    service: PrivateCA, settings: Settings, read_models: ReadModels, clock: SettableClock
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    issue_many(service, ca_id, 4)
    catch_up(settings)
    first = read_models.list_certificates(CertificateFilter(), clock.now, limit=2)
    second = read_models.list_certificates(CertificateFilter(), clock.now, 2, first.next_cursor)
    assert len(second.items) == 2
    assert second.next_cursor is None


@pytest.mark.parametrize("cursor", ["", "not a cursor", "cm0xOg", encode_cursor(5)[:-2] + "!!"])
def test_a_cursor_not_handed_out_is_a_validation_error(
    read_models: ReadModels, clock: SettableClock, cursor: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        read_models.list_certificates(CertificateFilter(), clock.now, 10, cursor)
    assert raised.value.field == "cursor"


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_a_page_size_outside_1_to_1000_is_a_validation_error(
    read_models: ReadModels, clock: SettableClock, limit: int
) -> None:
    with pytest.raises(ValidationError) as raised:
        read_models.list_certificates(CertificateFilter(), clock.now, limit)
    assert raised.value.field == "limit"


@pytest.mark.parametrize("text", ["", "a\nb", "x" * 256])
def test_unusable_search_text_is_a_validation_error(
    read_models: ReadModels, clock: SettableClock, text: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        read_models.list_certificates(CertificateFilter(text=text), clock.now)
    assert raised.value.field == "q"
