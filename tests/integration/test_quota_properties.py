"""Property tests: random command sequences keep the quota ledger exact."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
from pathlib import Path
from uuid import UUID

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from domain.adapters.keystore_backends import SQLiteKeyStore
from domain.adapters.masterkeys import MasterKeyring
from domain.application.service import PrivateCA
from domain.model.certificate import Certificate
from domain.model.errors import CANotEnabledError, CAStateError, QuotaError
from domain.model.values import CertificateStatus, RevocationReason
from tests.builders import ADMIN, OPERATOR, enabled_intermediate, enabled_root, server_request

_KEY = ec.generate_private_key(ec.SECP256R1())
_CSR = (
    x509.CertificateSigningRequestBuilder()
    .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "prop.example")]))
    .sign(_KEY, hashes.SHA256())
    .public_bytes(Encoding.PEM)
    .decode()
)
REQUEST = dataclasses.replace(server_request(), key_algorithm=None, csr_pem=_CSR)
INTERMEDIATES = 2


class QuotaLedger(RuleBasedStateMachine):
    """Drives one root and two intermediates with random purchases, assignments and issues."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp())
        keystore = SQLiteKeyStore(
            self.directory / "keys.db", MasterKeyring.load(self.directory, None)
        )
        self.service = PrivateCA(
            {"PERSISTENCE_MODULE": "eventsourcing.popo"},
            keystore=keystore,
            public_url="http://pca.test",
            allow_memory=True,
        )
        self.root_id = enabled_root(self.service, quota=20)
        self.intermediates = [
            enabled_intermediate(self.service, self.root_id, remaining=3)
            for _ in range(INTERMEDIATES)
        ]
        self.certificates: list[UUID] = []

    def teardown(self) -> None:
        self.service.keystore.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    @rule(count=st.integers(1, 20))
    def purchase(self, count: int) -> None:
        self.service.purchase_quota(ADMIN, self.root_id, count)

    @rule(which=st.integers(0, INTERMEDIATES - 1), remaining=st.integers(0, 30))
    def assign(self, which: int, remaining: int) -> None:
        with contextlib.suppress(QuotaError, CANotEnabledError):
            self.service.assign_quota(ADMIN, self.root_id, self.intermediates[which], remaining)

    @rule(which=st.integers(0, INTERMEDIATES - 1))
    def issue(self, which: int) -> None:
        try:
            issued = self.service.issue_certificate(OPERATOR, self.intermediates[which], REQUEST)
        except (QuotaError, CANotEnabledError):
            return
        self.certificates.append(issued.certificate.id)

    @rule(which=st.integers(0, INTERMEDIATES - 1))
    def toggle(self, which: int) -> None:
        ca_id = self.intermediates[which]
        if self.service.get_ca(ca_id).status.value == "enabled":
            self.service.disable_ca(ADMIN, ca_id)
        else:
            self.service.enable_ca(ADMIN, ca_id)

    @rule(pick=st.integers(0, 1000), delete=st.booleans())
    def revoke(self, pick: int, delete: bool) -> None:
        if not self.certificates:
            return
        certificate_id = self.certificates[pick % len(self.certificates)]
        status = self.service.get_certificate(certificate_id).status
        if status is CertificateStatus.ISSUED:
            self.service.revoke_certificate(OPERATOR, certificate_id, RevocationReason.SUPERSEDED)
        elif status is CertificateStatus.REVOKED and delete:
            self.service.delete_certificate(OPERATOR, certificate_id)

    @invariant()
    def root_total_is_available_plus_everything_assigned(self) -> None:
        root = self.service.get_ca(self.root_id)
        cas = [self.service.get_ca(ca_id) for ca_id in self.intermediates]
        drawn = sum(ca.quota_remaining + ca.issued_count for ca in cas)
        assert root.quota_total == root.quota_available + drawn
        assert root.quota_assigned == drawn
        assert root.quota_available >= 0
        assert all(ca.quota_remaining >= 0 for ca in cas)

    @invariant()
    def issued_counts_match_the_issued_events(self) -> None:
        issued_events = [
            notification
            for notification in self.service.recorder.select_notifications(start=1, limit=10**6)
            if notification.topic.endswith(Certificate.CertificateIssued.__qualname__)
        ]
        counts = {ca_id: self.service.get_ca(ca_id).issued_count for ca_id in self.intermediates}
        assert sum(counts.values()) == len(issued_events) == len(self.certificates)

    @invariant()
    def roots_never_hold_issuing_quota(self) -> None:
        try:
            self.service.issue_certificate(OPERATOR, self.root_id, REQUEST)
        except CAStateError:
            return
        raise AssertionError("a root issued an end-entity certificate")


QuotaLedger.TestCase.settings = hypothesis_settings(
    max_examples=60, stateful_step_count=40, deadline=None
)
test_quota_ledger_stays_exact = QuotaLedger.TestCase
