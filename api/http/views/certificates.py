"""End-entity certificates: issue, read, download, revoke, delete."""

from __future__ import annotations

import functools
from typing import Any
from uuid import UUID

from flask import Blueprint, Response, g, request
from flask.typing import ResponseReturnValue

from api.deployment import request_context, services
from api.http import bodies
from api.http.errors import item_problem
from api.http.params import checked_key, idempotency_key
from api.http.ratelimit import limit_issuance
from api.http.routing import Routes
from api.inputs import certificate_query, parse_instant, subject_from
from api.presenters import certificate_shape, certificate_summary, content_disposition
from domain.application.commands import (
    DEFAULT_REVOCATION_REASON,
    CertificateRequest,
    certificate_request,
)
from domain.application.service import IssuedCertificate, Outcome
from domain.model.certificate import Certificate
from domain.model.errors import PCAError
from domain.model.tokens import Role
from domain.model.values import (
    RevocationReason,
)
from domain.pki.der import pem
from domain.pki.formats import (
    DownloadOptions,
    parse_format,
)
from projections.readmodels.queries import DEFAULT_PAGE_SIZE

issuing = Blueprint("issuing", __name__, url_prefix="/api/v1/cas")
certificates = Blueprint("certificates", __name__, url_prefix="/api/v1/certificates")
issuing_routes = Routes(issuing, "Certificates")
routes = Routes(certificates, "Certificates")
DOWNLOAD_MEDIA_TYPES = (
    "application/x-pem-file",
    "application/pkix-cert",
    "application/x-pkcs7-certificates",
    "application/x-pkcs12",
    "application/x-java-keystore",
    "application/zip",
)


def _shape(
    certificate: Certificate, position: int | None = None, status: int = 200
) -> ResponseReturnValue:
    service = services().service
    shape = certificate_shape(certificate, service.clock())
    shape["chain_pem"] = _chain_pem(
        service.chain_der(certificate.ca_id, certificate.certificate_der)
    )
    headers = {"X-Log-Position": str(position)} if position is not None else {}
    return shape, status, headers


@functools.lru_cache(maxsize=64)
def _chain_pem(chain: tuple[bytes, ...]) -> str:
    """A CA chain's PEM; chains never change, and every issuance answer carries one."""
    return "".join(pem(der) for der in chain)


def _certificate_request(
    body: dict[str, Any], idempotency_key: str | None = None
) -> CertificateRequest:
    extras = body.get("subject", {})
    return certificate_request(
        body["type"],
        subject_from({**extras, "common_name": body["common_name"]}),
        body.get("validity_days"),
        not_after=parse_instant(body.get("not_after"), "not_after"),
        sans=[(san["type"], san["value"]) for san in body.get("sans", [])],
        key_algorithm=body.get("key_algorithm"),
        csr_pem=body.get("csr"),
        name=body.get("name"),
        include_crl=body.get("include_crl"),
        idempotency_key=idempotency_key,
        profile=body.get("profile"),
    )


@issuing_routes.route(
    "POST",
    "/<uuid:ca_id>/certificates",
    role=Role.OPERATOR,
    status=201,
    summary="Request a server or client certificate from an intermediate",
    body=bodies.ISSUE,
    response=bodies.CERTIFICATE,
)
def issue_certificate(ca_id: UUID, body: dict[str, Any]) -> ResponseReturnValue:
    limit_issuance(g.principal)
    issued = services().service.issue_certificate(
        request_context(), ca_id, _certificate_request(body, idempotency_key())
    )
    return _shape(issued.certificate, issued.position, 201)


@issuing.before_request
def _allow_large_batches() -> None:
    if request.endpoint == "issuing.issue_certificates_batch":
        request.max_content_length = bodies.MAX_BATCH_BYTES


@issuing_routes.route(
    "POST",
    "/<uuid:ca_id>/certificates:batch",
    role=Role.OPERATOR,
    summary="Request up to 1000 certificates at once, each succeeding or failing alone",
    body=bodies.ISSUE_BATCH,
    response=bodies.BATCH_ANSWER,
)
def issue_certificates_batch(ca_id: UUID, body: dict[str, Any]) -> ResponseReturnValue:
    """Items are checked one by one: a bad item gets its own problem in ``results`` and
    consumes no quota; the others are issued. Quota runs out item by item, in order."""
    limit_issuance(g.principal, len(body["items"]))
    service = services().service
    parsed = [_batch_item(raw, index) for index, raw in enumerate(body["items"])]
    requests = [item for item in parsed if isinstance(item, CertificateRequest)]
    issued = iter(service.issue_certificates(request_context(), ca_id, requests))
    outcomes = [next(issued) if isinstance(item, CertificateRequest) else item for item in parsed]
    results = [_batch_result(index, outcome) for index, outcome in enumerate(outcomes)]
    done = [outcome for outcome in outcomes if isinstance(outcome, IssuedCertificate)]
    position = max((outcome.position for outcome in done), default=0)
    # one group, one key: the chain of the key that signed them (after a rollover, not
    # necessarily the CA's newest)
    chain = done[0].chain_der if done else service.chain_der(ca_id)
    answer = {
        "succeeded": len(done),
        "failed": len(outcomes) - len(done),
        "chain_pem": _chain_pem(chain),
        "results": results,
    }
    return answer, 200, {"X-Log-Position": str(position)} if done else {}


def _batch_item(raw: object, index: int) -> CertificateRequest | PCAError:
    try:
        item = bodies.BATCH_ITEM.parse_item(raw, f"items[{index}]")
        return _certificate_request(item, checked_key(item.get("idempotency_key")))
    except PCAError as error:
        return error


def _batch_result(index: int, outcome: IssuedCertificate | PCAError) -> dict[str, object]:
    if isinstance(outcome, PCAError):
        problem = item_problem(outcome)
        if int(str(problem["status"])) >= 500:
            raise outcome
        prefix = f"items[{index}]"
        field = str(problem.get("field", ""))
        if field and not field.startswith(prefix):  # the issuance errors name the item's field
            problem["field"] = f"{prefix}.{field}"
        return {"index": index, "status": problem["status"], "problem": problem}
    now = services().service.clock()
    return {
        "index": index,
        "status": 201,
        "certificate": certificate_shape(outcome.certificate, now),
    }


@routes.route(
    "GET",
    "/<uuid:certificate_id>",
    summary="One certificate",
    role=Role.AUDITOR,
    response=bodies.CERTIFICATE,
)
def get_certificate(certificate_id: UUID) -> ResponseReturnValue:
    return _shape(services().service.listed_certificate(certificate_id))


@routes.route(
    "POST",
    "/<uuid:certificate_id>/revoke",
    summary="Revoke now (final)",
    role=Role.OPERATOR,
    body=bodies.REVOKE,
    response=bodies.CERTIFICATE,
)
def revoke_certificate(certificate_id: UUID, body: dict[str, Any]) -> ResponseReturnValue:
    reason = RevocationReason(body.get("reason", DEFAULT_REVOCATION_REASON.value))
    outcome: Outcome = services().service.revoke_certificate(
        request_context(), certificate_id, reason
    )
    return _shape(services().service.get_certificate(certificate_id), outcome.position)


@routes.route(
    "DELETE",
    "/<uuid:certificate_id>",
    status=204,
    role=Role.OPERATOR,
    summary="Delete a revoked or expired certificate and destroy its key",
)
def delete_certificate(certificate_id: UUID) -> ResponseReturnValue:
    outcome = services().service.delete_certificate(request_context(), certificate_id)
    response = Response(status=204, headers={"X-Log-Position": str(outcome.position)})
    del response.headers["Content-Type"]  # no body, so no type (RFC 9110 section 8.3)
    return response


@routes.route(
    "POST",
    "/<uuid:certificate_id>/download",
    role=Role.OPERATOR,
    summary="Download in the format a server needs",
    body=bodies.DOWNLOAD,
    response=DOWNLOAD_MEDIA_TYPES,
)
def download_certificate(certificate_id: UUID, body: dict[str, Any]) -> ResponseReturnValue:
    """A format carrying the private key is an export: the service records it as a
    ``PrivateKeyExported`` event with the caller before the file is handed over."""
    export = services().service.export_certificate(
        request_context(),
        certificate_id,
        parse_format(body["format"]),
        DownloadOptions(body.get("password"), body.get("include_chain", True)),
    )
    headers = {
        "Content-Disposition": content_disposition(export.download),
        "Cache-Control": "no-store",
    }
    if export.position is not None:
        headers["X-Log-Position"] = str(export.position)
    return Response(export.download.body, mimetype=export.download.content_type, headers=headers)


@issuing_routes.route(
    "GET",
    "/<uuid:ca_id>/certificates",
    role=Role.AUDITOR,
    summary="The CA's certificates, newest first, filtered and paged",
    query=bodies.CERTIFICATE_QUERY,
    response=bodies.CERTIFICATE_PAGE,
    read_models=True,
)
def list_certificates(ca_id: UUID, query: dict[str, Any]) -> ResponseReturnValue:
    found = services()
    found.read_models.get_ca(ca_id, found.service.clock())  # 404 for an unknown CA
    page = found.read_models.list_certificates(
        certificate_query(ca_id, query),
        found.service.clock(),
        query.get("limit", DEFAULT_PAGE_SIZE),
        query.get("cursor"),
    )
    return {
        "items": [certificate_summary(view) for view in page.items],
        "next_cursor": page.next_cursor,
    }
