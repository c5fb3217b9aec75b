"""Bearer-token authentication and role checks; a refused token meets the brake of
:mod:`api.brake` and, when the brake cannot even hold its answer, a 429 problem."""

from __future__ import annotations

from typing import NoReturn

from flask import request

from api.brake import refuse_token
from api.deployment import services
from api.http.errors import ForbiddenError, UnauthenticatedError
from api.http.ratelimit import TooManyRequestsError
from domain.model.tokens import ApiToken, Role


def require_role(required: Role) -> ApiToken:
    """The caller's token record if it allows ``required``; 401 or 403 otherwise."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise UnauthenticatedError(
            "Send a token as 'Authorization: Bearer <token>' (create one with 'pca tokens create')."
        )
    principal = services().service.authenticate(token)
    if principal is None:
        _refuse(token)
    if not principal.role.allows(required):
        raise ForbiddenError(
            f"This needs the {required.value} role; your token {principal.name!r} is "
            f"{principal.role.value}."
        )
    return principal


def _refuse(token: str) -> NoReturn:
    wait = refuse_token(token, request.remote_addr, "api")
    if wait is not None:
        raise TooManyRequestsError(
            "Too many requests with unknown or revoked tokens came from your address; "
            "retry with a valid token (ask an admin for one).",
            wait,
        )
    raise UnauthenticatedError("The token is unknown or revoked; ask an admin for a new one.")
