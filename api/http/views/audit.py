"""Audit: the event history, chain verification and signed checkpoints."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import Blueprint
from flask.typing import ResponseReturnValue

from api.deployment import services
from api.http import bodies
from api.http.params import parse_instant
from api.http.routing import Routes
from domain.audit.verify import AuditLog
from domain.model.errors import ValidationError
from domain.model.tokens import Role
from projections.audit.history import HistoryFilter, HistoryItem, jsonable, read_history

blueprint = Blueprint("audit", __name__, url_prefix="/api/v1")
routes = Routes(blueprint, "Audit")


@routes.route(
    "GET",
    "/events",
    summary="The event history in log order, paged by position",
    role=Role.AUDITOR,
    query=bodies.EVENT_QUERY,
    response=bodies.EVENT_PAGE,
)
def list_events(query: dict[str, Any]) -> ResponseReturnValue:
    page = read_history(
        services().service,
        query.get("after", 0),
        query.get("limit", bodies.DEFAULT_EVENT_LIMIT),
        _filter(query),
    )
    return {"items": [_shape(item) for item in page.items], "next_after": page.next_after}


@routes.route(
    "GET",
    "/audit/verify",
    role=Role.AUDITOR,
    response=bodies.AUDIT_REPORT,
    summary="Recompute the hash chain and check every signed checkpoint",
)
def verify() -> ResponseReturnValue:
    return AuditLog.of(services().service).verify().to_json()


@routes.route(
    "GET",
    "/audit/checkpoints",
    summary="Signed checkpoints, for export",
    role=Role.AUDITOR,
    response=bodies.CHECKPOINTS,
)
def checkpoints() -> ResponseReturnValue:
    audit = AuditLog.of(services().service)
    return {"public_key_pem": audit.public_key_pem(), "items": audit.export_checkpoints()}


@routes.route(
    "POST",
    "/audit/checkpoints",
    summary="Sign a checkpoint of the chain now",
    role=Role.ADMIN,
    status=201,
    response=bodies.AUDIT_REPORT,
)
def create_checkpoint() -> ResponseReturnValue:
    checkpoint = AuditLog.of(services().service).create_checkpoint(services().service.clock())
    return checkpoint.to_json(), 201


def _shape(item: HistoryItem) -> dict[str, Any]:
    return {
        "position": item.position,
        "recorded_at": jsonable(item.recorded_at),
        "type": item.type,
        "aggregate_id": str(item.aggregate_id),
        "aggregate_version": item.aggregate_version,
        "actor": item.actor,
        "request_id": item.request_id,
        "payload": item.payload,
        "chain_hash": item.chain_hash,
    }


def _filter(query: dict[str, Any]) -> HistoryFilter:
    types = tuple(name.strip() for name in query.get("type", "").split(",") if name.strip())
    return HistoryFilter(
        types=types,
        aggregate_id=_uuid(query.get("aggregate_id")),
        actor=query.get("actor"),
        since=parse_instant(query.get("from"), "from"),
        until=parse_instant(query.get("to"), "to"),
    )


def _uuid(raw: str | None) -> UUID | None:
    if raw is None:
        return None
    try:
        return UUID(raw)
    except ValueError:
        raise ValidationError("aggregate_id must be a UUID.", field="aggregate_id") from None
