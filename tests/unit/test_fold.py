"""The shared fold routes each event to the one change it makes, whoever keeps the state."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import uuid4

from domain.model.authority import CertificateAuthority
from domain.model.tokens import ApiToken, Role
from domain.model.values import RevocationReason
from projections.fold import apply_event

CA = CertificateAuthority
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CA_ID = uuid4()


class RecordingFold:
    """An EventFold that writes down every call it receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, args))


def _event(cls: type[Any], **fields: Any) -> Any:
    return cls(
        originator_id=CA_ID,
        originator_version=2,
        timestamp=NOW,
        actor="alice (admin)",
        request_id="req-1",
        **fields,
    )


def test_quota_consumed_and_quota_spent_fold_as_units_of_the_same_ca() -> None:
    fold = RecordingFold()
    consumed = _event(CA.QuotaConsumed, certificate_id=uuid4(), serial_number="0a")
    spent = _event(CA.QuotaSpent, certificate_ids=[uuid4(), uuid4()], serial_numbers=["1", "2"])
    apply_event(fold, consumed, 7)
    apply_event(fold, spent, 8)
    assert fold.calls == [("consume_quota", (CA_ID, 1)), ("consume_quota", (CA_ID, 2))]


def test_a_revocation_carries_its_log_position() -> None:
    fold = RecordingFold()
    revoked = _event(CA.CARevoked, reason=RevocationReason.KEY_COMPROMISE, revoked_at=NOW)
    apply_event(fold, revoked, 42)
    assert fold.calls == [("revoke_ca", (revoked, 42))]


def test_events_no_state_shows_change_nothing() -> None:
    fold = RecordingFold()
    token = _event(
        ApiToken.TokenCreated,
        originator_topic="domain.model.tokens:ApiToken",
        name="ci",
        role=Role.AUDITOR,
        token_sha256="00" * 32,
    )
    apply_event(fold, token, 1)
    apply_event(fold, object(), 2)
    assert fold.calls == []


def test_a_subclass_of_an_event_folds_like_the_event() -> None:
    class LaterPurchase(CA.QuotaPurchased):
        pass

    fold = RecordingFold()
    purchase = _event(LaterPurchase, count=5)
    apply_event(fold, purchase, 3)
    assert fold.calls == [("purchase_quota", (purchase,))]
