"""What pages that read the lists share."""

from __future__ import annotations

from werkzeug.exceptions import ServiceUnavailable

from api.deployment import Deployment, services


def fresh() -> Deployment:
    """The deployment, once its read models include every write acknowledged before this
    request (the API's guarantee, :mod:`api.http.consistency`); 503 after the bound."""
    found = services()
    if not found.caught_up():
        raise ServiceUnavailable("The lists have not caught up with the log yet; reload shortly.")
    return found
