"""Point in time: every CA, certificate and revocation list as it stood at a cut of the
event log, computed from the log alone (no read model is consulted).

:func:`state_at` folds the log from its first event to the cut (:mod:`projections.audit.logcut`
says how a position or a time becomes a cut) with the same rules as the read models, so
the result equals what the read models showed once they had processed that position,
judged at the cut's time. Per certificate the fold (:mod:`projections.audit.statefold`) keeps
a few fields (no DER, no names), so a million certificates fit in a few hundred megabytes
(docs/BENCHMARKS.md).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from domain.adapters.settings import Settings
from domain.model.values import RevocationReason
from projections.audit.certtable import CertificateAuditStatus, CertificateState
from projections.audit.logcut import At, Cut, LogReader, iso
from projections.audit.statefold import AuditState, StateFold
from projections.fold import apply_event
from projections.readmodels.models import CAView, RevocationEntry

__all__ = [
    "AuditState",
    "CertificateAuditStatus",
    "CertificateState",
    "fold",
    "render_json",
    "state_at",
    "to_json",
]


def state_at(settings: Settings, at: At = None) -> AuditState:
    """The state at ``at`` (a position, an aware time, or None for the end of the log
    now), folded from the log of ``settings``. ValidationError (field "at") if ``at`` is
    not a position of the log or a time with a zone."""
    with LogReader.open(settings) as reader:
        return fold(reader, reader.cut(at))


def fold(reader: LogReader, cut: Cut) -> AuditState:
    """Fold every event up to ``cut`` into the state it leaves."""
    folding = StateFold()
    for event, position in reader.events(cut):
        apply_event(folding, event, position)
    return folding.finish(cut)


def to_json(state: AuditState) -> dict[str, Any]:
    """A JSON-able form of ``state``: lists in the state's order, times in ISO 8601 UTC."""
    return {
        "position": state.position,
        "time": iso(state.time),
        "cas": [_ca_json(ca) for ca in state.cas],
        "certificates": [_certificate_json(certificate) for certificate in state.certificates],
        "revoked": {
            str(issuer_id): [_revocation_json(entry) for entry in entries]
            for issuer_id, entries in state.revoked.items()
        },
    }


def render_json(state: AuditState) -> bytes:
    """``to_json(state)`` as UTF-8 with sorted keys: the same state, the same bytes."""
    return json.dumps(
        to_json(state), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


# --- JSON ---------------------------------------------------------------------------------


def _ca_json(ca: CAView) -> dict[str, Any]:
    return {
        "id": str(ca.id),
        "kind": ca.kind.value,
        "parent_id": None if ca.parent_id is None else str(ca.parent_id),
        "status": ca.status.value,
        "subject": dataclasses.asdict(ca.subject),
        "key_algorithm": ca.key_algorithm.value,
        "serial_number": ca.serial_number,
        "not_before": iso(ca.not_before),
        "not_after": iso(ca.not_after),
        "validity_years": ca.validity_years,
        "service_days": ca.service_days,
        "service_until": iso(ca.service_until),
        "quota": dataclasses.asdict(ca.quota),
        "certificates": dataclasses.asdict(ca.certificates),
        "revoked_at": iso(ca.revoked_at),
        "revocation_reason": _reason(ca.revocation_reason),
        "created_at": iso(ca.created_at),
        "created_by": ca.created_by,
    }


def _certificate_json(certificate: CertificateState) -> dict[str, Any]:
    return {
        "id": str(certificate.id),
        "ca_id": str(certificate.issuer_id),
        "serial_number": certificate.serial_number,
        "status": certificate.status.value,
        "not_after": iso(certificate.not_after),
        "revoked_at": iso(certificate.revoked_at),
        "revocation_reason": _reason(certificate.revocation_reason),
    }


def _revocation_json(entry: RevocationEntry) -> dict[str, Any]:
    return {
        "serial_number": entry.serial_number,
        "id": str(entry.certificate_id),
        "revoked_at": iso(entry.revoked_at),
        "reason": entry.reason.value,
        "not_after": iso(entry.not_after),
        "position": entry.position,
    }


def _reason(reason: RevocationReason | None) -> str | None:
    return None if reason is None else reason.value
