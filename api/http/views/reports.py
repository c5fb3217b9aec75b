"""Point-in-time state and compliance exports, computed from the event log alone."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response
from flask.typing import ResponseReturnValue

from api.deployment import services
from api.http import bodies
from api.http.routing import Routes
from api.inputs import report_stream
from domain.model.tokens import Role
from projections.audit.logcut import parse_at
from projections.audit.pointintime import render_json, state_at
from projections.audit.report_kinds import ReportKind

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


def _register_report(kind: ReportKind) -> None:
    """The report and manifest operations of ``kind``: one per kind, so each documents
    exactly the query parameters that kind takes."""
    slug = kind.value.replace("-", "_")
    query = bodies.REPORT_QUERIES[kind]

    @routes.route(
        "GET",
        f"/reports/{kind.value}",
        role=Role.AUDITOR,
        query=query,
        response=REPORT_TYPES,
        summary=f"The {kind.value} compliance export, streamed",
        name=f"report_{slug}",
    )
    def report(query: dict[str, Any]) -> ResponseReturnValue:
        stream = report_stream(services(), kind, query)
        headers = {
            "Content-Disposition": f'attachment; filename="{stream.filename}"',
            "X-Report-Position": str(stream.cut.position),
        }
        mimetype = stream.media_type.split(";")[0]
        return Response(iter(stream), mimetype=mimetype, headers=headers)

    @routes.route(
        "GET",
        f"/reports/{kind.value}/manifest",
        role=Role.AUDITOR,
        query=query,
        response=bodies.MANIFEST,
        summary=f"The signed manifest of the same {kind.value} export (pass at=X-Report-Position)",
        name=f"report_{slug}_manifest",
    )
    def report_manifest(query: dict[str, Any]) -> ResponseReturnValue:
        stream = report_stream(services(), kind, query)
        for _ in stream:
            pass  # the manifest is signed over the whole body
        manifest: dict[str, Any] = stream.manifest.to_json()
        return manifest


for _kind in ReportKind:
    _register_report(_kind)
