"""The CA list shows every key a CA has had (GET /api/v1/cas): the read models keep one
row per key generation, and read models made before they did are rebuilt when opened."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any
from uuid import UUID

import psycopg
from cryptography import x509
from flask import Flask

from api.http.app import create_app
from domain.adapters.settings import Settings
from domain.application.service import PrivateCA
from projections.readmodels.store import read_models_path
from projections.readmodels.worker import catch_up
from tests.api_client import ApiClient
from tests.builders import enabled_intermediate, enabled_root
from tests.conftest import SettableClock


def _service(app: Flask) -> PrivateCA:
    service: PrivateCA = app.extensions["pca"].service
    return service


def _listed(api: ApiClient, ca_id: UUID) -> dict[str, Any]:
    items = api.call("GET", "/api/v1/cas").get_json()["items"]
    found: dict[str, Any] = next(item for item in items if item["id"] == str(ca_id))
    return found


def _rolled_intermediate(api: ApiClient) -> tuple[UUID, UUID, list[dict[str, Any]]]:
    service = _service(api.app)
    root_id = enabled_root(service)
    ca_id = enabled_intermediate(service, root_id)
    rolled = api.call("POST", f"/api/v1/cas/{ca_id}/rollover").get_json()
    generations: list[dict[str, Any]] = rolled["key_generations"]
    return root_id, ca_id, generations


def _expected(generations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the list shows of each generation: its certificate's facts, not the PEM."""
    expected = []
    for generation in generations:
        certificate = x509.load_pem_x509_certificate(generation["certificate_pem"].encode())
        ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        assert generation["subject_key_identifier"] == ski.value.digest.hex()
        assert generation["serial_number"] == format(certificate.serial_number, "x")
        shown = {k: v for k, v in generation.items() if k != "certificate_pem"}
        expected.append({**shown, "retired_at": None})  # the list also shows retired keys
    return expected


def test_the_ca_list_shows_each_key_generation_and_which_signs_now(api: ApiClient) -> None:
    root_id, ca_id, generations = _rolled_intermediate(api)
    assert [(g["generation"], g["current"]) for g in generations] == [(1, False), (2, True)]

    listed = _listed(api, ca_id)
    assert listed["key_generations"] == _expected(generations)
    assert listed["key_storage"] == "software"
    assert listed["not_after"] == generations[1]["not_after"]
    root = _listed(api, root_id)
    assert [(g["generation"], g["current"]) for g in root["key_generations"]] == [(1, True)]


def test_read_models_made_before_generations_were_listed_are_rebuilt_on_catch_up(
    api: ApiClient, settings: Settings, clock: SettableClock
) -> None:
    _, ca_id, generations = _rolled_intermediate(api)
    assert _listed(api, ca_id)["key_generations"] == _expected(generations)
    api.app.extensions["pca"].close()
    _as_layout_2(settings)  # as the release before the key table left the read models
    catch_up(settings)  # what a runner of this release does first

    reopened = create_app(settings, clock=clock)
    try:
        assert _listed(ApiClient(reopened), ca_id)["key_generations"] == _expected(generations)
    finally:
        reopened.extensions["pca"].close()


def _as_layout_2(settings: Settings) -> None:
    """No key table, and the layout version the previous release recorded."""
    if settings.database_url is None:
        with closing(sqlite3.connect(read_models_path(settings))) as connection:
            connection.execute("DROP TABLE rm_ca_keys")
            connection.execute("UPDATE rm_schema SET version = 2")
            connection.commit()
        return
    schema = psycopg.sql.Identifier(settings.database_schema)
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        connection.execute(psycopg.sql.SQL("DROP TABLE {}.rm_ca_keys").format(schema))
        connection.execute(psycopg.sql.SQL("UPDATE {}.rm_schema SET version = 2").format(schema))
