"""The one fold over the events: which event changes which CA and certificate state, for
every consumer that keeps that state (the read models, point-in-time state).

A consumer implements :class:`EventFold`; :func:`apply_event` hands it each event in log
order. Events no state shows (idempotency claims, tokens, and any added later) change
nothing. Quota spent arrives as units per CA: a ``QuotaConsumed`` (logs from before group
commit) is one unit, a ``QuotaSpent`` one per certificate, so both log shapes fold alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol
from uuid import UUID

from domain.model.authority import CertificateAuthority
from domain.model.certificate import Certificate

CA = CertificateAuthority


class EventFold(Protocol):
    """State that the CA and certificate events change, one method per change."""

    def add_ca(self, event: CA.CACreated, position: int) -> None: ...

    def enable_ca(self, event: CA.CAEnabled) -> None: ...

    def roll_over_ca(self, event: CA.CAKeyRolledOver) -> None: ...

    def retire_ca_key(self, event: CA.CAKeyRetired) -> None: ...

    def disable_ca(self, event: CA.CADisabled) -> None: ...

    def renew_ca(self, event: CA.CAServiceRenewed) -> None: ...

    def revoke_ca(self, event: CA.CARevoked, position: int) -> None: ...

    def purchase_quota(self, event: CA.QuotaPurchased) -> None: ...

    def assign_quota(self, event: CA.QuotaAssigned) -> None: ...

    def receive_quota(self, event: CA.QuotaReceived) -> None: ...

    def consume_quota(self, ca_id: UUID, units: int) -> None: ...

    def add_certificate(self, event: Certificate.CertificateIssued, position: int) -> None: ...

    def revoke_certificate(self, event: Certificate.CertificateRevoked, position: int) -> None: ...

    def delete_certificate(self, event: Certificate.CertificateDeleted) -> None: ...


def apply_event(fold: EventFold, event: object, position: int) -> None:
    """Apply ``event``, stored at ``position``, to ``fold``; an event of a type the fold
    does not know (or a subclass of none) changes nothing."""
    for cls in type(event).__mro__:
        route = _ROUTES.get(cls)
        if route is not None:
            route(fold, event, position)
            return


_Route = Callable[[EventFold, Any, int], None]
_ROUTES: dict[type[Any], _Route] = {
    CA.CACreated: lambda fold, event, position: fold.add_ca(event, position),
    CA.CAEnabled: lambda fold, event, _: fold.enable_ca(event),
    CA.CAKeyRolledOver: lambda fold, event, _: fold.roll_over_ca(event),
    CA.CAKeyRetired: lambda fold, event, _: fold.retire_ca_key(event),
    CA.CADisabled: lambda fold, event, _: fold.disable_ca(event),
    CA.CAServiceRenewed: lambda fold, event, _: fold.renew_ca(event),
    CA.CARevoked: lambda fold, event, position: fold.revoke_ca(event, position),
    CA.QuotaPurchased: lambda fold, event, _: fold.purchase_quota(event),
    CA.QuotaAssigned: lambda fold, event, _: fold.assign_quota(event),
    CA.QuotaReceived: lambda fold, event, _: fold.receive_quota(event),
    CA.QuotaConsumed: lambda fold, event, _: fold.consume_quota(event.originator_id, 1),
    CA.QuotaSpent: lambda fold, event, _: fold.consume_quota(
        event.originator_id, len(event.certificate_ids)
    ),
    Certificate.CertificateIssued: lambda fold, event, position: fold.add_certificate(
        event, position
    ),
    Certificate.CertificateRevoked: lambda fold, event, position: fold.revoke_certificate(
        event, position
    ),
    Certificate.CertificateDeleted: lambda fold, event, _: fold.delete_certificate(event),
}
