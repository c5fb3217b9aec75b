"""Point-in-time state and compliance exports, computed from the event log alone."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, stream_with_context
from flask.typing import ResponseReturnValue

from api.deployment import services
from api.http import bodies
from api.http.routing import Routes
from domain.model.tokens import Role
from projections.audit.logcut import parse_at
from projections.audit.pointintime import render_json, state_at
from projections.audit.reports import (
    ReportStream,
    open_report,
    parse_format,
    parse_kind,
    parse_parameters,
)

blueprint = Blueprint("reports", __name__, url_prefix="/api/v1")
routes = Routes(blueprint, "Audit")
REPORT_TYPES = ("text/csv", "application/json")


@routes.route(
    "GET",
    "/audit/state",
    role=Role.AUDITOR,
    query=bodies.STATE_QUERY,
    response=("application/json",),
    summary="Every CA, certificate and revoked list as they stood at a point",
)
def audit_state(query: dict[str, Any]) -> ResponseReturnValue:
    at = parse_at(query["at"]) if "at" in query else None
    state = state_at(services().settings, at)
    return Response(
        render_json(state),
        mimetype="application/json",
        headers={"X-Report-Position": str(state.position)},
    )


@routes.route(
    "GET",
    "/reports/<kind>",
    role=Role.AUDITOR,
    query=bodies.REPORT_QUERY,
    response=REPORT_TYPES,
    summary="A compliance export (inventory, issuance, revocations, expiring, "
    "quota-ledger, activity), streamed",
)
def report(kind: str, query: dict[str, Any]) -> ResponseReturnValue:
    stream = _open(kind, query)
    headers = {
        "Content-Disposition": f'attachment; filename="{stream.filename}"',
        "X-Report-Position": str(stream.cut.position),
    }
    return Response(
        stream_with_context(iter(stream)), mimetype=stream.media_type.split(";")[0], headers=headers
    )


@routes.route(
    "GET",
    "/reports/<kind>/manifest",
    role=Role.AUDITOR,
    query=bodies.REPORT_QUERY,
    response=bodies.MANIFEST,
    summary="The signed manifest of the same report (pass at=X-Report-Position)",
)
def report_manifest(kind: str, query: dict[str, Any]) -> ResponseReturnValue:
    stream = _open(kind, query)
    for _ in stream:
        pass  # the manifest is signed over the whole body
    manifest: dict[str, Any] = stream.manifest.to_json()
    return manifest


def _open(kind: str, query: dict[str, Any]) -> ReportStream:
    parameters = parse_parameters(
        at=query.get("at"),
        start=query.get("from"),
        end=query.get("to"),
        ca_id=query.get("ca_id"),
        days=query.get("days"),
    )
    return open_report(
        services().settings,
        parse_kind(kind),
        parse_format(query.get("format", "csv")),
        parameters,
        keystore=services().service.keystore,
    )
