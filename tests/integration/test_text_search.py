"""Text search (`q`) from the trigram index finds exactly what a scan of the list finds,
on SQLite (FTS5) and PostgreSQL (pg_trgm); read models of an older layout are rebuilt."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from uuid import UUID, uuid4

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from domain.adapters.settings import Settings
from domain.application.service import PrivateCA
from domain.model.certificate import Certificate
from domain.model.values import (
    SAN,
    CertificateType,
    KeyAlgorithm,
    RevocationReason,
    SANType,
    Subject,
)
from projections.readmodels.models import CertificateFilter
from projections.readmodels.queries import ReadModels
from projections.readmodels.sql import CERTIFICATES, LIKE, SCHEMA, SEARCH, like_pattern
from projections.readmodels.store import open_view, read_models_path
from projections.readmodels.worker import catch_up
from tests.builders import OPERATOR, enabled_intermediate, enabled_root, issue, server_request
from tests.projection_helpers import list_all

# Few letters, so that texts share trigrams; LIKE's and GLOB's wildcards, quotes, and
# letters whose lower case differs in length or lies outside ASCII.
_ALPHABET = "abAB.-_%*?[]\\\"' éÉİßxyz0"
_TEXT = st.text(_ALPHABET, min_size=1, max_size=12)
_Record = tuple[str, list[str], str]  # common name, SAN values, display name
_RECORD = st.tuples(_TEXT, st.lists(_TEXT, max_size=3), _TEXT)


def _synthetic(issuer_id: UUID, common_name: str, sans: list[str], name: str) -> Certificate:
    """A CertificateIssued with these texts, as any release may have logged it (the
    issuance rules are not what is tested here)."""
    now = dt.datetime.now(dt.UTC)
    certificate: Certificate = Certificate._create(
        Certificate.CertificateIssued,
        id=uuid4(),
        actor=OPERATOR.actor,
        request_id=OPERATOR.request_id,
        ca_id=issuer_id,
        serial_number=uuid4().hex,
        type=CertificateType.SERVER,
        name=name,
        subject=Subject(common_name),
        sans=[SAN(SANType.DNS, value) for value in sans],
        key_algorithm=KeyAlgorithm.EC_P256,
        key_id=None,
        include_crl=True,
        not_before=now,
        not_after=now + dt.timedelta(days=90),
        certificate_der=b"",
    )
    return certificate


def _scanned(settings: Settings, text: str) -> list[UUID]:
    """What today's scan finds: LIKE over the whole list, newest first."""
    with open_view(settings) as view:
        statement = view.sql.certificate_page([LIKE], cursor=False)
        rows = view.fetch(statement, (like_pattern(text.lower()), 100_000))
    return [UUID(row["id"]) for row in rows]


def _found(read_models: ReadModels, text: str, now: dt.datetime) -> list[UUID]:
    """What `q` finds, walking pages of two (so that cursors cross the index too)."""
    return [view.id for view in list_all(read_models, CertificateFilter(text=text), now, 2)]


@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(_RECORD, min_size=1, max_size=6), data=st.data())
def test_search_finds_what_a_scan_finds(
    service: PrivateCA,
    settings: Settings,
    records: list[tuple[str, list[str], str]],
    data: st.DataObject,
) -> None:
    issuer_id = enabled_intermediate(service, enabled_root(service))
    certificates = [_synthetic(issuer_id, *record) for record in records]
    service.save(*certificates)
    catch_up(settings)
    common_name, _, name = records[0]
    queries = [
        data.draw(st.text(_ALPHABET, min_size=1, max_size=5), label="random"),
        data.draw(_substring(common_name), label="part of a common name"),
        data.draw(_substring(name), label="part of a display name"),
        certificates[0].serial_number[3:11].upper(),
    ]
    now = dt.datetime.now(dt.UTC)
    with ReadModels.open(settings) as read_models:
        for text in queries:
            assert _found(read_models, text, now) == _scanned(settings, text), text
        for text in queries[1:]:
            assert certificates[0].id in _found(read_models, text, now), text


def _substring(text: str) -> st.SearchStrategy[str]:
    return st.integers(0, len(text) - 1).flatmap(
        lambda start: st.integers(start + 1, len(text)).map(lambda end: text[start:end])
    )


def test_a_deleted_certificate_leaves_the_search(service: PrivateCA, settings: Settings) -> None:
    issuer_id = enabled_intermediate(service, enabled_root(service))
    kept = issue(service, issuer_id, server_request("kept-search.example.com")).certificate
    gone = issue(service, issuer_id, server_request("gone-search.example.com")).certificate
    catch_up(settings)  # the row is stored before it is deleted
    service.revoke_certificate(OPERATOR, gone.id, RevocationReason.SUPERSEDED)
    service.delete_certificate(OPERATOR, gone.id)
    catch_up(settings)
    now = dt.datetime.now(dt.UTC)
    with ReadModels.open(settings) as read_models:
        assert _found(read_models, "search.example", now) == [kept.id]
        assert _found(read_models, gone.serial_number, now) == []


def test_read_models_of_an_older_layout_are_rebuilt_with_the_index(
    service: PrivateCA, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    issuer_id = enabled_intermediate(service, enabled_root(service))
    old = issue(service, issuer_id, server_request("upgraded.example.com")).certificate
    catch_up(settings)
    _downgrade(settings)
    with caplog.at_level(logging.WARNING):
        catch_up(settings)
    assert "laid out by another release" in caplog.text
    now = dt.datetime.now(dt.UTC)
    with ReadModels.open(settings) as read_models:
        assert _found(read_models, old.serial_number, now) == [old.id]
        assert _found(read_models, "upgraded", now) == [old.id]
        assert read_models.position() == service.recorder.max_notification_id()


def _downgrade(settings: Settings) -> None:
    """Make the read models look like the previous release's: no layout version, no
    search index, and a search text without the serial."""
    statements = (
        "DROP TABLE {schema}",
        "UPDATE {certificates} SET search_text = lower(common_name)",
    )
    if settings.database_url is not None:
        with psycopg.connect(settings.database_url, autocommit=True) as connection:
            connection.execute(f'DROP INDEX "{settings.database_schema}".{SEARCH}')
            for statement in statements:
                connection.execute(_qualified(statement, settings.database_schema))
    else:
        with sqlite3.connect(read_models_path(settings)) as connection:
            connection.execute(f"DROP TABLE {SEARCH}")
            for statement in statements:
                connection.execute(_qualified(statement, None))


def _qualified(statement: str, schema: str | None) -> str:
    prefix = "" if schema is None else f'"{schema}".'
    return statement.format(schema=prefix + SCHEMA, certificates=prefix + CERTIFICATES)
