"""Applying the log's notifications to the read models, the most frequent ones without
building their domain events.

Every certificate adds two events to the log: its ``CertificateIssued`` and its issuer's
``QuotaConsumed`` (before group commit) or a share of a ``QuotaSpent``. Turning their JSON
back into event objects (eventsourcing's transcoder runs a hook on seven dicts of each
``CertificateIssued``, builds UUIDs, datetimes, enums and the DER's bytes) was about half
of a catch-up's CPU, while the read models keep only a few of their fields as stored: a
``QuotaConsumed`` needs no decoding at all (its CA is the notification's originator) and a
``CertificateIssued`` one ``json.loads``. Every other event goes through the mapper and
:func:`~projections.fold.apply_event`, as does everything when the store's events are
encrypted or compressed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from uuid import UUID

from eventsourcing.persistence import JSONTranscoder, Mapper, Notification

from domain.model.authority import CertificateAuthority
from domain.model.certificate import Certificate
from domain.model.topics import stored_topics
from projections.fold import apply_event
from projections.readmodels.sql import to_micros
from projections.readmodels.writer import Issued, ReadModelWriter

_Shortcut = Callable[[ReadModelWriter, Notification], None]


class EventApplier:
    """Applies notifications of one log (decoded by ``mapper``) to a writer, in order.

    With ``shortcuts`` off every notification becomes its domain event first: the ordinary
    path, which the shortcuts must match.
    """

    def __init__(self, mapper: Mapper[UUID], *, shortcuts: bool = True) -> None:
        self._mapper = mapper
        plain = (
            isinstance(mapper.transcoder, JSONTranscoder)
            and mapper.cipher is None
            and mapper.compressor is None
        )
        self._shortcuts = _SHORTCUTS if shortcuts and plain else {}

    def apply(self, writer: ReadModelWriter, notification: Notification) -> None:
        """Apply ``notification`` to ``writer``."""
        shortcut = self._shortcuts.get(notification.topic)
        if shortcut is None:
            apply_event(writer, self._mapper.to_domain_event(notification), notification.id)
        else:
            shortcut(writer, notification)


def _consumed(writer: ReadModelWriter, notification: Notification) -> None:
    writer.consume_quota(notification.originator_id, 1)


def _issued(writer: ReadModelWriter, notification: Notification) -> None:
    writer.add_issued(
        _stored_issued(notification.originator_id, notification.state), notification.id
    )


def _stored_issued(certificate_id: UUID | str, state: bytes) -> Issued:
    """The values of a stored CertificateIssued, read from eventsourcing's JSON (typed
    values as ``{"_type_": name, "_data_": value}``)."""
    fields: dict[str, Any] = json.loads(state)
    return Issued(
        id=str(certificate_id),
        ca_id=_uuid_text(fields["ca_id"]["_data_"]),
        serial_number=fields["serial_number"],
        type=fields["type"]["_data_"],
        name=fields["name"],
        common_name=fields["subject"]["_data_"]["common_name"],
        sans=[san["_data_"] for san in fields["sans"]],
        key_algorithm=fields["key_algorithm"]["_data_"],
        not_before=_micros(fields["not_before"]["_data_"]),
        not_after=_micros(fields["not_after"]["_data_"]),
        actor=fields["actor"],
        issued_at=_micros(fields["timestamp"]["_data_"]),
    )


@lru_cache(maxsize=1024)
def _uuid_text(hex_digits: str) -> str:
    """A UUID stored as 32 hex digits, as ``str(UUID)`` writes it (a few CAs issue all)."""
    return str(UUID(hex_digits))


def _micros(iso: str) -> int:
    return to_micros(dt.datetime.fromisoformat(iso))


_SHORTCUTS: dict[str, _Shortcut] = {
    **{topic: _issued for topic in stored_topics(Certificate.CertificateIssued)},
    **{topic: _consumed for topic in stored_topics(CertificateAuthority.QuotaConsumed)},
}
