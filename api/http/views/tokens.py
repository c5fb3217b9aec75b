"""API tokens: /api/v1/tokens (admins make and list them; the token is shown once)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from api.deployment import request_context, services
from api.http import bodies
from api.http.routing import Routes
from api.presenters import token_records, token_shape
from domain.model.tokens import ApiToken, Role
from domain.model.values import TokenScope

blueprint = Blueprint("tokens", __name__, url_prefix="/api/v1/tokens")
routes = Routes(blueprint, "Tokens")


@routes.route(
    "GET",
    "",
    summary="Every API token with its role, scope and status (never the token itself)",
    role=Role.ADMIN,
    response=bodies.TOKEN_LIST,
)
def list_tokens() -> ResponseReturnValue:
    service = services().service
    now = service.clock()
    return {"items": [token_shape(record, now) for record in token_records(service)]}


@routes.route(
    "POST",
    "",
    summary="Create a token, optionally limited to some CAs and profiles; shown once",
    role=Role.ADMIN,
    body=bodies.CREATE_TOKEN,
    status=201,
    response=bodies.CREATED_TOKEN,
)
def create_token(body: dict[str, Any]) -> ResponseReturnValue:
    service = services().service
    scope = TokenScope(tuple(body.get("ca_ids", ())), tuple(body.get("profiles", ())))
    token, outcome = service.create_token(
        request_context(), body["name"], Role(body["role"]), body.get("valid_days"), scope
    )
    record: object = service.repository.get(outcome.id)
    assert isinstance(record, ApiToken)
    shape = {"token": token, **token_shape(record, service.clock())}
    return shape, 201, {"X-Log-Position": str(outcome.position)}
