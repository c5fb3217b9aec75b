"""Group commit for issuance: concurrent requests to one CA share one transaction.

Each issuance ends in a durable save of the CA (its quota unit) and the certificate. Saved
one by one, every certificate pays a commit (an fsync on SQLite) and requests to the same CA
queue behind each other's commits. Instead, a request signs its certificate on its own
thread, then hands a :class:`Ticket` to its CA's :class:`GroupCommit`: the first thread to
arrive while no commit is running becomes the leader, takes every ticket waiting (its own
and those that arrived meanwhile) and records them in one save; the others wait for their
outcome. Under load the groups grow by themselves; a lone request is a group of one and
waits for nobody. A batch request is simply many tickets handed over at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from domain.application.commands import CertificateRequest
from domain.model.certificate import Certificate, IssuedFacts
from domain.model.values import RequestContext

MAX_GROUP = 1000  # tickets per transaction: bounds the size of one save


class TicketState(Enum):
    """Where a ticket stands; every ticket handed over ends in one of the last three."""

    WAITING = "waiting"
    RECORDED = "recorded"  # saved: ``certificate`` and ``position`` are set
    REPEATED = "repeated"  # its idempotency key was recorded first by another request
    FAILED = "failed"  # ``error`` says why; nothing of it was saved


@dataclass
class Ticket:
    """One signed certificate waiting to be recorded, and, later, its outcome."""

    ctx: RequestContext
    request: CertificateRequest
    facts: IssuedFacts
    sealed_key: object | None  # the key store's sealed form of a key the service made
    generation: int = 1  # the CA key that signed ``facts``
    state: TicketState = TicketState.WAITING
    certificate: Certificate | None = None
    position: int = 0
    error: BaseException | None = field(default=None, repr=False)

    def recorded(self, certificate: Certificate, position: int) -> None:
        self.state, self.certificate, self.position = TicketState.RECORDED, certificate, position

    def repeated(self) -> None:
        self.state = TicketState.REPEATED

    def failed(self, error: BaseException) -> None:
        self.state, self.error = TicketState.FAILED, error

    @property
    def open(self) -> bool:
        return self.state is TicketState.WAITING


Recorder = Callable[[list[Ticket]], None]


class GroupCommit:
    """Leader/follower hand-over of tickets for one CA inside one process.

    ``record`` is called by one thread at a time with up to MAX_GROUP tickets; it must
    settle every ticket (recorded, repeated or failed). Should it raise, the exception
    becomes the outcome of every ticket it left open (a KeyboardInterrupt or the like also
    propagates in the leader).
    """

    def __init__(self, record: Recorder) -> None:
        self._record = record
        self._waiting: list[Ticket] = []
        self._leading = False
        self._changed = threading.Condition()

    def submit(self, tickets: Sequence[Ticket]) -> None:
        """Return once every ticket is settled, leading commits when none is running."""
        with self._changed:
            self._waiting.extend(tickets)
            while any(ticket.open for ticket in tickets):
                if self._leading:
                    self._changed.wait()
                    continue
                self._lead()

    def _lead(self) -> None:
        """Record one group; called and returning with the condition held."""
        group = self._waiting[:MAX_GROUP]
        del self._waiting[:MAX_GROUP]
        self._leading = True
        self._changed.release()
        try:
            self._record_settling(group)
        finally:
            self._changed.acquire()
            self._leading = False
            self._changed.notify_all()

    def _record_settling(self, group: list[Ticket]) -> None:
        outcome: BaseException = RuntimeError("issuance left a certificate without an outcome")
        try:
            self._record(group)
        except Exception as error:  # each request raises it on its own thread
            outcome = error
        except BaseException as error:  # interrupted: settle, then let it through
            _settle(group, error)
            raise
        _settle(group, outcome)


def _settle(group: list[Ticket], outcome: BaseException) -> None:
    for ticket in group:
        if ticket.open:
            ticket.failed(outcome)
