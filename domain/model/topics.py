"""Stored topics of event classes that moved, so logs written before the move still load.

eventsourcing stores each event with its class's topic (``module:QualName``). The model
lived in ``domain.authority``, ``domain.certificate``, ... before it moved to
``domain.model``; those old module names are registered as aliases here, and queries that
filter the log by topic ask for every name an event type was ever stored under.
"""

from __future__ import annotations

from types import ModuleType

from eventsourcing.utils import get_topic, register_topic

from domain.model import authority, certificate, idempotency, publication, tokens

MOVED_MODULES: dict[str, ModuleType] = {
    "domain.authority": authority,
    "domain.certificate": certificate,
    "domain.commands": idempotency,
    "domain.publication": publication,
    "domain.tokens": tokens,
}
"""Old module name -> the module its event and aggregate classes live in now."""


def register_moved_modules() -> None:
    """Make every old topic resolve to today's class (safe to call more than once)."""
    for old_name, module in MOVED_MODULES.items():
        register_topic(old_name, module)


def stored_topics(event_type: type[object]) -> list[str]:
    """Every topic ``event_type`` may be stored under: today's and each older one."""
    topic = get_topic(event_type)
    module_name, _, qualname = topic.partition(":")
    return [topic] + [
        f"{old_name}:{qualname}"
        for old_name, module in MOVED_MODULES.items()
        if module.__name__ == module_name
    ]


register_moved_modules()
