"""The web console through Flask's test client, on SQLite and PostgreSQL: sessions,
roles, CSRF, the headers every page carries, and what a command records.

The same flows in a real browser against `pca serve` are in tests/e2e/test_console_browser.py.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from contextlib import closing
from typing import cast

import psycopg
import pytest
from cryptography import x509
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from api.brake import EXTENSION as FAILURES_EXTENSION
from api.brake import FailedAuthentications
from api.console.app import CONTENT_SECURITY_POLICY
from api.console.session import ABSOLUTE_TIMEOUT, COOKIE, IDLE_TIMEOUT
from api.console.views.cas import PAGE_SIZE
from api.deployment import Deployment
from api.http.app import create_app
from domain.adapters.sessions import SESSIONS_FILE, TABLE, session_hash
from domain.adapters.settings import Settings
from domain.model.tokens import Role, token_id
from domain.model.values import RevocationReason
from tests.api_client import SETUP
from tests.builders import enabled_intermediate, enabled_root, issue, server_request
from tests.conftest import SettableClock

# What does not depend on the store runs on SQLite only; what the session store or the
# read models answer runs on both.
ON_SQLITE = pytest.mark.parametrize("settings", ["sqlite"], indirect=True)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _deployment(app: Flask) -> Deployment:
    return cast(Deployment, app.extensions["pca"])


def _token(app: Flask, role: Role, name: str | None = None) -> str:
    service = _deployment(app).service
    return service.create_token(SETUP, name or f"console-{role.value}", role)[0]


def _signed_in(app: Flask, role: Role) -> tuple[FlaskClient, str]:
    """A client signed in with a new token of ``role``, and its CSRF token."""
    client = app.test_client()
    answer = client.post("/console/sign-in", data={"token": _token(app, role)})
    assert answer.status_code == 303
    return client, _csrf(client.get("/console/cas"))


def _csrf(page: TestResponse) -> str:
    """The page's CSRF token, which every form on it carries."""
    found: set[str] = set(CSRF.findall(page.text))
    assert len(found) == 1, found
    token = found.pop()
    assert token
    return token


def _field_error(page: TestResponse, field_id: str) -> str:
    found = re.search(rf'id="{field_id}-error"[^>]*>([^<]*)<', page.text)
    assert found is not None, f"no error beside {field_id}"
    return found.group(1)


def _stored_rows(settings: Settings) -> list[tuple[object, ...]]:
    if settings.database_url is None:
        with closing(sqlite3.connect(settings.data_dir / SESSIONS_FILE)) as connection:
            return connection.execute(f"SELECT * FROM {TABLE}").fetchall()  # noqa: S608
    with psycopg.connect(settings.database_url) as connection:
        schema = settings.database_schema
        return connection.execute(f'SELECT * FROM "{schema}".{TABLE}').fetchall()  # noqa: S608


@ON_SQLITE
def test_a_page_without_a_session_sends_the_browser_to_sign_in(app: Flask) -> None:
    answer = app.test_client().get("/console/cas?q=x")
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/console/sign-in?next=%2Fconsole%2Fcas%3Fq%3Dx"


def test_signing_in_sets_a_strict_httponly_cookie_and_stores_only_its_hash(
    app: Flask, settings: Settings
) -> None:
    client = app.test_client()
    answer = client.post(
        "/console/sign-in", data={"token": _token(app, Role.OPERATOR), "next": "/console/cas"}
    )
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/console/cas"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/console" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over HTTPS it is Secure (below)
    session_id = cookie.split(";")[0].split("=", 1)[1]
    rows = _stored_rows(settings)
    assert [row[0] for row in rows] == [session_hash(session_id)]
    assert session_id not in repr(rows)
    page = client.get("/console/cas")
    assert page.status_code == 200
    assert "console-operator" in page.text


@ON_SQLITE
def test_the_cookie_is_secure_when_the_console_is_served_over_https(app: Flask) -> None:
    client = app.test_client()
    answer = client.post(
        "/console/sign-in",
        data={"token": _token(app, Role.AUDITOR)},
        base_url="https://pca.test",
    )
    assert "Secure" in answer.headers["Set-Cookie"]


@ON_SQLITE
def test_a_wrong_token_is_refused_beside_the_token_field(app: Flask) -> None:
    answer = app.test_client().post("/console/sign-in", data={"token": "pca_not-a-token"})
    assert answer.status_code == 422
    assert "unknown, revoked or expired" in _field_error(answer, "f-token")
    assert "pca_not-a-token" not in answer.text  # the token is never echoed back
    assert COOKIE not in answer.headers.get("Set-Cookie", "")


@ON_SQLITE
def test_wrong_tokens_at_sign_in_meet_the_apis_brake(app: Flask) -> None:
    app.extensions[FAILURES_EXTENSION] = FailedAuthentications(free=1, max_sleepers=0)
    client = app.test_client()
    assert client.post("/console/sign-in", data={"token": "pca_wrong-1"}).status_code == 422
    held = client.post("/console/sign-in", data={"token": "pca_wrong-2"})
    assert held.status_code == 429
    assert held.headers["Retry-After"] == "1"
    assert "Too many sign-ins with unknown or revoked tokens" in held.text
    api = client.get("/api/v1/cas", headers={"Authorization": "Bearer pca_wrong-3"})
    assert api.status_code == 429  # one brake per address, whichever face was tried


@ON_SQLITE
def test_sign_out_ends_the_session_for_whoever_kept_the_cookie(app: Flask) -> None:
    client, csrf = _signed_in(app, Role.AUDITOR)
    assert client.post("/console/sign-out", data={"csrf_token": csrf}).status_code == 303
    assert client.get("/console/cas").status_code == 303


def test_revoking_the_token_ends_its_sessions(app: Flask) -> None:
    token = _token(app, Role.OPERATOR)
    client = app.test_client()
    client.post("/console/sign-in", data={"token": token})
    assert client.get("/console/cas").status_code == 200
    _deployment(app).service.revoke_token(SETUP, token_id(token))
    assert client.get("/console/cas").status_code == 303


def test_a_session_ends_after_its_idle_timeout_unless_used(
    app: Flask, clock: SettableClock
) -> None:
    client, _ = _signed_in(app, Role.AUDITOR)
    almost = IDLE_TIMEOUT - dt.timedelta(minutes=1)
    for _ in range(2):
        clock.advance(seconds=almost.total_seconds())
        assert client.get("/console/cas").status_code == 200
    clock.advance(seconds=(IDLE_TIMEOUT + dt.timedelta(minutes=1)).total_seconds())
    assert client.get("/console/cas").status_code == 303


@ON_SQLITE
def test_a_session_ends_after_its_absolute_timeout_however_used(
    app: Flask, clock: SettableClock
) -> None:
    client, _ = _signed_in(app, Role.AUDITOR)
    step = IDLE_TIMEOUT / 2
    lived = dt.timedelta()
    while lived + step < ABSOLUTE_TIMEOUT:
        clock.advance(seconds=step.total_seconds())
        lived += step
        assert client.get("/console/cas").status_code == 200
    clock.advance(seconds=(ABSOLUTE_TIMEOUT - lived + dt.timedelta(minutes=1)).total_seconds())
    assert client.get("/console/cas").status_code == 303


def test_another_process_on_the_same_store_honours_the_session(
    app: Flask, settings: Settings, clock: SettableClock
) -> None:
    """`pca serve` runs several workers: a session made by one is valid in the others."""
    client, _ = _signed_in(app, Role.AUDITOR)
    cookie = client.get_cookie(COOKIE, path="/console")
    assert cookie is not None
    other = create_app(settings, clock=clock, run_projections=False)
    try:
        visitor = other.test_client()
        visitor.set_cookie(COOKIE, cookie.value, path="/console")
        assert visitor.get("/console/cas").status_code == 200
    finally:
        _deployment(other).close()


@ON_SQLITE
def test_every_console_page_but_sign_in_needs_a_session(app: Flask) -> None:
    client = app.test_client()
    open_endpoints = {"console.sign_in_form", "console.sign_in_submit", "console.static"}
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("console.") or rule.endpoint in open_endpoints:
            continue
        path = re.sub(r"<uuid:\w+>", "00000000-0000-4000-8000-000000000000", rule.rule)
        path = re.sub(r"<any\([^)]*\):\w+>", "inventory", path)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            answer = client.open(path, method=method)
            assert answer.status_code == 303, (method, path)
            assert answer.headers["Location"].startswith("/console/sign-in")
            checked += 1
    assert checked == 19  # every page the console serves (a new one joins this count)


@ON_SQLITE
def test_pages_carry_a_strict_policy_and_no_inline_script_or_style(app: Flask) -> None:
    client, _ = _signed_in(app, Role.ADMIN)
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    for path in ("/console/", "/console/cas", "/console/events", "/console/reports"):
        page = client.get(path)
        assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert page.headers["X-Frame-Options"] == "DENY"
        assert not re.search(r"<script(?![^>]*\bsrc=)", page.text), path
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", page.text), path


@ON_SQLITE
@pytest.mark.parametrize(
    ("send_csrf", "headers"),
    [(False, {}), (True, {"Origin": "https://evil.example"})],
    ids=["without-csrf-token", "from-another-site"],
)
def test_a_forged_form_is_refused_and_changes_nothing(
    app: Flask, send_csrf: bool, headers: dict[str, str]
) -> None:
    service = _deployment(app).service
    root = enabled_root(service, quota=5)
    client, csrf = _signed_in(app, Role.ADMIN)
    form = {"count": "7", "csrf_token": csrf} if send_csrf else {"count": "7"}
    answer = client.post(f"/console/cas/{root}/purchase", data=form, headers=headers)
    assert answer.status_code == 403
    assert ("another site" if send_csrf else "CSRF token") in answer.text
    assert service.get_ca(root).quota_total == 5


@ON_SQLITE
def test_an_auditor_sees_no_forms_and_a_forged_post_is_forbidden(app: Flask) -> None:
    service = _deployment(app).service
    root = enabled_root(service, quota=5)
    issuing = enabled_intermediate(service, root, remaining=3)
    certificate = issue(service, issuing).certificate
    client, csrf = _signed_in(app, Role.AUDITOR)
    for path in (f"/console/cas/{root}", f"/console/certificates/{certificate.id}"):
        page = client.get(path)
        assert page.status_code == 200
        assert 'method="post"' not in page.text.replace('class="signout" method="post"', "")
    for path, data in (
        (f"/console/cas/{root}/purchase", {"count": "7"}),
        (f"/console/certificates/{certificate.id}/revoke", {"reason": "superseded"}),
    ):
        answer = client.post(path, data={**data, "csrf_token": csrf})
        assert answer.status_code == 403
        assert "auditor" in answer.text
    assert service.get_ca(root).quota_total == 5
    assert service.get_certificate(certificate.id).revoked_at is None


def test_a_change_made_in_the_console_names_the_token_and_the_request(app: Flask) -> None:
    service = _deployment(app).service
    root = enabled_root(service, quota=5)
    client, csrf = _signed_in(app, Role.ADMIN)
    answer = client.post(
        f"/console/cas/{root}/purchase",
        data={"count": "7", "csrf_token": csrf},
        headers={"X-Request-Id": "console-purchase-1"},
    )
    assert answer.status_code == 303
    assert answer.headers["X-Request-Id"] == "console-purchase-1"
    events = client.get("/console/events?type=QuotaPurchased&actor=console-admin+(admin)")
    rows = re.findall(r'<td class="actor">([^<]*)</td>', events.text)
    assert rows == ["console-admin (admin)"]
    assert "console-purchase-1" in events.text
    assert service.get_ca(root).quota_total == 12


@ON_SQLITE
def test_a_refused_request_shows_each_error_beside_its_field_and_keeps_the_values(
    app: Flask,
) -> None:
    service = _deployment(app).service
    issuing = enabled_intermediate(service, enabled_root(service, quota=5), remaining=2)
    client, csrf = _signed_in(app, Role.OPERATOR)
    form = {
        "csrf_token": csrf,
        "type": "server",
        "subject.common_name": "shop.example.com",
        "validity_days": "30",
        "key_algorithm": "EC_P256",
        "sans[0].type": "dns",
        "sans[0].value": "shop.example.com",
        "sans[1].type": "dns",
        "sans[1].value": "bad..example.com",
        "include_crl": "1",
    }
    answer = client.post(f"/console/cas/{issuing}/request", data=form)
    assert answer.status_code == 422
    assert "empty label" in _field_error(answer, "f-sans-1-value")
    assert 'value="shop.example.com"' in answer.text
    country = client.post(
        f"/console/cas/{issuing}/request",
        data={**form, "sans[1].value": "api.example.com", "subject.country": "Germany"},
    )
    assert country.status_code == 422
    assert "2" in _field_error(country, "f-subject-country")
    assert service.get_ca(issuing).quota_remaining == 2  # nothing issued, nothing spent


def test_the_certificate_list_filters_searches_and_pages_like_the_api(app: Flask) -> None:
    service = _deployment(app).service
    issuing = enabled_intermediate(service, enabled_root(service, quota=40), remaining=40)
    names = [f"host{index:02}.example.com" for index in range(PAGE_SIZE + 2)]
    certificates = [issue(service, issuing, server_request(name)).certificate for name in names]
    service.revoke_certificate(SETUP, certificates[0].id, RevocationReason.SUPERSEDED)
    client, _ = _signed_in(app, Role.AUDITOR)
    listed = re.compile(r">(host\d\d\.example\.com)</a>")
    first = client.get(f"/console/cas/{issuing}")
    assert listed.findall(first.text) == names[::-1][:PAGE_SIZE]  # newest first
    following = re.search(r'<a href="([^"]+)">Next page</a>', first.text)
    assert following is not None
    rest = client.get(following.group(1).replace("&amp;", "&"))
    assert listed.findall(rest.text) == names[::-1][PAGE_SIZE:]
    assert "Next page" not in rest.text
    revoked = client.get(f"/console/cas/{issuing}?status=revoked")
    assert listed.findall(revoked.text) == [names[0]]
    search = client.get(f"/console/cas/{issuing}?q=host1")
    assert listed.findall(search.text) == [f"host{index}.example.com" for index in range(19, 9, -1)]


@ON_SQLITE
def test_an_unknown_certificate_is_a_page_saying_so(app: Flask) -> None:
    client, _ = _signed_in(app, Role.AUDITOR)
    missing = "00000000-0000-4000-8000-000000000000"
    answer = client.get(f"/console/certificates/{missing}")
    assert answer.status_code == 404
    assert answer.mimetype == "text/html"
    assert f"No certificate with id {missing}" in answer.text


@ON_SQLITE
def test_the_ca_pages_show_each_key_generation_and_which_signs_now(app: Flask) -> None:
    service = _deployment(app).service
    issuing = enabled_intermediate(service, enabled_root(service))
    service.roll_over_ca_key(SETUP, issuing)
    generations = service.get_ca(issuing).generations
    client, _ = _signed_in(app, Role.AUDITOR)
    tree = client.get("/console/cas").text
    assert "<strong>generation 2</strong> (software), 1 earlier" in tree
    assert "<strong>generation 1</strong> (software)</td>" in tree  # the root, never rolled
    page = client.get(f"/console/cas/{issuing}").text
    rows = re.findall(
        r'<th scope="row">(\d)</th>\s*<td>(\w+)</td>\s*<td><code>([0-9a-f]+)</code>.*?'
        r"<td>(<strong>current</strong>|serves what it signed)</td>",
        page,
        re.S,
    )
    serials = [
        format(x509.load_der_x509_certificate(g.certificate_der).serial_number, "x")
        for g in generations
    ]
    assert rows == [
        ("1", "software", serials[0], "serves what it signed"),
        ("2", "software", serials[1], "<strong>current</strong>"),
    ]
