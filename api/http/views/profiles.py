"""Certificate profiles of an intermediate: /api/v1/cas/{id}/profiles."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import Blueprint
from flask.typing import ResponseReturnValue

from api.deployment import request_context, services
from api.http import bodies
from api.http.routing import Routes
from api.presenters import profile_shape
from domain.application.service import Outcome
from domain.model.policy_form import policy_from
from domain.model.tokens import Role

blueprint = Blueprint("profiles", __name__, url_prefix="/api/v1/cas")
routes = Routes(blueprint, "Profiles")
_NAME = {"name": bodies.PROFILE_NAME_TEXT}


def _shown(ca_id: UUID, name: str, outcome: Outcome, status: int = 200) -> ResponseReturnValue:
    profile = services().service.get_ca(ca_id).profile_named(name)
    return profile_shape(profile), status, {"X-Log-Position": str(outcome.position)}


@routes.route(
    "GET",
    "/<uuid:ca_id>/profiles",
    summary="The intermediate's certificate profiles, the default first",
    role=Role.AUDITOR,
    response=bodies.PROFILE_LIST,
)
def list_profiles(ca_id: UUID) -> ResponseReturnValue:
    profiles = services().service.get_ca(ca_id).all_profiles()
    return {"items": [profile_shape(profile) for profile in profiles]}


@routes.route(
    "GET",
    "/<uuid:ca_id>/profiles/<name>",
    summary="One certificate profile with its whole policy",
    role=Role.AUDITOR,
    response=bodies.PROFILE,
    path=_NAME,
)
def get_profile(ca_id: UUID, name: str) -> ResponseReturnValue:
    return profile_shape(services().service.get_ca(ca_id).profile_named(name))


@routes.route(
    "POST",
    "/<uuid:ca_id>/profiles",
    summary="Create a certificate profile on an intermediate",
    role=Role.ADMIN,
    body=bodies.CREATE_PROFILE,
    status=201,
    response=bodies.PROFILE,
)
def create_profile(ca_id: UUID, body: dict[str, Any]) -> ResponseReturnValue:
    policy = policy_from(body.get("policy", {}))
    outcome = services().service.create_profile(request_context(), ca_id, body["name"], policy)
    return _shown(ca_id, body["name"], outcome, 201)


@routes.route(
    "PUT",
    "/<uuid:ca_id>/profiles/<name>",
    summary="Replace a profile's policy: its next version applies to later requests",
    role=Role.ADMIN,
    body=bodies.UPDATE_PROFILE,
    response=bodies.PROFILE,
    path=_NAME,
)
def update_profile(ca_id: UUID, name: str, body: dict[str, Any]) -> ResponseReturnValue:
    policy = policy_from(body["policy"])
    outcome = services().service.update_profile(request_context(), ca_id, name, policy)
    return _shown(ca_id, name, outcome)


@routes.route(
    "POST",
    "/<uuid:ca_id>/profiles/<name>/retire",
    summary="Stop issuing under a profile (final); its certificates stay valid",
    role=Role.ADMIN,
    response=bodies.PROFILE,
    path=_NAME,
)
def retire_profile(ca_id: UUID, name: str) -> ResponseReturnValue:
    outcome = services().service.retire_profile(request_context(), ca_id, name)
    return _shown(ca_id, name, outcome)
