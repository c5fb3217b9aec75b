"""Public routes, no token: CA certificates at the URLs written into certificates, and the
service's own health and description."""

from __future__ import annotations

from uuid import UUID

from flask import Blueprint, Response, current_app
from flask.typing import ResponseReturnValue

from api.deployment import services
from api.http import bodies
from api.http.metrics import render
from api.http.openapi import document
from api.http.routing import Routes
from domain.model.errors import NotFoundError
from domain.model.tokens import Role
from domain.pki.der import pem
from projections.readmodels.models import CAView

blueprint = Blueprint("public", __name__)
routes = Routes(blueprint, "Public")
# Apart, so the dedicated OCSP responder (api.http.app.create_responder_app) serves it too.
health = Blueprint("health", __name__)
health_routes = Routes(health, "Public")
CA_CACHE = "public, max-age=3600"


def _ca_der(ca_id: UUID, generation: int = 1) -> bytes:
    """The certificate of the CA's key ``generation``: the plain URL serves the first key's,
    which is what the caIssuers of every certificate issued before a rollover names."""
    ca = services().service.get_ca(ca_id)
    if ca.certificate_der is None:
        raise NotFoundError(f"CA {ca_id} has no certificate yet; it is enabled first.")
    return ca.key_generation(generation).certificate_der


@routes.route(
    "GET",
    "/ca/<uuid:ca_id>.crt",
    summary="A CA certificate (DER), the AIA URL",
    role=None,
    response=("application/pkix-cert",),
)
def ca_certificate_der(ca_id: UUID) -> ResponseReturnValue:
    return Response(
        _ca_der(ca_id), mimetype="application/pkix-cert", headers={"Cache-Control": CA_CACHE}
    )


@routes.route(
    "GET",
    "/ca/<uuid:ca_id>-g<int:generation>.crt",
    summary="The certificate (DER) of a CA key after a rollover, the AIA URL of what it signs",
    role=None,
    path={"generation": bodies.GENERATION},
    response=("application/pkix-cert",),
)
def ca_generation_der(ca_id: UUID, generation: int) -> ResponseReturnValue:
    der = _ca_der(ca_id, generation)
    return Response(der, mimetype="application/pkix-cert", headers={"Cache-Control": CA_CACHE})


@routes.route(
    "GET",
    "/ca/<uuid:ca_id>.pem",
    summary="A CA certificate (PEM)",
    role=None,
    response=("application/x-pem-file",),
)
def ca_certificate_pem(ca_id: UUID) -> ResponseReturnValue:
    return Response(
        pem(_ca_der(ca_id)), mimetype="application/x-pem-file", headers={"Cache-Control": CA_CACHE}
    )


@health_routes.route(
    "GET",
    "/healthz",
    summary="Storage is reachable and the audit chain intact (503 once it is broken)",
    role=None,
    response=bodies.HEALTH,
)
def healthz() -> ResponseReturnValue:
    service = services().service
    service.integrity.check()  # a broken chain answers 503 "Log tampered", with advice
    position = service.recorder.max_notification_id() or 0
    storage = "postgresql" if services().settings.uses_postgres else "sqlite"
    return {"status": "ok", "storage": storage, "position": position}


@routes.route(
    "GET",
    "/openapi.json",
    summary="This API's OpenAPI 3.1 document",
    role=None,
    response=("application/json",),
)
def openapi() -> ResponseReturnValue:
    return document(current_app.extensions["pca.routes"])


@routes.route(
    "GET", "/metrics", summary="Prometheus metrics", role=Role.AUDITOR, response=("text/plain",)
)
def metrics() -> ResponseReturnValue:
    return render(current_app.extensions["pca.metrics"])


def store_figures() -> dict[str, tuple[str, float]]:
    """Figures every worker reads alike, from the event log and the read models."""
    found = services()
    breach = found.service.integrity.refresh()
    head = found.service.recorder.max_notification_id() or 0
    position = found.read_models.position()
    cas = found.read_models.list_cas(found.service.clock())
    return {
        "pca_event_log_position": ("Position of the newest event in the log", head),
        "pca_projection_lag_events": (
            "Events the read models have yet to process",
            head - position,
        ),
        "pca_audit_chain_intact": (
            "1 while the event log matches its audit chain, 0 once a break is found",
            1 if breach is None else 0,
        ),
        "pca_audit_chain_first_bad_position": (
            "First log position that fails the audit chain (0 while intact)",
            0 if breach is None else breach.position,
        ),
        "pca_certificates_issued": (
            "End-entity certificates ever issued",
            sum(_issued(ca) for ca in cas),
        ),
        "pca_certificates_revoked": (
            "End-entity certificates revoked",
            sum(ca.certificates.revoked for ca in cas),
        ),
    }


def _issued(ca: CAView) -> int:
    counts = ca.certificates
    return counts.issued + counts.revoked + counts.deleted
