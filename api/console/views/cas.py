"""The CA tree, one CA with its certificates, and the admin's CA and quota forms."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import redirect, request, url_for
from flask.typing import ResponseReturnValue

from api.console.forms import choice, subject, text, whole
from api.console.routing import form_page, page, page_url, render
from api.console.views.reading import fresh
from api.deployment import request_context, services
from api.inputs import certificate_query
from domain.application.commands import (
    CA_DEFAULTS,
    DEFAULT_CA_KEY_ALGORITHM,
    DEFAULT_INCLUDED_CERTIFICATES,
    ca_profile,
)
from domain.model.errors import ValidationError
from domain.model.tokens import Role
from domain.model.values import CAKind, CertificateType, KeyAlgorithm
from projections.readmodels.models import CAView, CertificateViewStatus

PAGE_SIZE = 25  # certificates per page of a CA's list: a screenful


def _tree() -> dict[str, Any]:
    """The roots, oldest first, each with its intermediates."""
    found = fresh()
    cas = found.read_models.list_cas(found.service.clock())
    roots = [ca for ca in cas if ca.kind is CAKind.ROOT]
    children: dict[UUID, list[CAView]] = {root.id: [] for root in roots}
    for ca in cas:
        if ca.parent_id is not None and ca.parent_id in children:
            children[ca.parent_id].append(ca)
    return {
        "tree": [(root, children[root.id]) for root in roots],
        "roots": [(str(root.id), root.subject.common_name) for root in roots],
        "algorithms": [algorithm.value for algorithm in KeyAlgorithm],
        "default_algorithm": DEFAULT_CA_KEY_ALGORITHM.value,
        "hints": {
            name: "Empty: "
            + ", ".join(f"{kind.value} {getattr(CA_DEFAULTS[kind], name)}" for kind in CAKind)
            + "."
            for name in ("validity_years", "service_days")
        },
    }


@page("/cas", role=Role.AUDITOR)
def cas() -> ResponseReturnValue:
    return render("cas.html", **_tree())


@page("/cas", role=Role.ADMIN, methods=("POST",))
def create_ca() -> ResponseReturnValue:
    form_page("cas.html", **_tree())
    kind = choice("kind", CAKind)
    profile = ca_profile(
        kind,
        subject(),
        choice("key_algorithm", KeyAlgorithm).value,
        whole("validity_years"),
        whole("service_days"),
    )
    service, ctx = services().service, request_context()
    if kind is CAKind.ROOT:
        outcome = service.create_root(ctx, profile, DEFAULT_INCLUDED_CERTIFICATES, None)
    else:
        parent = text("parent_id") or ""
        outcome = service.create_intermediate(ctx, _uuid(parent, "parent_id"), profile, None)
    return redirect(url_for("console.ca", ca_id=outcome.id), 303)


def _uuid(raw: str, field: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise ValidationError(f"{field}: choose the root CA to sign under.", field=field) from None


def _ca_page(ca_id: UUID) -> dict[str, Any]:
    found = fresh()
    now = found.service.clock()
    ca = found.read_models.get_ca(ca_id, now)
    query = {key: value for key, value in request.args.items() if value}
    listed = found.read_models.list_certificates(
        certificate_query(ca_id, query),
        now,
        PAGE_SIZE,
        query.get("cursor"),
    )
    parent = found.read_models.get_ca(ca.parent_id, now) if ca.parent_id else None
    filters = {key: value for key, value in query.items() if key != "cursor"}
    next_url = listed.next_cursor and page_url(
        "console.ca", filters, ca_id=ca_id, cursor=listed.next_cursor
    )
    return {
        "next_url": next_url,
        "first_url": page_url("console.ca", filters, ca_id=ca_id),
        "ca": ca,
        "parent": parent,
        "certificates": listed,
        "query": query,
        "statuses": [status.value for status in CertificateViewStatus],
        "types": [kind.value for kind in CertificateType],
    }


@page("/cas/<uuid:ca_id>", role=Role.AUDITOR)
def ca(ca_id: UUID) -> ResponseReturnValue:
    return render("ca.html", **_ca_page(ca_id))


def _back(ca_id: UUID) -> ResponseReturnValue:
    return redirect(url_for("console.ca", ca_id=ca_id), 303)


@page("/cas/<uuid:ca_id>/enable", role=Role.ADMIN, methods=("POST",))
def enable_ca(ca_id: UUID) -> ResponseReturnValue:
    form_page("ca.html", **_ca_page(ca_id))
    services().service.enable_ca(request_context(), ca_id)
    return _back(ca_id)


@page("/cas/<uuid:ca_id>/purchase", role=Role.ADMIN, methods=("POST",))
def purchase_quota(ca_id: UUID) -> ResponseReturnValue:
    form_page("ca.html", **_ca_page(ca_id))
    count = whole("count", required=True) or 0
    services().service.purchase_quota(request_context(), ca_id, count, None)
    return _back(ca_id)


@page("/cas/<uuid:ca_id>/assign", role=Role.ADMIN, methods=("POST",))
def assign_quota(ca_id: UUID) -> ResponseReturnValue:
    """Set the intermediate ``ca_id``'s remaining quota from its root's pool."""
    context = _ca_page(ca_id)
    form_page("ca.html", **context)
    remaining = whole("remaining", required=True) or 0
    root = context["parent"]
    root_id = root.id if isinstance(root, CAView) else ca_id  # a root: the service refuses
    services().service.assign_quota(request_context(), root_id, ca_id, remaining)
    return _back(ca_id)
