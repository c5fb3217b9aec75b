"""CA key rollover without downtime: issuance moves to the new key at once while threads
keep issuing, and what either key signed stays verifiable, with CRLs and OCSP answers for
both keys served over HTTP and checked by openssl."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from uuid import UUID

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from api.deployment import Deployment
from domain.adapters.pkcs11 import TokenSettings
from domain.adapters.settings import Settings
from domain.application.service import IssuedCertificate, PrivateCA
from domain.model.values import KeyStorage, RevocationReason
from projections.revocation.publisher import CRLPublisher
from tests.api_client import ApiClient
from tests.builders import (
    ADMIN,
    OPERATOR,
    enabled_intermediate,
    enabled_root,
    intermediate_profile,
    issue,
)
from tests.conftest import SettableClock
from tests.integration.test_pkcs11_signer import opened, openssl, token_hierarchy

THREADS = 3


def write_pem(path: Path, *ders: bytes) -> Path:
    path.write_bytes(
        b"".join(x509.load_der_x509_certificate(d).public_bytes(Encoding.PEM) for d in ders)
    )
    return path


class Issuing:
    """Threads issuing from one CA until stopped; each result notes whether it was asked
    for after the rollover had returned."""

    def __init__(self, service: PrivateCA, ca_id: UUID) -> None:
        self.service, self.ca_id = service, ca_id
        self.rolled, self.stop = threading.Event(), threading.Event()
        self.issued: list[tuple[bool, IssuedCertificate]] = []
        self.errors: list[BaseException] = []
        self._threads = [threading.Thread(target=self._work) for _ in range(THREADS)]

    def _work(self) -> None:
        while not self.stop.is_set():
            after = self.rolled.is_set()
            try:
                self.issued.append((after, issue(self.service, self.ca_id)))
            except BaseException as error:
                self.errors.append(error)
                return

    def until(self, count: int) -> None:
        while len(self.issued) < count and not self.errors:
            self.stop.wait(0.01)

    def __enter__(self) -> Issuing:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join()


def test_issuance_moves_to_the_new_key_at_once_and_both_keys_stay_served(
    api: ApiClient, tmp_path: Path
) -> None:
    deployment = api.app.extensions["pca"]
    assert isinstance(deployment, Deployment)
    service = deployment.service
    root_id = enabled_root(service, quota=400)
    ca_id = enabled_intermediate(service, root_id, remaining=400)
    with Issuing(service, ca_id) as load:
        load.until(15)
        rolled = api.call("POST", f"/api/v1/cas/{ca_id}/rollover").get_json()
        load.rolled.set()
        load.until(len(load.issued) + 20)
    assert not load.errors

    first, second = (g["certificate_pem"].encode() for g in rolled["key_generations"])
    keys = [x509.load_pem_x509_certificate(pem) for pem in (first, second)]
    assert keys[0].subject == keys[1].subject
    assert ski(keys[0]) != ski(keys[1])
    by_key: dict[bytes, list[IssuedCertificate]] = {ski(k): [] for k in keys}
    ders = {ski(k): k.public_bytes(Encoding.DER) for k in keys}
    for after, outcome in load.issued:
        leaf = x509.load_der_x509_certificate(outcome.certificate.certificate_der)
        by_key[aki(leaf)].append(outcome)
        if after:  # asked for after the rollover: the new key signs it
            assert aki(leaf) == ski(keys[1])
        assert outcome.chain_der[0] == ders[aki(leaf)]  # the chain of the key that signed
    old, new = by_key[ski(keys[0])], by_key[ski(keys[1])]
    assert old
    assert new

    for batch in (old, new):
        service.revoke_certificate(
            OPERATOR, batch[0].certificate.id, RevocationReason.KEY_COMPROMISE
        )
    deployment.read_models.wait_for(service.recorder.max_notification_id() or 0, 10)
    CRLPublisher(service, deployment.read_models, deployment.crls).publish(ca_id, force_base=True)
    CRLPublisher(service, deployment.read_models, deployment.crls).publish(root_id, force_base=True)
    files = Files(tmp_path, api, root_id, ca_id)
    for number, batch in ((1, old), (2, new)):
        verdicts = files.verify(number, [outcome.certificate.certificate_der for outcome in batch])
        assert "certificate revoked" in verdicts[0]
        assert all(": OK" in verdict for verdict in verdicts[1:])
        assert "revoked" in files.ocsp(number, batch[0].certificate.certificate_der)
        assert ": good" in files.ocsp(number, batch[-1].certificate.certificate_der)


def ski(certificate: x509.Certificate) -> bytes:
    return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def aki(certificate: x509.Certificate) -> bytes:
    identifier = certificate.extensions.get_extension_for_class(
        x509.AuthorityKeyIdentifier
    ).value.key_identifier
    assert identifier is not None
    return identifier


class Files:
    """What a relying party fetches over HTTP for each key, and openssl's verdicts."""

    def __init__(self, directory: Path, api: ApiClient, root_id: UUID, ca_id: UUID) -> None:
        self.directory, self.api, self.ca_id = directory, api, ca_id
        self.root = self._fetch(f"/ca/{root_id}.crt", "root.der", pem=True)
        self.root_crl = self._fetch(f"/crl/{root_id}.crl", "root-crl.der")

    def _fetch(self, url: str, name: str, *, pem: bool = False) -> Path:
        response = self.api.call("GET", url, role=None)
        assert response.status_code == 200, (url, response.data[:300])
        path = self.directory / name
        path.write_bytes(response.data)
        if pem:
            openssl("x509", "-inform", "DER", "-in", path, "-out", path.with_suffix(".pem"))
            return path.with_suffix(".pem")
        return path

    def _issuing(self, generation: int) -> tuple[Path, Path]:
        """The key's CA certificate and base CRL, from the URLs its certificates name."""
        name = str(self.ca_id) if generation == 1 else f"{self.ca_id}-g{generation}"
        certificate = self._fetch(f"/ca/{name}.crt", f"issuing-{generation}.der", pem=True)
        crl = self._fetch(f"/crl/{name}.crl", f"issuing-{generation}-crl.der")
        openssl("crl", "-inform", "DER", "-in", crl, "-CAfile", certificate, "-noout")
        return certificate, crl

    def verify(self, generation: int, leaves: list[bytes]) -> list[str]:
        certificate, crl = self._issuing(generation)
        verdicts = []
        for index, der in enumerate(leaves):
            leaf = write_pem(self.directory / f"leaf-{generation}-{index}.pem", der)
            verdicts.append(
                openssl(
                    "verify",
                    "-crl_check_all",
                    "-CAfile",
                    self.root,
                    "-untrusted",
                    certificate,
                    "-CRLfile",
                    self._pem_crl(crl),
                    "-CRLfile",
                    self._pem_crl(self.root_crl),
                    leaf,
                    check=False,
                )
            )
        return verdicts

    def ocsp(self, generation: int, leaf_der: bytes) -> str:
        certificate, _ = self._issuing(generation)
        leaf = write_pem(self.directory / f"ocsp-leaf-{generation}.pem", leaf_der)
        request = self.directory / "request.der"
        openssl("ocsp", "-issuer", certificate, "-cert", leaf, "-reqout", request)
        response = self.api.call(
            "POST",
            f"/ocsp/{self.ca_id}",
            role=None,
            data=request.read_bytes(),
            headers={"Content-Type": "application/ocsp-request"},
        )
        answer = self.directory / "response.der"
        answer.write_bytes(response.data)
        return openssl(
            "ocsp",
            "-respin",
            answer,
            "-CAfile",
            self.root,
            "-verify_other",
            certificate,
            "-issuer",
            certificate,
            "-cert",
            leaf,
            "-no_nonce",
        )

    def _pem_crl(self, der_path: Path) -> Path:
        out = der_path.with_suffix(".crl.pem")
        openssl("crl", "-inform", "DER", "-in", der_path, "-out", out)
        return out


def test_a_root_rolled_over_in_the_token_links_both_keys_for_relying_parties(
    sqlite_settings: Settings, token: TokenSettings, clock: SettableClock, tmp_path: Path
) -> None:
    with opened(dataclasses.replace(sqlite_settings, pkcs11=token), clock) as service:
        root_id, old_issuing = token_hierarchy(service)
        before = issue(service, old_issuing)
        service.roll_over_ca_key(ADMIN, root_id)
        root = service.get_ca(root_id)
        new_issuing = service.create_intermediate(ADMIN, root_id, intermediate_profile()).id
        service.enable_ca(ADMIN, new_issuing, KeyStorage.PKCS11)
        service.assign_quota(ADMIN, root_id, new_issuing, 2)
        after = issue(service, new_issuing)
    assert root.key_storage is KeyStorage.PKCS11
    assert root.key_id == f"ca-{root_id}-g2"
    old_root, new_root = (generation.certificate_der for generation in root.generations)
    new_by_old, old_by_new = root.link_certificates
    assert before.chain_der[1:] == (old_root,)
    assert after.chain_der[1:] == (new_root,)

    def verify(name: str, anchor: bytes, link: bytes, leaf: IssuedCertificate) -> str:
        trusted = write_pem(tmp_path / f"{name}-anchor.pem", anchor)
        untrusted = write_pem(tmp_path / f"{name}-untrusted.pem", link, leaf.chain_der[0])
        cert = write_pem(tmp_path / f"{name}.pem", leaf.certificate.certificate_der)
        return openssl("verify", "-CAfile", trusted, "-untrusted", untrusted, cert, check=False)

    # Who trusts only the old root reaches what the new key signed through new-by-old, and
    # who trusts only the new root reaches what the old key signed through old-by-new.
    assert ": OK" in verify("after-via-old-root", old_root, new_by_old, after)
    assert ": OK" in verify("before-via-new-root", new_root, old_by_new, before)
    assert ": OK" not in verify("after-without-link", old_root, old_by_new, after)


def test_a_snapshot_of_a_rolled_over_ca_keeps_every_key(
    service: PrivateCA, settings: Settings, clock: SettableClock
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    service.roll_over_ca_key(ADMIN, ca_id)
    service.roll_over_ca_key(ADMIN, ca_id)
    service.take_snapshot(ca_id)
    with opened(settings, clock) as reopened:  # loads the CA from the snapshot
        assert reopened.get_ca(ca_id).generations == service.get_ca(ca_id).generations
        assert [g.number for g in reopened.get_ca(ca_id).generations] == [1, 2, 3]
        issue(reopened, ca_id)


def test_another_process_signs_with_the_new_key_from_the_rollover_on(
    service: PrivateCA, settings: Settings, clock: SettableClock
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service), remaining=5)
    with opened(settings, clock) as other:  # a second process with the CA cached
        issue(other, ca_id)
        service.roll_over_ca_key(ADMIN, ca_id)
        after = issue(other, ca_id)
    new_key = x509.load_der_x509_certificate(
        service.get_ca(ca_id).key_generation(2).certificate_der
    )
    leaf = x509.load_der_x509_certificate(after.certificate.certificate_der)
    assert aki(leaf) == ski(new_key)
    assert after.chain_der[0] == service.get_ca(ca_id).key_generation(2).certificate_der
    leaf.verify_directly_issued_by(new_key)
