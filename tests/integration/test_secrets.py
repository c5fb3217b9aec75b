"""Secrets: tokens kept only as hashes and compared in constant time, nothing secret in any
log (and the run-wide log scan that checks it), private files, security headers everywhere."""

from __future__ import annotations

import hmac
import logging
import re
import uuid
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from api.brake import EXTENSION as FAILURES_EXTENSION
from api.brake import FailedAuthentications
from api.http.app import ALL_ROUTES, MAX_BODY_BYTES, create_app
from api.http.headers import SECURITY_HEADERS
from domain.adapters.masterkeys import MasterKeyring
from domain.adapters.settings import Settings
from domain.application.service import PrivateCA
from domain.model.tokens import Role, new_token, token_fingerprint, token_hash
from domain.pki.formats import DownloadOptions
from tests.api_client import SETUP
from tests.conftest import (
    WATCH,
    LogCapture,
    SettableClock,
    filed_master_keys,
    find_leaks,
    key_texts,
    log_file_sources,
)
from tests.integration.test_key_custody import _everything_stored

PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n"


# --- Tokens -----------------------------------------------------------------------------------


def test_the_event_store_holds_a_tokens_hash_never_the_token(
    service: PrivateCA, settings: Settings
) -> None:
    tokens = [service.create_token(SETUP, f"t-{role.value}", role) for role in Role]
    service.revoke_token(SETUP, tokens[0][1].id)
    service.recorder.max_notification_id()  # the writes are committed
    stored = _everything_stored(service, settings)
    for token, _ in tokens:
        assert token.encode() not in stored
        assert token.removeprefix("pca_").encode() not in stored
        assert token_hash(token).encode() in stored  # we looked where the records are


def test_tokens_are_compared_in_constant_time_against_the_stored_hash(
    service: PrivateCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, _ = service.create_token(SETUP, "deployer", Role.OPERATOR)
    compared: list[tuple[str, str]] = []
    constant_time = hmac.compare_digest

    def recording(a: str, b: str) -> bool:
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    principal = service.authenticate(token)
    assert principal is not None
    assert principal.name == "deployer"
    assert compared == [(token_hash(token), token_hash(token))]
    assert service.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert service.authenticate(new_token()) is None


def test_a_fingerprint_names_a_token_without_revealing_it() -> None:
    token = new_token()
    fingerprint = token_fingerprint(token)
    assert token_hash(token).startswith(fingerprint)
    assert len(fingerprint) == 12
    assert fingerprint not in token


# --- The run-wide log scan -------------------------------------------------------------------


def test_the_log_scan_finds_planted_secrets_and_names_the_source_not_the_secret() -> None:
    capture = LogCapture()
    capture.test = "tests/planted.py::test_leaky"
    logger = logging_only_to(capture)
    token, password = new_token(), "correct horse battery 7"
    logger.warning("created token %s", token)
    logger.warning("the key is %s", PEM_KEY)
    logger.warning("downloading with password %r", password)
    logger.warning("rejected token %s from 127.0.0.1", token_fingerprint(token))
    leaks = find_leaks(capture.lines, {password})
    source = "logger tests.planted in tests/planted.py::test_leaky"
    assert leaks == [
        f"{source}: an API token",
        f"{source}: a PEM private key",
        f"{source}: a password or master key",
    ]
    assert not any(token in leak or password in leak for leak in leaks)


def test_the_log_scan_reads_server_logs_and_knows_filed_master_keys(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    MasterKeyring.load(data_dir, None)
    keys = filed_master_keys(data_dir)
    assert len(keys) == 2  # base64 (as filed and as configured) and hex
    log = tmp_path / "serve-1.log"
    log.write_text('127.0.0.1 "GET /healthz HTTP/1.1" 200\n')
    assert find_leaks(log_file_sources([log]), keys) == []
    with log.open("a") as handle:
        handle.write(f"master key {sorted(keys)[0]} loaded\n")
    assert find_leaks(log_file_sources([log]), keys) == [f"{log}: a password or master key"]


def test_this_run_watches_every_log_and_learns_the_keys_and_passwords_it_makes(
    tmp_path: Path,
) -> None:
    assert WATCH.capture in logging.getLogger().handlers
    assert logging.getLogger("api.anything").isEnabledFor(logging.DEBUG)
    MasterKeyring.load(tmp_path, None)
    assert filed_master_keys(tmp_path) <= WATCH.secrets
    MasterKeyring([b"\x01" * 32])
    assert key_texts(b"\x01" * 32) <= WATCH.secrets
    DownloadOptions("a phrase only this test knows")
    assert "a phrase only this test knows" in WATCH.secrets


def logging_only_to(capture: LogCapture) -> logging.Logger:
    """A logger whose records reach ``capture`` and not this run's own watch."""
    logger = logging.getLogger("tests.planted")
    logger.propagate = False
    logger.handlers = [capture]
    logger.setLevel(logging.DEBUG)
    return logger


# --- Files and headers -----------------------------------------------------------------------


def _sample_path(rule: str) -> str:
    path = re.sub(r"<uuid:\w+>", lambda _: str(uuid.uuid4()), rule)
    path = re.sub(r"<path:\w+>", "MAMwAQ", path)
    return re.sub(r"<\w+>", "inventory", path)


def test_every_response_carries_the_security_headers_errors_included(
    sqlite_settings: Settings,
) -> None:
    app = create_app(sqlite_settings, clock=SettableClock(), run_projections=False)
    try:
        answers = _answers_from_every_route(app)
    finally:
        app.extensions["pca"].close()
    assert {200, 401, 404, 405, 413, 422, 429} <= {a.status_code for a in answers.values()}
    missing = {
        call: answer.status_code
        for call, answer in answers.items()
        if {name: answer.headers.get(name) for name in SECURITY_HEADERS} != SECURITY_HEADERS
    }
    assert missing == {}


def _answers_from_every_route(app: Flask) -> dict[str, TestResponse]:
    """Every declared operation with an admin token and without one, plus the errors
    Flask answers itself and a 429 from the failed-authentication brake."""
    client = app.test_client()
    token, _ = app.extensions["pca"].service.create_token(SETUP, "admin", Role.ADMIN)
    bearer = {"Authorization": f"Bearer {token}"}
    answers = {}
    for routes in ALL_ROUTES:
        for op in routes.operations:
            path = _sample_path(op.rule)
            body: dict[str, object] | None = {} if op.body is not None else None
            for label, headers in (("admin", bearer), ("no token", {})):
                answers[f"{op.method} {op.rule} ({label})"] = client.open(
                    path, method=op.method, headers=headers, json=body
                )
    answers["unknown path"] = client.get("/nowhere")
    answers["wrong method"] = client.delete("/healthz")
    answers["body too large"] = client.post(
        "/api/v1/cas",
        headers=bearer,
        data=b"{" + b" " * MAX_BODY_BYTES + b"}",
        content_type="application/json",
    )
    app.extensions[FAILURES_EXTENSION] = FailedAuthentications(free=0, max_sleepers=0)
    answers["failed authentication, braked"] = client.get(
        "/api/v1/cas", headers={"Authorization": f"Bearer {new_token()}"}
    )
    return answers
