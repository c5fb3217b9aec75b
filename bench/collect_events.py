"""What a save spends collecting its events: eventsourcing's ``ProcessingEvent`` against
``PrivateCA``'s :class:`~domain.application.service.CollectedEvents`, same run.

    python -m bench.collect_events [--objects 3] [--rounds 20000]

A group of one issuance saves three aggregates (the CA, the certificate, an idempotency
claim); the library asks two runtime-checkable Protocols about each of them.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

from eventsourcing.application import ProcessingEvent
from eventsourcing.domain import Aggregate

from domain.application.service import CollectedEvents


class _Thing(Aggregate):
    """An aggregate with nothing to it: the checks, not the events, are measured."""


def _per_call_us(collect: Callable[[], object], rounds: int) -> float:
    return min(timeit.repeat(collect, number=rounds, repeat=5)) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=20000)
    arguments = parser.parse_args()
    things = [_Thing() for _ in range(arguments.objects)]
    for name, kind in (("eventsourcing", ProcessingEvent), ("CollectedEvents", CollectedEvents)):
        cost = _per_call_us(lambda kind=kind: kind().collect_events(*things), arguments.rounds)
        print(f"{name:16} {arguments.objects} aggregates {cost:6.1f} us per save", flush=True)


if __name__ == "__main__":
    main()
