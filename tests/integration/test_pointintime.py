"""Point in time: the state at a cut of the log, folded from the log alone, equals what the
read models showed once they had processed that position."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from uuid import UUID

import pytest

from domain.adapters.settings import Settings
from domain.application.service import PrivateCA
from domain.model.errors import ConflictError, ValidationError
from domain.model.values import CAKind, RevocationReason
from projections.audit.history import HistoryFilter, read_history
from projections.audit.logcut import LogReader, parse_at
from projections.audit.pointintime import (
    AuditState,
    CertificateAuditStatus,
    render_json,
    state_at,
    to_json,
)
from projections.readmodels.models import CAView, CAViewStatus, RevocationEntry
from projections.readmodels.worker import catch_up
from tests.builders import ADMIN, enabled_intermediate, enabled_root, issue, server_request
from tests.conftest import SettableClock
from tests.projection_helpers import Everything, read_everything, write_history

CertificateRow = tuple[UUID, UUID, str, str, dt.datetime, dt.datetime | None, str | None]


@dataclass(frozen=True)
class Comparable:
    """What both sides show, in one shape: CAs, listed certificates, revoked lists."""

    position: int
    cas: tuple[CAView, ...]
    certificates: frozenset[CertificateRow]
    revoked: dict[UUID, tuple[RevocationEntry, ...]]


def from_read_models(everything: Everything) -> Comparable:
    return Comparable(
        position=everything.position,
        cas=everything.cas,
        certificates=frozenset(
            (
                c.id,
                c.issuer_id,
                c.serial_number,
                c.status.value,
                c.not_after,
                c.revoked_at,
                None if c.revocation_reason is None else c.revocation_reason.value,
            )
            for c in everything.certificates
        ),
        revoked=dict(everything.revocations),
    )


def from_audit_state(state: AuditState) -> Comparable:
    """The audit state as a list would show it: deleted certificates are not listed."""
    return Comparable(
        position=state.position,
        cas=state.cas,
        certificates=frozenset(
            (
                c.id,
                c.issuer_id,
                c.serial_number,
                c.status.value,
                c.not_after,
                c.revoked_at,
                None if c.revocation_reason is None else c.revocation_reason.value,
            )
            for c in state.certificates
            if c.status is not CertificateAuditStatus.DELETED
        ),
        revoked=dict(state.revoked),
    )


def cut_time(settings: Settings, position: int) -> dt.datetime:
    with LogReader.open(settings) as reader:
        time = reader.cut(position).time
    assert time is not None
    return time


def snapshot_read_models(settings: Settings) -> Comparable:
    """Catch the read models up and record what they show, judged at the cut's time."""
    catch_up(settings)
    with LogReader.open(settings) as reader:
        head = reader.head()
    return from_read_models(read_everything(settings, cut_time(settings, head)))


def test_state_at_the_end_of_the_log_equals_the_read_models(
    service: PrivateCA, settings: Settings
) -> None:
    history = write_history(service)
    shown = snapshot_read_models(settings)

    state = state_at(settings, history.last_position)

    assert shown.position == history.last_position
    assert from_audit_state(state) == shown
    assert state_at(settings) == state  # no cut: the end of the log


def test_state_at_an_earlier_position_equals_what_the_read_models_showed_then(
    service: PrivateCA, settings: Settings
) -> None:
    root_id = enabled_root(service, quota=30)
    ca_id = enabled_intermediate(service, root_id, remaining=10)
    first = [issue(service, ca_id, server_request(f"a{n}.example.com")) for n in range(3)]
    earlier = service.revoke_certificate(
        ADMIN, first[0].certificate.id, RevocationReason.KEY_COMPROMISE
    ).position
    then = snapshot_read_models(settings)
    # Everything after the snapshot changes what the cut must not see.
    service.delete_certificate(ADMIN, first[0].certificate.id)
    service.revoke_certificate(ADMIN, first[1].certificate.id, RevocationReason.SUPERSEDED)
    service.assign_quota(ADMIN, root_id, ca_id, 20)
    issue(service, ca_id, server_request("later.example.com"))
    service.revoke_ca(ADMIN, ca_id, RevocationReason.CA_COMPROMISE)
    now = snapshot_read_models(settings)

    assert then.position == earlier
    assert from_audit_state(state_at(settings, earlier)) == then
    assert from_audit_state(state_at(settings, now.position)) == now
    assert then != now


def test_a_revoked_intermediate_is_on_its_roots_revoked_list(
    service: PrivateCA, settings: Settings
) -> None:
    root_id = enabled_root(service, quota=5)
    ca_id = enabled_intermediate(service, root_id, remaining=1)
    service.revoke_ca(ADMIN, ca_id, RevocationReason.CA_COMPROMISE)

    state = state_at(settings)

    (entry,) = state.revoked[root_id]
    intermediate = next(ca for ca in state.cas if ca.id == ca_id)
    assert entry.certificate_id == ca_id
    assert entry.serial_number == intermediate.serial_number
    assert entry.reason is RevocationReason.CA_COMPROMISE
    assert intermediate.status is CAViewStatus.REVOKED
    assert state.revoked[ca_id] == ()


def test_deleted_certificates_stay_in_the_audit_state_and_on_the_revoked_list(
    service: PrivateCA, settings: Settings
) -> None:
    root_id = enabled_root(service, quota=5)
    ca_id = enabled_intermediate(service, root_id, remaining=2)
    gone = issue(service, ca_id).certificate
    service.revoke_certificate(ADMIN, gone.id, RevocationReason.SUPERSEDED)
    service.delete_certificate(ADMIN, gone.id)

    state = state_at(settings)

    (certificate,) = state.certificates
    assert certificate.status is CertificateAuditStatus.DELETED
    assert certificate.revocation_reason is RevocationReason.SUPERSEDED
    assert [entry.certificate_id for entry in state.revoked[ca_id]] == [gone.id]
    issuing = next(ca for ca in state.cas if ca.id == ca_id)
    assert (issuing.certificates.deleted, issuing.certificates.revoked) == (1, 0)


def test_a_time_cut_resolves_to_the_last_event_committed_at_or_before_it(
    service: PrivateCA, settings: Settings
) -> None:
    root_id = enabled_root(service, quota=5)
    enabled_intermediate(service, root_id, remaining=2)
    items = read_history(service, 0, 100, HistoryFilter()).items
    stamps = [(item.position, item.recorded_at) for item in items]
    first = stamps[0][1]
    second = next(stamp for _, stamp in stamps if stamp > first)  # the next commit's stamp
    last_of_first = max(position for position, stamp in stamps if stamp == first)
    last_of_second = max(position for position, stamp in stamps if stamp == second)
    tick = dt.timedelta(microseconds=1)

    assert state_at(settings, second).position == last_of_second
    assert state_at(settings, second - tick).position == last_of_first
    assert state_at(settings, first - tick).position == 0
    assert state_at(settings, second + dt.timedelta(days=1)).position == items[-1].position


def test_expiry_is_judged_at_the_cut_time(
    service: PrivateCA, settings: Settings, clock: SettableClock
) -> None:
    root_id = enabled_root(service, quota=5)
    ca_id = enabled_intermediate(service, root_id, remaining=2)
    issued = issue(service, ca_id, server_request(validity_days=1)).certificate
    later = issued.not_after + dt.timedelta(seconds=1)

    assert state_at(settings).certificates[0].status is CertificateAuditStatus.ISSUED
    expired = state_at(settings, later)
    assert expired.time == later
    assert expired.certificates[0].status is CertificateAuditStatus.EXPIRED
    issuing = next(ca for ca in expired.cas if ca.id == ca_id)
    assert (issuing.certificates.issued, issuing.certificates.expired) == (0, 1)


def test_an_empty_prefix_has_nothing(service: PrivateCA, settings: Settings) -> None:
    enabled_root(service, quota=5)

    state = state_at(settings, 0)

    assert (state.position, state.time, state.cas, state.certificates) == (0, None, (), ())


@pytest.mark.parametrize(
    "at",
    [-1, dt.datetime(2025, 1, 1)],  # a time without a zone
    ids=["negative", "no zone"],
)
def test_a_cut_that_is_no_point_of_a_log_is_a_validation_error(
    service: PrivateCA, settings: Settings, at: int | dt.datetime
) -> None:
    enabled_root(service, quota=5)

    with pytest.raises(ValidationError) as raised:
        state_at(settings, at)

    assert raised.value.field == "at"


def test_a_cut_past_the_end_of_the_log_is_a_conflict_naming_the_end(
    service: PrivateCA, settings: Settings
) -> None:
    """A well-formed position the log has not reached yet is a state, not bad input."""
    enabled_root(service, quota=5)
    head = state_at(settings, None).position

    with pytest.raises(ConflictError) as raised:
        state_at(settings, 10_000)

    assert raised.value.field == "at"
    assert f"position {head} now" in raised.value.detail


def test_cuts_parse_as_positions_or_times_with_a_zone() -> None:
    assert parse_at("42") == 42
    assert parse_at("2025-01-31T12:00:00Z") == dt.datetime(2025, 1, 31, 12, tzinfo=dt.UTC)
    assert parse_at("2025-01-31T13:00:00+01:00") == dt.datetime(2025, 1, 31, 12, tzinfo=dt.UTC)
    for text in ("2025-01-31T12:00:00", "yesterday", "-1", ""):
        with pytest.raises(ValidationError) as raised:
            parse_at(text)
        assert raised.value.field == "at"


def test_the_json_form_is_deterministic_and_complete(
    service: PrivateCA, settings: Settings
) -> None:
    history = write_history(service)

    first = render_json(state_at(settings, history.last_position))
    issue(service, history.issuing_id, server_request("after.example.com"))
    second = render_json(state_at(settings, history.last_position))

    assert first == second
    document = json.loads(first)
    assert document == to_json(state_at(settings, history.last_position))
    assert document["position"] == history.last_position
    kinds = {ca["id"]: ca["kind"] for ca in document["cas"]}
    assert kinds[str(history.root_id)] == CAKind.ROOT.value
    assert document["cas"][0]["quota"] == {"total": 60, "assigned": 25, "available": 35}
    statuses = {c["id"]: c["status"] for c in document["certificates"]}
    assert statuses[str(history.deleted_id)] == "deleted"
    assert statuses[str(history.revoked_id)] == "revoked"
    revoked_by_root = document["revoked"][str(history.root_id)]
    assert [entry["id"] for entry in revoked_by_root] == [str(history.retired_id)]
