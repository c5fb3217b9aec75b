"""The guard that stops a CA whose history was forged from acting on it.

Commands fold the aggregates from the event log; if an event was altered behind the
service's back (a quota of 100 made 900), the service would act on forged state. A
:class:`LogVerifier` (the audit chain's, ``domain.audit.guard.ChainGuard``, plugged in by
the composition root) recomputes the chain: all of it the first time, then only what was
appended since. :class:`Integrity` asks it before every command and, once a break is found,
refuses every command from then on with :class:`LogTamperedError`; reads are not guarded, so
the deployment stays open to the investigation. Why and what it costs: docs/AUDIT.md.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from domain.model.errors import LogTamperedError

logger = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Breach:
    """The first position where the log no longer matches its audit chain, and why."""

    position: int
    detail: str

    def error(self) -> LogTamperedError:
        """The error every command is refused with, saying what to do."""
        return LogTamperedError(
            f"The event log failed its audit chain at position {self.position}: {self.detail}."
            " Commands are refused so that nothing is issued from a forged history; reads and"
            " the audit routes stay available. Restore the deployment from a backup taken"
            " before the break (`pca restore`), check it with `pca audit verify`, and restart.",
            position=self.position,
        )


class LogVerifier(Protocol):
    """Recomputes the audit chain over what it has not verified yet."""

    def verify_new(self) -> Breach | None:
        """The first break among the events not verified before, or None."""
        ...


class Integrity:
    """Whether the log is still trusted; thread-safe, one per service."""

    def __init__(self) -> None:
        self._verifier: LogVerifier | None = None
        self._breach: Breach | None = None
        self._lock = threading.Lock()

    def watch(self, verifier: LogVerifier) -> None:
        """Verify the log with ``verifier`` from now on (before that, commands are not
        checked: a service opened without the composition root, as tests and restores do)."""
        with self._lock:
            self._verifier = verifier

    def refresh(self) -> Breach | None:
        """Verify what was appended since the last call; the break, once one was found."""
        with self._lock:
            if self._breach is None and self._verifier is not None:
                self._breach = self._verifier.verify_new()
                if self._breach is not None:
                    logger.critical(
                        "audit chain broken at position %d; refusing every command: %s",
                        self._breach.position,
                        self._breach.detail,
                    )
            return self._breach

    def check(self) -> None:
        """Raise LogTamperedError if the log is (or has been found) broken."""
        breach = self.refresh()
        if breach is not None:
            raise breach.error()


class Guarded(Protocol):
    integrity: Integrity


S = TypeVar("S", bound=Guarded)


def command(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Mark ``method`` as a command: refused before any work once the log is broken, so
    no key is generated or stored for a command that cannot be recorded."""

    def guarded(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        self.integrity.check()
        return method(self, *args, **kwargs)

    functools.update_wrapper(guarded, method)  # its docstring stays the command's
    return guarded
