"""CA lifecycle and quota: /api/v1/cas."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import Blueprint
from flask.typing import ResponseReturnValue

from api.deployment import request_context, services
from api.http import bodies
from api.http.params import idempotency_key
from api.http.routing import Routes
from api.inputs import subject_from
from api.presenters import ca_shape, ca_view_shape
from domain.application.commands import (
    DEFAULT_INCLUDED_CERTIFICATES,
    DEFAULT_REVOCATION_REASON,
    CAProfile,
    ca_name_constraints,
    ca_profile,
)
from domain.application.service import Outcome
from domain.model.constraints import NameConstraints
from domain.model.tokens import Role
from domain.model.values import CAKind, KeyStorage, RevocationReason
from domain.pki.der import pem
from projections.readmodels.models import CAView
from projections.readmodels.queries import DEFAULT_PAGE_SIZE

blueprint = Blueprint("cas", __name__, url_prefix="/api/v1/cas")
routes = Routes(blueprint, "CAs")


def _shown(ca_id: UUID, outcome: Outcome | None = None, status: int = 200) -> ResponseReturnValue:
    service = services().service
    headers = {"X-Log-Position": str(outcome.position)} if outcome else {}
    return ca_shape(service.get_ca(ca_id), service.clock()), status, headers


def _profile(body: dict[str, Any], kind: CAKind) -> CAProfile:
    return ca_profile(
        kind,
        subject_from(body["subject"]),
        body.get("key_algorithm"),
        body.get("validity_years"),
        body.get("service_days"),
    )


def _constraints(body: dict[str, Any], kind: CAKind) -> NameConstraints:
    given = body.get("name_constraints", {})
    return ca_name_constraints(
        kind,
        [(tree["type"], tree["value"]) for tree in given.get("permitted", [])],
        [(tree["type"], tree["value"]) for tree in given.get("excluded", [])],
    )


@routes.route(
    "POST",
    "",
    summary="Create a root or intermediate CA (pending)",
    role=Role.ADMIN,
    body=bodies.CREATE_CA,
    status=201,
    response=bodies.CA,
)
def create_ca(body: dict[str, Any]) -> ResponseReturnValue:
    service, ctx = services().service, request_context()
    if body["kind"] == "root":
        _constraints(body, CAKind.ROOT)  # a root takes none: refused, naming the field
        included = body.get("included_certificates", DEFAULT_INCLUDED_CERTIFICATES)
        profile = _profile(body, CAKind.ROOT)
        outcome = service.create_root(ctx, profile, included, idempotency_key())
    else:  # the body's schema requires parent_id for an intermediate
        outcome = service.create_intermediate(
            ctx,
            body["parent_id"],
            _profile(body, CAKind.INTERMEDIATE),
            idempotency_key(),
            _constraints(body, CAKind.INTERMEDIATE),
        )
    return _shown(outcome.id, outcome, 201)


@routes.route(
    "GET", "/<uuid:ca_id>", summary="One CA with its quota", role=Role.AUDITOR, response=bodies.CA
)
def get_ca(ca_id: UUID) -> ResponseReturnValue:
    return _shown(ca_id)


@routes.route(
    "POST",
    "/<uuid:ca_id>/enable",
    role=Role.ADMIN,
    response=bodies.CA,
    summary="Enable; the first time this makes the CA's key and certificate",
    body=bodies.ENABLE_CA,
)
def enable_ca(ca_id: UUID, body: dict[str, Any]) -> ResponseReturnValue:
    storage = KeyStorage(body.get("key_storage", KeyStorage.SOFTWARE.value))
    return _shown(ca_id, services().service.enable_ca(request_context(), ca_id, storage))


@routes.route(
    "POST",
    "/<uuid:ca_id>/disable",
    summary="Stop a CA from issuing",
    role=Role.ADMIN,
    response=bodies.CA,
)
def disable_ca(ca_id: UUID) -> ResponseReturnValue:
    return _shown(ca_id, services().service.disable_ca(request_context(), ca_id))


@routes.route(
    "POST",
    "/<uuid:ca_id>/renew",
    summary="Extend the service period",
    role=Role.ADMIN,
    body=bodies.RENEW_CA,
    response=bodies.CA,
)
def renew_ca(ca_id: UUID, body: dict[str, Any]) -> ResponseReturnValue:
    outcome = services().service.renew_ca(request_context(), ca_id, body["service_days"])
    return _shown(ca_id, outcome)


@routes.route(
    "POST",
    "/<uuid:ca_id>/rollover",
    summary="A new key and certificate under the same name; issuance moves to it at once",
    role=Role.ADMIN,
    response=bodies.CA,
)
def roll_over_ca_key(ca_id: UUID) -> ResponseReturnValue:
    return _shown(ca_id, services().service.roll_over_ca_key(request_context(), ca_id))


@routes.route(
    "POST",
    "/<uuid:ca_id>/keys/<int:generation>/retire",
    summary="Retire a previous key once its CA certificate has expired; destroys the key",
    role=Role.ADMIN,
    path={"generation": bodies.KEY_NUMBER},
    response=bodies.CA,
)
def retire_ca_key(ca_id: UUID, generation: int) -> ResponseReturnValue:
    outcome = services().service.retire_ca_key(request_context(), ca_id, generation)
    return _shown(ca_id, outcome)


@routes.route(
    "POST",
    "/<uuid:ca_id>/revoke",
    summary="Revoke an intermediate (final)",
    role=Role.ADMIN,
    body=bodies.REVOKE,
    response=bodies.CA,
)
def revoke_ca(ca_id: UUID, body: dict[str, Any]) -> ResponseReturnValue:
    reason = RevocationReason(body.get("reason", DEFAULT_REVOCATION_REASON.value))
    return _shown(ca_id, services().service.revoke_ca(request_context(), ca_id, reason))


@routes.route(
    "POST",
    "/<uuid:ca_id>/quota/purchases",
    summary="Add to a root's quota pool",
    role=Role.ADMIN,
    body=bodies.PURCHASE,
    status=201,
    response=bodies.CA,
)
def purchase_quota(ca_id: UUID, body: dict[str, Any]) -> ResponseReturnValue:
    outcome = services().service.purchase_quota(
        request_context(), ca_id, body["count"], idempotency_key()
    )
    return _shown(ca_id, outcome, 201)


@routes.route(
    "POST",
    "/<uuid:ca_id>/quota/assignments",
    role=Role.ADMIN,
    status=201,
    summary="Set an intermediate's remaining quota from its root's pool",
    body=bodies.ASSIGN,
    response=bodies.CA,
)
def assign_quota(ca_id: UUID, body: dict[str, Any]) -> ResponseReturnValue:
    intermediate_id = body["intermediate_id"]
    outcome = services().service.assign_quota(
        request_context(), ca_id, intermediate_id, body["remaining"]
    )
    return _shown(intermediate_id, outcome, 201)


@routes.route(
    "GET",
    "",
    summary="The CAs with status, quota and certificate counts, oldest first, paged",
    role=Role.AUDITOR,
    query=bodies.CA_QUERY,
    response=bodies.CA_LIST,
    read_models=True,
)
def list_cas(query: dict[str, Any]) -> ResponseReturnValue:
    found = services()
    page = found.read_models.page_cas(
        found.service.clock(),
        query.get("limit", DEFAULT_PAGE_SIZE),
        query.get("cursor"),
    )
    return {
        "items": [ca_view_shape(view, _certificate_pem(view)) for view in page.items],
        "next_cursor": page.next_cursor,
    }


def _certificate_pem(view: CAView) -> str | None:
    if view.not_before is None:
        return None
    return pem(services().service.chain_der(view.id)[0])
