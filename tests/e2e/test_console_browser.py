"""The web console in a real browser: Playwright drives Debian's chromium (the system
executable; nothing is downloaded) against `pca serve` with two workers.

One browser and one server serve the whole module. The tests take screenshots of the main
pages, into the directory PCA_TEST_SCREENSHOTS names (``PCA_TEST_SCREENSHOTS=docs/console``
refreshes the ones the README shows) or else a temporary one, so a test run leaves the
checkout as it was; they also fail on any Content-Security-Policy violation the browser
reports.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from domain.adapters.settings import Settings
from tests.live import SENT_PASSWORDS, LiveServer

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WIDE = ViewportSize(width=1440, height=900)
NARROW = ViewportSize(width=360, height=740)
PASSWORD = "console-p12-secret"


@dataclass(frozen=True)
class Console:
    """The server, a token per role, and a ready hierarchy (made over the API)."""

    server: LiveServer
    tokens: dict[str, str]
    intermediate: str
    screenshots: Path  # where the pages are shot (see the module docstring)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    data_dir = tmp_path_factory.mktemp("console") / "data"
    with LiveServer(Settings(data_dir=data_dir), workers=2) as server:
        tokens = {
            role: server.pca(
                "tokens", "create", "--role", role, "--name", f"console-{role}"
            ).strip()
            for role in ("admin", "operator", "auditor")
        }
        _, intermediate = server.hierarchy(tokens["admin"], "Console", quota=20)
        chosen = os.environ.get("PCA_TEST_SCREENSHOTS")
        shots = Path(chosen).absolute() if chosen else tmp_path_factory.mktemp("screenshots")
        yield Console(server, tokens, intermediate, shots)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Session:
    """One signed-in browser context and its page, collecting CSP violations."""

    def __init__(self, browser: Browser, console: Console, role: str, viewport: ViewportSize):
        self.base = console.server.base
        self.screenshots = console.screenshots
        self.context = browser.new_context(viewport=viewport, accept_downloads=True)
        self.page = self.context.new_page()
        self.violations: list[str] = []
        self.page.on("console", self._watch)
        self.page.goto(f"{self.base}/console/")
        expect(self.page).to_have_url(re.compile(r"/console/sign-in"))
        self.page.get_by_label("API token").fill(console.tokens[role])
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_role("heading", name="Overview")).to_be_visible()

    def _watch(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.violations.append(message.text)

    def open(self, path: str) -> Page:
        self.page.goto(self.base + path)
        return self.page

    def shoot(self, name: str) -> None:
        self.screenshots.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(self.screenshots / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert self.violations == []


@pytest.fixture
def sessions(browser: Browser, console: Console) -> Iterator[list[Session]]:
    made: list[Session] = []
    yield made
    for session in made:
        session.close()


def _sign_in(
    sessions: list[Session],
    browser: Browser,
    console: Console,
    role: str,
    viewport: ViewportSize = WIDE,
) -> Session:
    session = Session(browser, console, role, viewport)
    sessions.append(session)
    return session


def _openssl(*args: str | Path) -> str:
    done = subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, check=False, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_each_role_signs_in_and_sees_what_its_role_allows(
    browser: Browser, console: Console, sessions: list[Session]
) -> None:
    seen = {}
    for role in ("admin", "operator", "auditor"):
        page = _sign_in(sessions, browser, console, role).open(
            f"/console/cas/{console.intermediate}"
        )
        expect(page.locator(".who")).to_contain_text(f"console-{role}")
        seen[role] = (
            page.get_by_role("button", name="Assign").count(),
            page.get_by_role("link", name="Request a certificate").count(),
        )
    assert seen == {"admin": (1, 1), "operator": (0, 1), "auditor": (0, 0)}


def test_the_reference_flow_from_quota_to_deletion(
    browser: Browser, console: Console, sessions: list[Session], tmp_path: Path
) -> None:
    admin = _sign_in(sessions, browser, console, "admin")
    page = admin.open("/console/cas")
    page.get_by_label("Kind").select_option("root")
    page.get_by_label("Common name").fill("Flow Root CA")
    page.get_by_label("Company (O)").fill("Flow Corp")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name=re.compile("Flow Root CA"))).to_be_visible()
    root_url = page.url
    page.get_by_role("button", name="Enable").click()
    page.get_by_label("Certificates to add to the pool").fill("10")
    page.get_by_role("button", name="Purchase").click()
    expect(page.locator(".facts")).to_contain_text("total 10, assigned 0, available 10")
    page = admin.open("/console/cas")
    page.get_by_label("Kind").select_option("intermediate")
    page.get_by_label("Parent root").select_option(label="Flow Root CA")
    page.get_by_label("Common name").fill("Flow Issuing CA")
    page.get_by_role("button", name="Create").click()
    page.get_by_role("button", name="Enable").click()
    page.get_by_label("Set remaining quota to").fill("4")
    page.get_by_role("button", name="Assign").click()
    expect(page.locator(".facts")).to_contain_text("remaining 4, issued 0")
    issuing_url = page.url
    admin.open(root_url.removeprefix(admin.base))
    expect(page.locator(".facts")).to_contain_text("total 10, assigned 4, available 6")
    admin.open("/console/cas")
    admin.shoot("cas")

    operator = _sign_in(sessions, browser, console, "operator")
    page = operator.open(issuing_url.removeprefix(operator.base))
    page.get_by_role("link", name="Request a certificate").click()
    page.get_by_label("Common name").fill("shop.flow.example")
    page.get_by_label("Validity (days)").fill("90")
    for index, value in enumerate(("shop.flow.example", "www.flow.example", "10.1.2.3")):
        if index == 2:
            page.get_by_label("SAN 3 type").select_option("ip")
        page.get_by_label(f"SAN {index + 1} value").fill(value)
    page.get_by_role("button", name="Add a SAN row").click()  # the script adds a row in place
    expect(page.get_by_label("SAN 4 value")).to_be_visible()
    page.get_by_text("More", exact=True).click()
    page.get_by_label("Certificate name").fill("flow-shop")
    page.get_by_label("Company (O)").fill("Flow Corp")
    page.get_by_label("Department (OU)").fill("Web")
    page.get_by_label("City (L)").fill("Berlin")
    page.get_by_label("Province (ST)").fill("Berlin")
    page.get_by_label("Country (C, 2 letters)").fill("DE")
    expect(page.get_by_label("Include CRL address")).to_be_checked()
    operator.shoot("request")
    page.get_by_role("button", name="Request", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("shop.flow.example"))).to_be_visible()
    expect(page.locator(".facts")).to_contain_text("ip: 10.1.2.3")
    operator.shoot("certificate")

    page.get_by_label("Format", exact=True).select_option("pkcs12")
    page.get_by_label("Password (formats with the key)").fill(PASSWORD)
    SENT_PASSWORDS.add(PASSWORD)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    bundle = tmp_path / download.value.suggested_filename
    download.value.save_as(bundle)
    assert bundle.name == "flow-shop.p12"
    leaf = _openssl("pkcs12", "-in", bundle, "-passin", f"pass:{PASSWORD}", "-nokeys", "-clcerts")
    facts = _openssl_x509(leaf, tmp_path)
    assert "subject=C=DE, ST=Berlin, L=Berlin, O=Flow Corp, OU=Web, CN=shop.flow.example" in facts
    assert "DNS:shop.flow.example, DNS:www.flow.example, IP Address:10.1.2.3" in facts
    assert "URI:http://127.0.0.1" in facts  # the CRL address the service serves
    keys = _openssl("pkcs12", "-in", bundle, "-passin", f"pass:{PASSWORD}", "-nocerts", "-nodes")
    assert "BEGIN PRIVATE KEY" in keys

    page.get_by_label("Reason").select_option("key_compromise")
    page.get_by_role("button", name="Revoke").click()
    expect(page.locator("h1 .status")).to_have_text("revoked")
    certificate_path = page.url.removeprefix(operator.base)
    page = operator.open("/console/events?type=CertificateRevoked")
    row = page.locator("tr", has_text="CertificateRevoked").last
    expect(row.locator(".actor")).to_have_text("console-operator (operator)")
    row.get_by_text("payload", exact=True).click()
    expect(row.locator("pre")).to_contain_text('"reason": "key_compromise"')
    operator.shoot("events")
    operator.open(certificate_path)
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_contain_text("was deleted")
    expect(page.get_by_text("shop.flow.example")).to_have_count(0)


def _openssl_x509(pem: str, directory: Path) -> str:
    path = directory / "leaf.pem"
    path.write_text(pem)
    return _openssl(
        "x509",
        "-in",
        path,
        "-noout",
        "-subject",
        "-ext",
        "subjectAltName,crlDistributionPoints",
        "-nameopt",
        "sep_comma_plus_space",
    )


def test_a_refused_request_shows_the_error_beside_its_field(
    browser: Browser, console: Console, sessions: list[Session]
) -> None:
    operator = _sign_in(sessions, browser, console, "operator")
    page = operator.open(f"/console/cas/{console.intermediate}/request")
    page.get_by_label("Common name").fill("api.example.com")
    page.get_by_label("SAN 1 value").fill("api.example.com")
    page.get_by_label("SAN 2 value").fill("not a host name")
    page.get_by_role("button", name="Request", exact=True).click()
    field = page.locator(".field", has=page.get_by_label("SAN 2 value"))
    expect(field.get_by_role("alert")).to_contain_text("not a host name")
    expect(page.get_by_label("SAN 2 value")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("SAN 1 value")).to_have_value("api.example.com")
    operator.shoot("request-error")


def test_an_auditor_sees_no_buttons_and_a_forged_post_is_forbidden(
    browser: Browser, console: Console, sessions: list[Session]
) -> None:
    auditor = _sign_in(sessions, browser, console, "auditor")
    page = auditor.open(f"/console/cas/{console.intermediate}")
    expect(page.locator("main form[method=post]")).to_have_count(0)
    csrf = page.locator("input[name=csrf_token]").first.input_value()
    forged = page.request.post(
        f"{auditor.base}/console/cas/{console.intermediate}/assign",
        form={"remaining": "0", "csrf_token": csrf},
        headers={"Origin": auditor.base},
        max_redirects=0,
    )
    assert forged.status == 403
    assert "needs the admin role" in forged.text()
    expect(auditor.open(f"/console/cas/{console.intermediate}").locator(".facts")).to_contain_text(
        "remaining 20"
    )


def test_a_post_without_the_csrf_token_is_refused(
    browser: Browser, console: Console, sessions: list[Session]
) -> None:
    admin = _sign_in(sessions, browser, console, "admin")
    page = admin.open(f"/console/cas/{console.intermediate}")
    forged = page.request.post(
        f"{admin.base}/console/cas/{console.intermediate}/assign",
        form={"remaining": "0"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert "CSRF token" in forged.text()


def test_audit_pages_and_report_downloads(
    browser: Browser, console: Console, sessions: list[Session], tmp_path: Path
) -> None:
    operator = console.tokens["operator"]
    issued = []
    for days in (5, 20, 60):
        body = {"type": "server", "common_name": f"in{days}d.example", "validity_days": days}
        path = f"/api/v1/cas/{console.intermediate}/certificates"
        issued.append(console.server.json("POST", path, operator, body)["id"])
    revoke = f"/api/v1/certificates/{issued[0]}/revoke"
    console.server.json("POST", revoke, operator, {"reason": "superseded"})
    auditor = _sign_in(sessions, browser, console, "auditor")
    expect(auditor.page.locator(".stat")).to_have_text(
        [
            re.compile(r"^0\s+expiring within 7 days"),
            re.compile(r"^1\s+expiring within 30"),
            re.compile(r"^2\s+expiring within 90"),
        ]
    )
    revoked_chart = auditor.page.locator("figure", has_text="Revoked per day")
    expect(revoked_chart.locator("rect")).to_have_count(14)
    label = revoked_chart.locator("svg").get_attribute("aria-label") or ""
    events = "/api/v1/events?type=CertificateRevoked"
    revocations = console.server.json("GET", events, console.tokens["auditor"])["items"]
    assert sum(int(n) for n in re.findall(r"\d\d-\d\d: (\d+)", label)) == len(revocations) >= 1
    auditor.shoot("overview")
    page = auditor.open("/console/audit/verify")
    expect(page.locator(".verdict")).to_contain_text("Intact")
    auditor.shoot("verify")
    page = auditor.open("/console/audit/state")
    page.get_by_label("Position or time").fill("3")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("caption", has_text="Then: position 3")).to_be_visible()
    expect(page.locator("caption", has_text="Now: position")).to_be_visible()
    auditor.shoot("state")
    page = auditor.open("/console/reports")
    inventory = page.locator("form", has=page.get_by_role("heading", name="Inventory"))
    with page.expect_download() as report:
        inventory.get_by_role("button", name="Download").click()
    assert report.value.suggested_filename.endswith(".csv")
    rows = Path(report.value.path()).read_text().splitlines()
    assert rows[0].startswith('"position"')
    inventory.get_by_label("Format").select_option("json")
    with page.expect_download() as manifest:
        inventory.get_by_role("button", name="Manifest").click()
    assert '"kind": "inventory"' in Path(manifest.value.path()).read_text()
    auditor.shoot("reports")


def test_pages_are_usable_at_360_pixels_with_labels_on_every_control(
    browser: Browser, console: Console, sessions: list[Session]
) -> None:
    operator = _sign_in(sessions, browser, console, "operator", viewport=NARROW)
    for path in (
        "/console/",
        "/console/cas",
        f"/console/cas/{console.intermediate}",
        f"/console/cas/{console.intermediate}/request",
        "/console/events",
    ):
        page = operator.open(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, path
        unlabelled = page.evaluate(
            "[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
            ".filter(c => c.labels.length === 0).map(c => c.name)"
        )
        assert unlabelled == [], path
        if path.endswith("/request"):
            operator.shoot("request-360")
    page = operator.open("/console/cas")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()


def test_signing_in_and_out_with_the_keyboard_alone(browser: Browser, console: Console) -> None:
    context = browser.new_context(viewport=WIDE)
    try:
        page = context.new_page()
        page.goto(f"{console.server.base}/console/sign-in")
        page.keyboard.press("Tab")  # the skip link
        page.keyboard.press("Tab")
        expect(page.get_by_label("API token")).to_be_focused()
        page.keyboard.type(console.tokens["auditor"])
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        page.get_by_role("button", name="Sign out").focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        page.goto(f"{console.server.base}/console/cas")
        expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
    finally:
        context.close()
