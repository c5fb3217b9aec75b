"""CA keys in a PKCS#11 token (SoftHSM2): made there, never in the key store, and
everything they sign accepted by openssl, before and after a restart."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pkcs11
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eventsourcing.persistence import StoredEvent
from pkcs11 import Attribute, ObjectClass

from domain.adapters.pkcs11 import TokenSettings
from domain.adapters.settings import (
    EVENTS_FILE,
    OCSPSettings,
    PublishingSettings,
    Settings,
    open_service,
)
from domain.application.service import PrivateCA
from domain.model.authority import CertificateAuthority
from domain.model.errors import KeyCustodyError, ValidationError
from domain.model.values import CAStatus, KeyAlgorithm, KeyStorage, RevocationReason
from projections.backup.operations import create_backup, restore_backup
from projections.readmodels.queries import ReadModels
from projections.readmodels.worker import catch_up
from projections.revocation.crlstore import BASE, open_crl_store
from projections.revocation.ocsp_responder import OCSPResponder
from projections.revocation.publisher import CRLPublisher
from tests.builders import ADMIN, OPERATOR, enabled_root, intermediate_profile, issue, root_profile
from tests.conftest import SettableClock
from tests.integration.test_backup import sqlite_target


@pytest.fixture
def token_settings(settings: Settings, token: TokenSettings) -> Settings:
    return dataclasses.replace(settings, pkcs11=token)


@contextlib.contextmanager
def opened(settings: Settings, clock: SettableClock) -> Iterator[PrivateCA]:
    service = open_service(settings, clock=clock)
    try:
        yield service
    finally:
        service.close()
        service.keystore.close()
        if service.token_signer is not None:
            service.token_signer.close()


def token_hierarchy(service: PrivateCA) -> tuple[UUID, UUID]:
    """An RSA root and a P-384 intermediate, both with their keys in the token."""
    root_id = service.create_root(ADMIN, root_profile(KeyAlgorithm.RSA_2048)).id
    service.enable_ca(ADMIN, root_id, KeyStorage.PKCS11)
    service.purchase_quota(ADMIN, root_id, 10)
    profile = intermediate_profile(KeyAlgorithm.EC_P384)
    ca_id = service.create_intermediate(ADMIN, root_id, profile).id
    service.enable_ca(ADMIN, ca_id, KeyStorage.PKCS11)
    service.assign_quota(ADMIN, root_id, ca_id, 5)
    return root_id, ca_id


def openssl(*args: str | Path, check: bool = True) -> str:
    """openssl's output; with ``check``, the command must succeed."""
    done = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)
    assert done.returncode == 0 or not check, done.stdout + done.stderr
    return done.stdout + done.stderr


def ca_der(service: PrivateCA, ca_id: UUID) -> bytes:
    der = service.get_ca(ca_id).certificate_der
    assert der is not None
    return der


def ca_public_key(ca: CertificateAuthority) -> bytes:
    assert ca.certificate_der is not None
    return spki(x509.load_der_x509_certificate(ca.certificate_der).public_key())


def spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def stored_public_keys(settings: Settings, service: PrivateCA) -> list[bytes]:
    """The public half of every private key in the key store, whatever its id."""
    if settings.database_url is None:
        with contextlib.closing(sqlite3.connect(settings.data_dir / EVENTS_FILE)) as db:
            ids = [row[0] for row in db.execute("SELECT key_id FROM pca_keys")]
    else:
        with psycopg.connect(settings.database_url) as db:
            table = f'"{settings.database_schema}".pca_keys'
            ids = [row[0] for row in db.execute(f"SELECT key_id FROM {table}")]  # noqa: S608
    return [spki(service.keystore.get(key_id).public_key()) for key_id in ids]


def publish_crls(settings: Settings, service: PrivateCA, *ca_ids: UUID) -> list[bytes]:
    """A fresh base CRL of each CA, as served."""
    ders = []
    with contextlib.closing(open_crl_store(settings)) as store, ReadModels.open(settings) as models:
        publisher = CRLPublisher(service, models, store, PublishingSettings())
        for ca_id in ca_ids:
            publisher.publish(ca_id, force_base=True)
            crl = store.get(ca_id, BASE)
            assert crl is not None
            ders.append(crl.der)
    return ders


def test_token_keys_sign_what_openssl_accepts_and_are_found_after_a_restart(
    token_settings: Settings, clock: SettableClock, tmp_path: Path
) -> None:
    with opened(token_settings, clock) as service:
        root_id, ca_id = token_hierarchy(service)
        revoked, kept = (issue(service, ca_id).certificate for _ in range(2))
        service.revoke_certificate(OPERATOR, revoked.id, RevocationReason.KEY_COMPROMISE)
        cas = (service.get_ca(root_id), service.get_ca(ca_id))
        assert [ca.key_storage for ca in cas] == [KeyStorage.PKCS11] * 2
        assert {ca_public_key(ca) for ca in cas}.isdisjoint(
            stored_public_keys(token_settings, service)
        )

    with opened(token_settings, clock) as service:  # a new process finds the keys by label
        after = issue(service, ca_id).certificate
        catch_up(token_settings)
        files = Files(tmp_path, service, root_id, ca_id)
        leaves = {"revoked": revoked, "kept": kept, "after": after}
        for name, certificate in leaves.items():
            files.leaf(name, certificate.certificate_der)
        files.crls(publish_crls(token_settings, service, root_id, ca_id))
        with ReadModels.open(token_settings) as read_models:
            responder = OCSPResponder(service, read_models, OCSPSettings())
            answers = {name: files.ocsp(name, responder) for name in leaves}

    assert "kept.pem: OK" in files.verify("kept")
    assert "after.pem: OK" in files.verify("after")
    assert "certificate revoked" in files.verify("revoked")
    for crl in ("root.crl", "issuing.crl"):
        assert "verify OK" in openssl(
            "crl", "-in", tmp_path / crl, "-CAfile", files.chain, "-noout"
        )
    assert "revoked.pem: revoked" in answers["revoked"]
    assert "kept.pem: good" in answers["kept"]
    assert "after.pem: good" in answers["after"]


def test_token_keys_are_sensitive_and_never_extractable(
    token_settings: Settings, token: TokenSettings, clock: SettableClock
) -> None:
    with opened(token_settings, clock) as service:
        _, ca_id = token_hierarchy(service)
    session = (
        pkcs11.lib(str(token.module))
        .get_token(token_label=token.token_label)
        .open(user_pin=token.pin)
    )
    with session:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=f"ca-{ca_id}")
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.NEVER_EXTRACTABLE] is True


def test_a_token_ca_without_a_token_is_refused_and_stays_pending(
    sqlite_settings: Settings, clock: SettableClock
) -> None:
    with opened(sqlite_settings, clock) as service:
        root_id = service.create_root(ADMIN, root_profile()).id
        with pytest.raises(ValidationError, match="no PKCS#11 token") as raised:
            service.enable_ca(ADMIN, root_id, KeyStorage.PKCS11)
        assert raised.value.field == "key_storage"
        assert service.get_ca(root_id).status is CAStatus.PENDING
        assert stored_public_keys(sqlite_settings, service) == []


class Files:
    """The chain, leaves and CRLs as openssl reads them, and openssl's verdicts."""

    def __init__(self, directory: Path, service: PrivateCA, root_id: UUID, ca_id: UUID) -> None:
        self.directory = directory
        self.ca_id = ca_id
        self.root = self._pem("root.pem", ca_der(service, root_id))
        self.issuing = self._pem("issuing.pem", ca_der(service, ca_id))
        self.chain = directory / "chain.pem"
        self.chain.write_bytes(self.root.read_bytes() + self.issuing.read_bytes())

    def leaf(self, name: str, der: bytes) -> None:
        self._pem(f"{name}.pem", der)

    def crls(self, ders: list[bytes]) -> None:
        for name, der in zip(("root.crl", "issuing.crl"), ders, strict=True):
            crl = x509.load_der_x509_crl(der)
            (self.directory / name).write_bytes(crl.public_bytes(Encoding.PEM))

    def verify(self, leaf: str) -> str:
        return openssl(
            "verify",
            "-crl_check_all",
            "-CAfile",
            self.root,
            "-untrusted",
            self.issuing,
            "-CRLfile",
            self.directory / "root.crl",
            "-CRLfile",
            self.directory / "issuing.crl",
            self.directory / f"{leaf}.pem",
            check=False,
        )

    def ocsp(self, leaf: str, responder: OCSPResponder) -> str:
        request, response = self.directory / "request.der", self.directory / "response.der"
        cert = self.directory / f"{leaf}.pem"
        openssl("ocsp", "-issuer", self.issuing, "-cert", cert, "-reqout", request)
        response.write_bytes(responder.answer(self.ca_id, request.read_bytes()))
        return openssl(
            "ocsp",
            "-respin",
            response,
            "-CAfile",
            self.root,
            "-verify_other",
            self.issuing,
            "-issuer",
            self.issuing,
            "-cert",
            cert,
            "-no_nonce",  # -respin has no request to compare the echoed nonce with
        )

    def _pem(self, name: str, der: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM))
        return path


def test_a_ca_enabled_before_keys_could_live_in_a_token_loads_with_its_key_in_the_store(
    service: PrivateCA,
) -> None:
    root_id = enabled_root(service, quota=0)
    stored = [
        as_stored_before_tokens(service, event) for event in service.recorder.select_events(root_id)
    ]
    ca: CertificateAuthority | None = None
    for event in map(service.mapper.to_domain_event, stored):
        assert isinstance(event, CertificateAuthority.Event)
        ca = event.mutate(ca)
    assert ca is not None
    assert ca.key_storage is KeyStorage.SOFTWARE
    _, key = ca.signing_identity()
    assert spki(service.signers.signing_key(key).public_key()) == ca_public_key(ca)


def as_stored_before_tokens(service: PrivateCA, stored: StoredEvent) -> StoredEvent:
    """``stored`` as it was written before CAEnabled had a key_storage."""
    state = service.mapper.transcoder.decode(stored.state)
    if stored.topic.endswith("CAEnabled"):
        del state["key_storage"]
    return dataclasses.replace(stored, state=service.mapper.transcoder.encode(state))


def test_a_backup_names_the_keys_left_in_the_token_and_a_restore_without_it_says_so(
    sqlite_settings: Settings, token: TokenSettings, clock: SettableClock, tmp_path: Path
) -> None:
    source = dataclasses.replace(sqlite_settings, pkcs11=token)
    with opened(source, clock) as service:
        root_id, ca_id = token_hierarchy(service)
        issue(service, ca_id)
    backup = create_backup(source, tmp_path / "backup.zip", clock())
    assert backup.manifest.token_keys == sorted([f"ca-{root_id}", f"ca-{ca_id}"])
    assert backup.to_row()["token_label"] == token.token_label

    bare = sqlite_target(tmp_path / "bare", source)
    with pytest.raises(KeyCustodyError, match="live in the PKCS#11 token") as refused:
        restore_backup(bare, backup.path)
    assert refused.value.field == "PCA_PKCS11_MODULE"
    assert not (bare.data_dir / EVENTS_FILE).exists()  # nothing was written

    target = dataclasses.replace(sqlite_target(tmp_path / "with-token", source), pkcs11=token)
    restore_backup(target, backup.path)
    with opened(target, clock) as service:
        assert service.get_ca(ca_id).key_storage is KeyStorage.PKCS11
        issue(service, ca_id)  # the restored deployment signs with the token's key
