"""Bearer-token authentication and role checks."""

from __future__ import annotations

import logging

from flask import request

from api.errors import ForbiddenError, UnauthenticatedError
from api.services import services
from domain.tokens import ApiToken, Role

logger = logging.getLogger(__name__)


def require_role(required: Role) -> ApiToken:
    """The caller's token record if it allows ``required``; 401 or 403 otherwise."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError(
            "Send a token as 'Authorization: Bearer <token>' (create one with 'pca tokens create')."
        )
    principal = services().service.authenticate(token.strip())
    if principal is None:
        # Never log the token itself; the client address is enough to investigate.
        logger.warning("rejected an unknown or revoked token from %s", request.remote_addr)
        raise UnauthenticatedError("The token is unknown or revoked; ask an admin for a new one.")
    if not principal.role.allows(required):
        raise ForbiddenError(
            f"This needs the {required.value} role; your token {principal.name!r} is "
            f"{principal.role.value}."
        )
    return principal
