"""Fresh reads: a query answered from the read models sees every write acknowledged before it.

By default such a query first waits (at most ``api.deployment.FRESHNESS_WAIT_SECONDS``)
until the read models include the log's head as it was when the query arrived, so a client
sees its own writes and everyone else's, whichever worker or process answered them; past
the bound it is answered 503 with ``Retry-After``. Two request headers adjust this:

- ``X-Wait-For-Position: N`` (a command's ``X-Log-Position``) also waits for position N;
- ``Prefer: consistency=eventual`` (RFC 7240) skips the head, for a client that prefers
  speed to freshness; ``Preference-Applied`` then says so. ``consistency=strong`` is the
  default, named explicitly.

:mod:`api.http.routing` applies this to every operation declared with ``read_models=True``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from flask import Response, after_this_request, request

from api.deployment import services
from api.http.errors import NotReadyError
from domain.model.errors import ValidationError

HEADER = "X-Wait-For-Position"
PREFER = "Prefer"
PREFERENCE = "consistency"
PREFERENCE_APPLIED = "Preference-Applied"


class Consistency(enum.Enum):
    """What a query may see: every acknowledged write, or what the read models hold now."""

    STRONG = "strong"
    EVENTUAL = "eventual"


def answer_fresh() -> None:
    """Block (bounded) until the read models are as fresh as the request asks; 503 if not."""
    asked = _requested_position()
    preferred = preferred_consistency()
    if preferred is not None:
        after_this_request(_applied(preferred))
    include_head = preferred is not Consistency.EVENTUAL
    if not services().caught_up(asked, include_head=include_head):
        raise NotReadyError("The lists have not caught up with the log yet; retry in a moment.")


def preferred_consistency() -> Consistency | None:
    """The request's ``Prefer: consistency=...``, or None if it states none (or one this
    service does not know, which RFC 7240 says to ignore)."""
    for header in request.headers.getlist(PREFER):
        for preference in header.split(","):
            name, _, value = preference.split(";", 1)[0].partition("=")
            if name.strip().lower() == PREFERENCE:
                try:
                    return Consistency(value.strip().strip('"').lower())
                except ValueError:
                    return None
    return None


def _requested_position() -> int:
    raw = request.headers.get(HEADER)
    if raw is None:
        return 0
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ValidationError(f"{HEADER} must be a log position (a whole number).", field=HEADER)
    return int(raw)


def _applied(preferred: Consistency) -> Callable[[Response], Response]:
    def mark(response: Response) -> Response:
        response.headers[PREFERENCE_APPLIED] = f"{PREFERENCE}={preferred.value}"
        return response

    return mark


# How /openapi.json documents the above on every operation declared with read_models=True.
# X-Wait-For-Position is left out: generated clients and fuzzers would ask for positions
# the log never reaches and wait out the bound; the Prefer description names it.
OPENAPI_PARAMETERS: tuple[dict[str, object], ...] = (
    {
        "name": PREFER,
        "in": "header",
        "required": False,
        "description": (
            "RFC 7240. By default the answer includes every write acknowledged before this "
            "request, from any client, worker or process (a bounded wait, then 503 with "
            "Retry-After). `consistency=eventual` answers from the lists as they are, "
            "which may miss writes of the last moments: faster, never waits unless "
            "X-Wait-For-Position (a command's X-Log-Position) names a position to include."
        ),
        "schema": {"type": "string", "examples": ["consistency=eventual"]},
    },
)
OPENAPI_RESPONSE_HEADERS: dict[str, object] = {
    PREFERENCE_APPLIED: {
        "description": "RFC 7240: the consistency preference that was applied, if one was sent.",
        "schema": {"type": "string", "enum": [f"{PREFERENCE}={c.value}" for c in Consistency]},
    }
}
