"""The OCSP responder's certificate is saved on the CA's Publication, which the CRL
publisher and sibling processes save too; a save that lost that race is tried again."""

from __future__ import annotations

from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from domain.adapters.settings import OCSPSettings, Settings
from domain.application.service import PrivateCA
from domain.model.values import RequestContext
from projections.readmodels.queries import ReadModels
from projections.revocation.ocsp_responder import OCSPResponder
from tests.builders import enabled_intermediate, enabled_root


def test_a_responder_certification_that_lost_a_race_is_tried_again(
    service: PrivateCA, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_id = enabled_intermediate(service, enabled_root(service))
    certify = service.certify_ocsp_responder
    attempts: list[object] = []

    def lose_the_first(ctx: RequestContext, ca: Any, lifetime: Any, generation: int = 1) -> Any:
        attempts.append(ca)
        if len(attempts) == 1:
            raise IntegrityError("duplicate key value violates unique constraint")
        return certify(ctx, ca, lifetime, generation)

    monkeypatch.setattr(service, "certify_ocsp_responder", lose_the_first)
    with ReadModels.open(settings) as read_models:
        _, key = OCSPResponder(service, read_models, OCSPSettings())._responder(ca_id)
    assert attempts == [ca_id, ca_id]
    assert key is not None
