"""Audit: the event history, chain verification and signed checkpoints."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from api.deployment import services
from api.http import bodies
from api.http.routing import Routes
from api.inputs import history_filter
from domain.audit.verify import AuditLog
from domain.model.tokens import Role
from projections.audit.history import HistoryFilter, HistoryItem, jsonable, read_history
from projections.readmodels.queries import (
    DEFAULT_PAGE_SIZE,
    decode_cursor,
    encode_cursor,
)

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
        _after(query),
        query.get("limit", DEFAULT_PAGE_SIZE),
        _filter(query),
    )
    return {
        "items": [_shape(item) for item in page.items],
        "next_cursor": None if page.next_after is None else encode_cursor(page.next_after),
        "next_after": page.next_after,
    }


def _after(query: dict[str, Any]) -> int:
    """The position to continue after: from ``cursor`` as every list pages, else from
    ``after`` for an auditor who knows the position (a cursor, when given, wins)."""
    cursor = query.get("cursor")
    if cursor is None:
        after: int = query.get("after", 0)
        return after
    return decode_cursor(cursor)


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
    summary="Signed checkpoints, for export, oldest first, paged",
    role=Role.AUDITOR,
    query=bodies.CHECKPOINT_QUERY,
    response=bodies.CHECKPOINTS,
)
def checkpoints(query: dict[str, Any]) -> ResponseReturnValue:
    limit: int = query.get("limit", DEFAULT_PAGE_SIZE)
    after = 0 if query.get("cursor") is None else decode_cursor(query["cursor"])
    audit = AuditLog.of(services().service)
    items = [item for item in audit.export_checkpoints() if item["position"] > after]
    more = len(items) > limit
    return {
        "public_key_pem": audit.public_key_pem(),
        "items": items[:limit],
        "next_cursor": encode_cursor(items[limit - 1]["position"]) if more else None,
    }


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
    return history_filter(
        query.get("type", ""),
        query.get("aggregate_id"),
        query.get("actor"),
        query.get("from"),
        query.get("to"),
    )
