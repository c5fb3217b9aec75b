"""Commit stamps: the history's ``recorded_at`` never goes backwards along log positions,
on SQLite and PostgreSQL, whatever order writers stamped their events in, when the clock
is stepped back, and for a chain an older release wrote without stamps."""

from __future__ import annotations

import datetime as dt
from contextlib import closing
from typing import Any
from urllib.parse import quote

from api.deployment import Deployment
from domain.adapters.settings import Settings
from domain.application.service import PrivateCA
from domain.audit.chain import from_stamp
from domain.model.tokens import ApiToken, Role, new_token
from projections.audit.history import HistoryFilter, HistoryItem, read_history
from tests.api_client import ApiClient
from tests.builders import ADMIN, enabled_intermediate, enabled_root
from tests.integration.test_audit_chain import RawStore

HOUR_US = 3_600_000_000
ROOT = {"kind": "root", "subject": {"common_name": "Stamped Root"}}


def history(service: PrivateCA) -> list[HistoryItem]:
    return list(read_history(service, 0, 1000, HistoryFilter()).items)


def recorded(service: PrivateCA) -> list[dt.datetime]:
    return [item.recorded_at for item in history(service)]


def own_stamps(service: PrivateCA) -> list[dt.datetime]:
    """The timestamps writers gave the events, in log order."""
    notifications = service.recorder.select_notifications(1, 1000)
    events: list[Any] = [service.mapper.to_domain_event(n) for n in notifications]
    return [event.timestamp for event in events]


def test_events_saved_in_another_order_than_stamped_keep_recorded_at_in_order(
    service: PrivateCA,
) -> None:
    first = ApiToken.create(ADMIN, "stamped first", Role.OPERATOR, new_token())
    second = ApiToken.create(ADMIN, "stamped second", Role.OPERATOR, new_token())
    service.save(second)
    service.save(first)  # committed last, though its writer stamped it first

    stamps = own_stamps(service)
    assert stamps[1] < stamps[0]  # the writers' stamps go backwards along positions
    items = history(service)
    assert [item.payload["name"] for item in items] == ["stamped second", "stamped first"]
    assert items[0].recorded_at <= items[1].recorded_at
    assert all(item.recorded_at >= stamp for item, stamp in zip(items, stamps, strict=True))


def test_a_clock_stepped_back_repeats_the_last_stamp_instead_of_going_back(
    service: PrivateCA, settings: Settings
) -> None:
    enabled_root(service)
    raw = RawStore(settings)
    ahead = int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000) + HOUR_US
    raw.run(
        "UPDATE {chain} SET recorded_at = %s WHERE position = (SELECT max(position) FROM {chain})",
        (ahead,),
    )
    service.create_token(ADMIN, "after the step", Role.AUDITOR)

    stamps = [row[0] for row in raw.run("SELECT recorded_at FROM {chain} ORDER BY position")]
    assert stamps == sorted(stamps)
    assert stamps[-1] == ahead
    assert recorded(service)[-1] == from_stamp(ahead)


def test_a_chain_written_before_the_stamps_gets_them_when_the_service_opens(
    settings: Settings,
) -> None:
    with closing(Deployment.open(settings)) as deployment:
        root = enabled_root(deployment.service)
        enabled_intermediate(deployment.service, root)
    raw = RawStore(settings)
    if settings.database_url is None:  # SQLite drops a column only once its index is gone
        raw.run("DROP INDEX pca_audit_chain_recorded_at")
    raw.run("ALTER TABLE {chain} DROP COLUMN recorded_at")  # as an older release made it

    with closing(Deployment.open(settings)) as deployment:
        service = deployment.service
        stamps = own_stamps(service)
        running_max = [max(stamps[: n + 1]) for n in range(len(stamps))]
        assert recorded(service) == running_max
        service.create_token(ADMIN, "after the upgrade", Role.AUDITOR)
        after = recorded(service)
        assert after == sorted(after)
        assert len(after) == len(stamps) + 1
    assert raw.run("SELECT count(*) FROM {chain} WHERE recorded_at IS NULL") == [(0,)]


def test_over_http_the_history_and_time_cuts_follow_the_commit_stamps(
    api: ApiClient, settings: Settings
) -> None:
    created = api.call("POST", "/api/v1/cas", json=ROOT)
    assert created.status_code == 201, created.get_json()
    ahead = int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000) + HOUR_US
    RawStore(settings).run(
        "UPDATE {chain} SET recorded_at = %s WHERE position = (SELECT max(position) FROM {chain})",
        (ahead,),
    )
    root_id = created.get_json()["id"]
    enabled = api.call("POST", f"/api/v1/cas/{root_id}/enable")  # the clock reads an hour back
    assert enabled.status_code == 200, enabled.get_json()

    events = api.call("GET", "/api/v1/events", role=Role.AUDITOR).get_json()["items"]
    stamps = [dt.datetime.fromisoformat(item["recorded_at"]) for item in events]
    assert stamps == sorted(stamps)
    assert stamps[-1] == stamps[-2] == from_stamp(ahead)
    at = quote(stamps[-1].isoformat())
    cut = api.call("GET", f"/api/v1/audit/state?at={at}", role=Role.AUDITOR)
    assert cut.status_code == 200, cut.get_json()
    assert cut.get_json()["position"] == events[-1]["position"]
