"""The certificate request form, one certificate's page, and its download, revocation and
deletion."""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

from flask import Response, redirect, request, url_for
from flask.typing import ResponseReturnValue

from api.console.forms import SANRow, checkbox, choice, san_rows, subject, text, whole
from api.console.routing import form_page, page, render
from api.console.views.reading import fresh
from api.deployment import request_context, services
from api.inputs import history_filter
from api.presenters import certificate_shape, content_disposition
from domain.application.commands import (
    DEFAULT_LEAF_KEY_ALGORITHM,
    DEFAULT_REVOCATION_REASON,
    CertificateRequest,
    certificate_request,
)
from domain.model.tokens import Role
from domain.model.validation import MAX_SANS
from domain.model.values import CertificateType, KeyAlgorithm, RevocationReason, SANType
from domain.pki.der import pem
from domain.pki.formats import MIN_PASSWORD_LENGTH, DownloadFormat, DownloadOptions, parse_format
from projections.audit.history import read_history

EVENTS_SHOWN = 100


def _request_page(ca_id: UUID, rows: tuple[SANRow, ...]) -> dict[str, Any]:
    found = fresh()
    return {
        "ca": found.read_models.get_ca(ca_id, found.service.clock()),
        "san_rows": rows,
        "max_sans": MAX_SANS,
        "types": [kind.value for kind in CertificateType],
        "san_types": [kind.value for kind in SANType],
        "algorithms": [algorithm.value for algorithm in KeyAlgorithm],
        "default_algorithm": DEFAULT_LEAF_KEY_ALGORITHM.value,
    }


def _from_form(rows: tuple[SANRow, ...]) -> CertificateRequest:
    csr = text("csr")
    return certificate_request(
        choice("type", CertificateType).value,
        subject(),
        whole("validity_days", required=True),
        sans=[(row.type, row.value) for row in rows if row.value],
        key_algorithm=None if csr else choice("key_algorithm", KeyAlgorithm).value,
        csr_pem=csr,
        name=text("name"),
        include_crl=checkbox("include_crl"),
    )


@page("/cas/<uuid:ca_id>/request", role=Role.OPERATOR, methods=("GET", "POST"))
def request_certificate(ca_id: UUID) -> ResponseReturnValue:
    """The request form; "Add a SAN row" sends it back with one more row (no script
    needed); sending it issues the certificate and shows it."""
    rows = san_rows(add="add_san" in request.form)
    context = _request_page(ca_id, rows)
    if request.method == "GET" or "add_san" in request.form:
        return render("request.html", **context)
    form_page("request.html", **context)
    issued = services().service.issue_certificate(request_context(), ca_id, _from_form(rows))
    return redirect(url_for("console.certificate", certificate_id=issued.certificate.id), 303)


def _certificate_page(certificate_id: UUID) -> dict[str, Any]:
    service = services().service
    certificate = service.listed_certificate(certificate_id)
    der = certificate.certificate_der
    history = read_history(
        service, 0, EVENTS_SHOWN, history_filter("", str(certificate_id), None, None, None)
    )
    return {
        "certificate": certificate,
        "shape": certificate_shape(certificate, service.clock()),
        "pem": pem(der),
        "chain_pem": "".join(pem(link) for link in service.chain_der(certificate.ca_id)),
        "sha256": hashlib.sha256(der).hexdigest().upper(),
        "sha1": hashlib.sha1(der, usedforsecurity=False).hexdigest().upper(),
        "events": history.items,
        "formats": [choice.value for choice in DownloadFormat],
        "min_password": MIN_PASSWORD_LENGTH,
        "reasons": [reason.value for reason in RevocationReason],
        "default_reason": DEFAULT_REVOCATION_REASON.value,
    }


@page("/certificates/<uuid:certificate_id>", role=Role.AUDITOR)
def certificate(certificate_id: UUID) -> ResponseReturnValue:
    return render("certificate.html", **_certificate_page(certificate_id))


@page("/certificates/<uuid:certificate_id>/download", role=Role.OPERATOR, methods=("POST",))
def download(certificate_id: UUID) -> ResponseReturnValue:
    """The file; a format with the private key is recorded as exported by the service."""
    form_page("certificate.html", **_certificate_page(certificate_id))
    export = services().service.export_certificate(
        request_context(),
        certificate_id,
        parse_format(request.form.get("format", "")),
        DownloadOptions(request.form.get("password") or None, checkbox("include_chain")),
    )
    headers = {"Content-Disposition": content_disposition(export.download)}
    return Response(export.download.body, mimetype=export.download.content_type, headers=headers)


@page("/certificates/<uuid:certificate_id>/revoke", role=Role.OPERATOR, methods=("POST",))
def revoke(certificate_id: UUID) -> ResponseReturnValue:
    form_page("certificate.html", **_certificate_page(certificate_id))
    reason = choice("reason", RevocationReason, DEFAULT_REVOCATION_REASON)
    services().service.revoke_certificate(request_context(), certificate_id, reason)
    return redirect(url_for("console.certificate", certificate_id=certificate_id), 303)


@page("/certificates/<uuid:certificate_id>/delete", role=Role.OPERATOR, methods=("POST",))
def delete(certificate_id: UUID) -> ResponseReturnValue:
    context = _certificate_page(certificate_id)
    form_page("certificate.html", **context)
    services().service.delete_certificate(request_context(), certificate_id)
    ca_id = context["certificate"].ca_id
    serial = context["certificate"].serial_number
    return redirect(url_for("console.ca", ca_id=ca_id, deleted=serial), 303)
