"""The audit reviewer's pages: the event history, chain verification, the state at a
point next to today's, and the compliance reports."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, request
from flask.typing import ResponseReturnValue

from api.console.routing import form_page, page, page_url, render
from api.deployment import services
from api.inputs import history_filter, report_stream
from domain.audit.verify import AuditLog
from domain.model.tokens import Role
from projections.audit.history import event_types, jsonable, read_history
from projections.audit.logcut import parse_at
from projections.audit.pointintime import state_at
from projections.audit.report_kinds import ReportKind
from projections.audit.reports import (
    PERIOD_KINDS,
)
from projections.readmodels.queries import DEFAULT_PAGE_SIZE


def _query() -> dict[str, str]:
    """The query string's filled fields (an empty field of a GET form means "any")."""
    return {key: value.strip() for key, value in request.args.items() if value.strip()}


@page("/events", role=Role.AUDITOR)
def events() -> ResponseReturnValue:
    query = _query()
    context: dict[str, Any] = {"types": sorted(event_types()), "query": query, "page": None}
    form_page("events.html", values=query, **context)
    after = query.get("after", "0")
    found = read_history(
        services().service,
        int(after) if after.isdigit() else 0,
        DEFAULT_PAGE_SIZE,
        history_filter(
            query.get("type", ""),
            query.get("aggregate_id"),
            query.get("actor"),
            query.get("from"),
            query.get("to"),
        ),
    )
    context["page"] = found
    context["jsonable"] = jsonable
    filters = {key: value for key, value in query.items() if key != "after"}
    context["next_url"] = found.next_after and page_url(
        "console.events", filters, after=found.next_after
    )
    return render("events.html", values=query, **context)


@page("/audit/verify", role=Role.AUDITOR)
def verify() -> ResponseReturnValue:
    report = AuditLog.of(services().service).verify()
    return render("verify.html", report=report)


@page("/audit/state", role=Role.AUDITOR)
def state() -> ResponseReturnValue:
    """The state at the position or time ``at`` beside the state now."""
    query = _query()
    form_page("state.html", values=query, then=None, now=None)
    settings = services().settings
    then = state_at(settings, parse_at(query["at"])) if "at" in query else None
    return render("state.html", values=query, then=then, now=state_at(settings))


@page("/reports", role=Role.AUDITOR)
def reports() -> ResponseReturnValue:
    return render("reports.html", kinds=list(ReportKind), period_kinds=PERIOD_KINDS)


@page(
    "/reports/<any(" + ",".join(f"'{kind}'" for kind in ReportKind) + "):kind>", role=Role.AUDITOR
)
def report(kind: str) -> ResponseReturnValue:
    """The report as a file; with ``manifest`` its signed manifest instead (JSON)."""
    query = _query()
    form_page("reports.html", values=query, kinds=list(ReportKind), period_kinds=PERIOD_KINDS)
    stream = report_stream(services(), ReportKind(kind), query)
    if "manifest" in query:
        for _ in stream:
            pass  # the manifest is signed over the whole body
        manifest = json.dumps(stream.manifest.to_json(), indent=2)
        disposition = f'attachment; filename="{stream.filename}.manifest.json"'
        return Response(
            manifest, mimetype="application/json", headers={"Content-Disposition": disposition}
        )
    headers = {
        "Content-Disposition": f'attachment; filename="{stream.filename}"',
        "X-Report-Position": str(stream.cut.position),
    }
    mimetype = stream.media_type.split(";")[0]
    return Response(iter(stream), mimetype=mimetype, headers=headers)
