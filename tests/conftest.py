"""Fixtures shared by the suite: real SQLite and a throwaway PostgreSQL, a settable clock."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from api.app import create_app
from domain.service import PrivateCA
from domain.settings import Settings, open_service
from tests.api_client import ApiClient
from tests.pgserver import PostgresServer, create_schema, drop_schema

PUBLIC_URL = "http://pca.test:8080"
STORES = ("sqlite", "postgres")


class SettableClock:
    """A clock the test moves by hand; starts at a fixed, recent instant."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server for the whole run: PCA_TEST_POSTGRES_URL, or one we start."""
    given = os.environ.get("PCA_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    with PostgresServer.start(tmp_path_factory.mktemp("postgres")) as server:
        yield server.url


@pytest.fixture
def pg_schema(postgres_url: str) -> Iterator[str]:
    """A fresh, empty schema, dropped after the test."""
    schema = create_schema(postgres_url)
    yield schema
    drop_schema(postgres_url, schema)


def make_settings(store: str, request: pytest.FixtureRequest, data_dir: Path) -> Settings:
    """Settings for ``store`` ("sqlite" or "postgres") with a private data directory."""
    if store == "sqlite":
        return Settings(data_dir=data_dir, public_url=PUBLIC_URL)
    return Settings(
        data_dir=data_dir,
        public_url=PUBLIC_URL,
        database_url=request.getfixturevalue("postgres_url"),
        database_schema=request.getfixturevalue("pg_schema"),
    )


@pytest.fixture(params=STORES)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The same test body runs against SQLite and against PostgreSQL."""
    return make_settings(str(request.param), request, tmp_path / "data")


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", public_url=PUBLIC_URL)


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock()


@pytest.fixture
def service(settings: Settings, clock: SettableClock) -> Iterator[PrivateCA]:
    app = open_service(settings, clock=clock)
    yield app
    app.close()
    app.keystore.close()


@pytest.fixture
def app(settings: Settings, clock: SettableClock) -> Iterator[Flask]:
    """The Flask app on the parametrised store."""
    flask_app = create_app(settings, clock=clock)
    yield flask_app
    flask_app.extensions["pca"].close()


@pytest.fixture
def api(app: Flask) -> ApiClient:
    """A client with a token per role that validates responses against /openapi.json."""
    return ApiClient(app)
