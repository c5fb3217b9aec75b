"""Read-your-writes: a query may ask to see the read models at least at a log position.

Commands answer with ``X-Log-Position``; a client that sends it back as
``X-Wait-For-Position`` on a query gets an answer that includes its change, or a 503 with
``Retry-After`` if the read models did not get there within ``WAIT_SECONDS``.
"""

from __future__ import annotations

from flask import request

from api.deployment import services
from api.http.errors import NotReadyError
from domain.model.errors import ValidationError

HEADER = "X-Wait-For-Position"
WAIT_SECONDS = 5.0


def wait_for_requested_position() -> None:
    """Block (bounded) until the read models reach the position the client asked for."""
    raw = request.headers.get(HEADER)
    if raw is None:
        return
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ValidationError(f"{HEADER} must be a log position (a whole number).", field=HEADER)
    if not services().read_models.wait_for(int(raw), WAIT_SECONDS):
        raise NotReadyError(f"The lists have not reached position {raw} yet; retry in a moment.")
