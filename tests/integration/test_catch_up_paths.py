"""A catch-up from position 0 takes shortcuts (the most frequent events read from their
JSON without building them; indexes and the text index built at its end); the read
models it builds must be those of the ordinary path (every event's domain object, small
batches, every index kept row by row), table by table and search by search, on SQLite
and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any
from uuid import UUID

import pytest

from domain.adapters.settings import Settings
from domain.application.service import PrivateCA
from domain.model.values import SAN, RequestContext, RevocationReason, SANType
from projections.readmodels.decoding import EventApplier
from projections.readmodels.models import CertificateFilter
from projections.readmodels.projection import ReadModelProjection
from projections.readmodels.queries import ReadModels
from projections.readmodels.sql import SEARCH
from projections.readmodels.store import open_event_log, open_view
from projections.readmodels.view import (
    PostgresReadModelView,
    ReadModelView,
    SQLiteReadModelView,
)
from projections.readmodels.worker import catch_up
from tests.builders import ADMIN, enabled_intermediate, enabled_root, issue, server_request
from tests.conftest import SettableClock
from tests.projection_helpers import list_all, logged_certificate, write_history

CTX = RequestContext(actor="importer", request_id="paths")
_WORDS = ("alpha", "beta", "gamma", "host", "mail", "Über", "db-01", "x_y")
_TABLE_ORDER = {
    "rm_cas": "id",
    "rm_certificates": "position",
    "rm_revocations": "issuer_id, serial_number",
    "rm_ca_keys": "ca_id, generation",
}


def _name(rng: random.Random) -> tuple[str, SAN]:
    word = f"{rng.choice(_WORDS)}{rng.randrange(100)}"
    if rng.random() < 0.7:
        name = f"{word}.{rng.choice(_WORDS)}.example.com".lower()
        return name, SAN(SANType.DNS, name)
    return f"User {word}", SAN(SANType.EMAIL, f"{word}@example.org".lower())


def _random_history(service: PrivateCA, rng: random.Random, now: dt.datetime) -> None:
    """Several CAs, certificates logged as before group commit and issued as now,
    revoked in their own save or later, deleted, and a CA revoked."""
    write_history(service)
    root_id = enabled_root(service, quota=400)
    cas = [enabled_intermediate(service, root_id, remaining=120) for _ in range(3)]
    der = issue(service, cas[0]).certificate.certificate_der
    issued: list[UUID] = []
    revoked: list[UUID] = []
    for _ in range(5):
        for ca_id in cas:
            ca = service.get_ca(ca_id)
            certificates = [
                logged_certificate(CTX, ca, f"{rng.getrandbits(100):x}", _name(rng), (now, 90), der)
                for _ in range(rng.randrange(1, 9))
            ]
            if rng.random() < 0.4:
                certificates[0].revoke(CTX, RevocationReason.SUPERSEDED, now)
            service.save(ca, *certificates)
            issued.extend(c.id for c in certificates[1:])
            revoked.extend(c.id for c in certificates[:1] if c.status.value == "revoked")
        request = server_request(f"issued{rng.randrange(1000)}.example.com")
        issued.append(issue(service, rng.choice(cas), request).certificate.id)
        for certificate_id in rng.sample(issued, 3):
            issued.remove(certificate_id)
            service.revoke_certificate(ADMIN, certificate_id, RevocationReason.KEY_COMPROMISE)
            revoked.append(certificate_id)
        for certificate_id in rng.sample(revoked, 2):
            revoked.remove(certificate_id)
            service.delete_certificate(ADMIN, certificate_id)
    service.revoke_ca(ADMIN, cas[2], RevocationReason.CA_COMPROMISE)


def _project_ordinarily(settings: Settings) -> None:
    """Every notification as its domain event, four at a time, onto indexed tables."""
    with open_event_log(settings) as log, open_view(settings) as view:
        view.reset()
        applier = EventApplier(log.mapper, shortcuts=False)
        projection = ReadModelProjection(view)
        position = 0
        while batch := log.recorder.select_notifications(
            start=position, limit=4, inclusive_of_start=False
        ):
            projection.process_batch(batch, position, applier)
            position = batch[-1].id


def _check_search_index(view: ReadModelView) -> None:
    """SQLite's text index holds exactly the certificates' search texts (raises if not)."""
    if isinstance(view, SQLiteReadModelView):
        with view.datastore.transaction(commit=True) as cursor:
            # rank 1: also against the search texts the index reads from the certificates
            check = f"INSERT INTO {SEARCH} ({SEARCH}, rank) VALUES ('integrity-check', 1)"  # noqa: S608
            cursor.execute(check)


def _select_all(view: ReadModelView, table: str, order: str) -> str:
    if isinstance(view, PostgresReadModelView):
        table = f'"{view.datastore.schema}".{table}'
    return f"SELECT * FROM {table} ORDER BY {order}"  # noqa: S608 - names of this file


def _snapshot(settings: Settings, now: dt.datetime, texts: list[str]) -> dict[str, Any]:
    """Every row of every read-model table, and what each text search lists."""
    with open_view(settings) as view:
        _check_search_index(view)
        tables = {
            table: [dict(row) for row in view.fetch(_select_all(view, table, order), ())]
            for table, order in _TABLE_ORDER.items()
        }
    with ReadModels.open(settings) as read_models:
        searches = {
            text: [c.id for c in list_all(read_models, CertificateFilter(text=text), now, 7)]
            for text in texts
        }
    return {"tables": tables, "searches": searches}


@pytest.mark.parametrize("seed", [1, 2])
def test_a_catch_up_from_zero_builds_the_read_models_of_the_ordinary_path(
    service: PrivateCA, settings: Settings, clock: SettableClock, seed: int
) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    _random_history(service, rng, clock.now)
    texts = ["example", "ho", "er", "über", "@example.org", "gamma1", "zzz", "db-0", "x_y"]
    texts += [_name(rng)[0][1:6] for _ in range(8)]
    _project_ordinarily(settings)
    ordinary = _snapshot(settings, clock.now, texts)
    assert ordinary["tables"]["rm_certificates"]
    for batch_size in (6, 5000):
        with open_view(settings) as view:
            view.reset()
        catch_up(settings, batch_size=batch_size)
        assert _snapshot(settings, clock.now, texts) == ordinary
