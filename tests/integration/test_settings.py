"""Settings: every PCA_* variable read in one place, refused at start with what to change,
and a deployment opened from Settings alone tuned by them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as x509_ocsp
from flask import Flask

from api.http.app import create_app
from domain.adapters.settings import (
    API_ONLY_ENV,
    IssuanceLimit,
    OCSPSettings,
    PublishingSettings,
    Settings,
    SettingsError,
)
from tests.api_client import ApiClient
from tests.conftest import SettableClock


def test_background_jobs_and_limits_are_tuned_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "PCA_DATA_DIR": str(tmp_path),
            "PCA_CRL_VALIDITY_HOURS": "12",
            "PCA_CRL_DEBOUNCE_MS": "250",
            "PCA_CRL_EXPIRED_GRACE_DAYS": "0",
            "PCA_CRL_MAX_DELTA_ENTRIES": "500",
            "PCA_AUDIT_CHECKPOINT_MINUTES": "15",
            "PCA_OCSP_VALIDITY_MINUTES": "30",
            "PCA_OCSP_RESPONDER_DAYS": "7",
            "PCA_ISSUANCE_RATE_PER_SECOND": "5",
            "PCA_ISSUANCE_BURST": "50",
            API_ONLY_ENV: "yes",
            "PCA_OCSP_URL": "https://ocsp.example.com",
        }
    )
    assert settings.publishing == PublishingSettings(
        validity=dt.timedelta(hours=12),
        debounce=dt.timedelta(milliseconds=250),
        expired_grace=dt.timedelta(0),
        max_delta_entries=500,
        checkpoint_every=dt.timedelta(minutes=15),
    )
    assert settings.ocsp == OCSPSettings(dt.timedelta(minutes=30), dt.timedelta(days=7))
    assert settings.issuance == IssuanceLimit(5, 50)
    assert settings.api_only
    assert settings.ocsp_url == "https://ocsp.example.com"


def test_without_variables_the_documented_defaults_hold(tmp_path: Path) -> None:
    settings = Settings.from_env({"PCA_DATA_DIR": str(tmp_path)})
    assert settings.publishing.validity == dt.timedelta(hours=24)
    assert settings.publishing.debounce == dt.timedelta(milliseconds=500)
    assert settings.publishing.expired_grace == dt.timedelta(days=7)
    assert settings.publishing.max_delta_entries == 10_000
    assert settings.publishing.checkpoint_every == dt.timedelta(minutes=60)
    assert settings.ocsp == OCSPSettings(dt.timedelta(minutes=60), dt.timedelta(days=30))
    assert not settings.api_only
    assert settings.ocsp_url is None  # OCSP under PCA_PUBLIC_URL


@pytest.mark.parametrize(
    ("name", "value", "advice"),
    [
        ("PCA_CRL_VALIDITY_HOURS", "a day", "must be a number >= 0; got 'a day'"),
        ("PCA_CRL_VALIDITY_HOURS", "0", "must be a number > 0"),
        ("PCA_CRL_DEBOUNCE_MS", "-5", "must be a number >= 0"),
        ("PCA_CRL_EXPIRED_GRACE_DAYS", "inf", "must be a number >= 0"),
        ("PCA_CRL_MAX_DELTA_ENTRIES", "1.5", "must be a whole number >= 0"),
        ("PCA_AUDIT_CHECKPOINT_MINUTES", "hourly", "must be a number >= 0"),
        ("PCA_OCSP_VALIDITY_MINUTES", "0", "must be a number > 0"),
        ("PCA_OCSP_RESPONDER_DAYS", "nan", "must be a number >= 0"),
        (API_ONLY_ENV, "sometimes", "use 1 or 0 (true/false, yes/no)"),
    ],
)
def test_a_value_that_cannot_be_used_stops_the_start_naming_the_variable(
    tmp_path: Path, name: str, value: str, advice: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"PCA_DATA_DIR": str(tmp_path), name: value})
    assert refused.value.field == name
    assert advice in refused.value.detail


def test_secrets_stay_out_of_the_settings_repr(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql://pca:hunter2-password@db/pca",
        master_key="bWFzdGVyLWtleS1tYXRlcmlhbA==",
    )
    assert "hunter2" not in repr(settings)
    assert "bWFzdGVy" not in repr(settings)


def test_the_token_pin_comes_from_a_file_and_stays_out_of_the_repr(tmp_path: Path) -> None:
    pin_file = tmp_path / "pin"
    pin_file.write_text("s3cret-token-pin\n")
    settings = Settings.from_env(
        {
            "PCA_DATA_DIR": str(tmp_path),
            "PCA_PKCS11_MODULE": "/usr/lib/softhsm/libsofthsm2.so",
            "PCA_PKCS11_TOKEN_LABEL": "ca-keys",
            "PCA_PKCS11_PIN_FILE": str(pin_file),
        }
    )
    assert settings.pkcs11 is not None
    assert (settings.pkcs11.token_label, settings.pkcs11.pin) == ("ca-keys", "s3cret-token-pin")
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in repr(settings.pkcs11)


@pytest.mark.parametrize(
    ("variables", "field", "advice"),
    [
        ({"PCA_PKCS11_PIN": "1234"}, "PCA_PKCS11_TOKEN_LABEL", "must name the token"),
        ({"PCA_PKCS11_TOKEN_LABEL": "ca-keys"}, "PCA_PKCS11_PIN", "PCA_PKCS11_PIN_FILE"),
        (
            {"PCA_PKCS11_TOKEN_LABEL": "ca-keys", "PCA_PKCS11_PIN_FILE": "/nonexistent/pin"},
            "PCA_PKCS11_PIN_FILE",
            "cannot read /nonexistent/pin",
        ),
    ],
)
def test_a_token_without_its_label_or_pin_stops_the_start(
    tmp_path: Path, variables: dict[str, str], field: str, advice: str
) -> None:
    module = {"PCA_DATA_DIR": str(tmp_path), "PCA_PKCS11_MODULE": "/usr/lib/softhsm/libsofthsm2.so"}
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({**module, **variables})
    assert refused.value.field == field
    assert advice in refused.value.detail


# --- A deployment opened from Settings ------------------------------------------------------


@pytest.fixture
def tuned_app(sqlite_settings: Settings) -> Iterator[Flask]:
    settings = dataclasses.replace(
        sqlite_settings,
        publishing=PublishingSettings(validity=dt.timedelta(hours=2)),
        ocsp=OCSPSettings(validity=dt.timedelta(minutes=10)),
    )
    app = create_app(settings, clock=SettableClock(), run_projections=False)
    yield app
    app.extensions["pca"].close()


def _enabled_root(api: ApiClient) -> str:
    root = api.call(
        "POST", "/api/v1/cas", json={"kind": "root", "subject": {"common_name": "Tuned Root"}}
    )
    root_id: str = root.get_json()["id"]
    api.call("POST", f"/api/v1/cas/{root_id}/enable")
    return root_id


def test_the_app_signs_crls_for_the_validity_its_settings_give(tuned_app: Flask) -> None:
    api = ApiClient(tuned_app)
    root_id = _enabled_root(api)
    deployment = tuned_app.extensions["pca"]
    deployment.publisher.publish(UUID(root_id))
    crl = x509.load_der_x509_crl(api.call("GET", f"/crl/{root_id}.crl", role=None).data)
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == dt.timedelta(hours=2)


def test_the_app_answers_ocsp_for_the_validity_its_settings_give(tuned_app: Flask) -> None:
    api = ApiClient(tuned_app)
    root_id = _enabled_root(api)
    root = x509.load_der_x509_certificate(api.call("GET", f"/ca/{root_id}.crt", role=None).data)
    cert_id_hash = hashes.SHA1()  # noqa: S303 - RFC 5019 CertIDs use SHA-1
    request = x509_ocsp.OCSPRequestBuilder().add_certificate(root, root, cert_id_hash).build()
    response = api.call(
        "POST",
        f"/ocsp/{root_id}",
        role=None,
        data=request.public_bytes(Encoding.DER),
        headers={"Content-Type": "application/ocsp-request"},
    )
    answer = x509_ocsp.load_der_ocsp_response(response.data)
    assert answer.response_status is x509_ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.next_update_utc is not None
    assert answer.next_update_utc - answer.this_update_utc == dt.timedelta(minutes=10)
