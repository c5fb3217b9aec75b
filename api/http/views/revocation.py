"""Public revocation status: CRLs at the URL written into every certificate, and OCSP."""

from __future__ import annotations

import base64
import binascii
from email.utils import format_datetime
from urllib.parse import unquote
from uuid import UUID

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue

from api.deployment import services
from api.http import bodies
from api.http.errors import NotReadyError
from api.http.routing import Routes
from domain.model.errors import CANotEnabledError
from domain.model.publication import issuer_scope
from domain.pki.der import pem
from projections.revocation.crlstore import BASE, DELTA, StoredCRL

blueprint = Blueprint("revocation", __name__)
routes = Routes(blueprint, "Revocation")
CRL_TYPES = ("application/pkix-crl", "application/x-pem-file")
OCSP_RESPONSE = "application/ocsp-response"
# Clients revalidate every time (a 304 is cheap), so a revocation is visible at once.
CRL_CACHE = "public, no-cache"


def _served(ca_id: UUID, kind: str, generation: int = 1) -> StoredCRL:
    """The CRL being served; 404 for an unknown CA, 409 for one that was never enabled
    (it has no CRL and never will until enabled), 503 while the first one is on its way.
    A CA gets its certificate when first enabled, and keeps serving its last CRL after
    being disabled or revoked."""
    found = services()
    ca = found.service.get_ca(ca_id)
    if ca.certificate_der is None:
        raise CANotEnabledError(
            f"CA {ca_id} has never been enabled, so it publishes no CRL; "
            "its CRLs appear once it is enabled."
        )
    ca.key_generation(generation)  # 404 for a key the CA never had
    crl = found.crls.get(issuer_scope(ca_id, generation), kind)
    if crl is None:
        raise NotReadyError(f"No CRL has been published for CA {ca_id} yet; retry shortly.")
    return crl


def _crl_response(crl: StoredCRL, body: bytes, mimetype: str) -> ResponseReturnValue:
    response = Response(body, mimetype=mimetype)
    response.set_etag(f"{crl.sha256}-{mimetype.rsplit('/', 1)[-1]}")
    response.headers["Last-Modified"] = format_datetime(crl.this_update, usegmt=True)
    response.headers["Cache-Control"] = CRL_CACHE
    response.headers["Expires"] = format_datetime(crl.next_update, usegmt=True)
    return response.make_conditional(request)


@routes.route(
    "GET",
    "/crl/<uuid:ca_id>.crl",
    summary="The CA's base CRL (DER), the CDP URL",
    role=None,
    response=CRL_TYPES[:1],
)
def crl_der(ca_id: UUID) -> ResponseReturnValue:
    crl = _served(ca_id, BASE)
    return _crl_response(crl, crl.der, CRL_TYPES[0])


@routes.route(
    "GET",
    "/crl/<uuid:ca_id>-delta.crl",
    role=None,
    response=CRL_TYPES[:1],
    summary="The CA's delta CRL (DER), the freshestCRL URL",
)
def delta_crl_der(ca_id: UUID) -> ResponseReturnValue:
    crl = _served(ca_id, DELTA)
    return _crl_response(crl, crl.der, CRL_TYPES[0])


@routes.route(
    "GET",
    "/crl/<uuid:ca_id>-g<int:generation>.crl",
    summary="The base CRL (DER) of a CA key after a rollover, the CDP URL of what it signs",
    role=None,
    path={"generation": bodies.GENERATION},
    response=CRL_TYPES[:1],
)
def generation_crl_der(ca_id: UUID, generation: int) -> ResponseReturnValue:
    crl = _served(ca_id, BASE, generation)
    return _crl_response(crl, crl.der, CRL_TYPES[0])


@routes.route(
    "GET",
    "/crl/<uuid:ca_id>-g<int:generation>-delta.crl",
    summary="The delta CRL (DER) of a CA key after a rollover",
    role=None,
    path={"generation": bodies.GENERATION},
    response=CRL_TYPES[:1],
)
def generation_delta_crl_der(ca_id: UUID, generation: int) -> ResponseReturnValue:
    crl = _served(ca_id, DELTA, generation)
    return _crl_response(crl, crl.der, CRL_TYPES[0])


@routes.route(
    "GET",
    "/crl/<uuid:ca_id>.pem",
    summary="The CA's base CRL (PEM)",
    role=None,
    response=CRL_TYPES[1:],
)
def crl_pem(ca_id: UUID) -> ResponseReturnValue:
    crl = _served(ca_id, BASE)
    body = pem(crl.der, "X509 CRL").encode("ascii")
    return _crl_response(crl, body, CRL_TYPES[1])


def ocsp_headers() -> dict[str, str]:
    """Headers of an OCSP answer beside those every answer carries: never cached, since
    the client asked now (the response says itself how long it is good for)."""
    return {"Content-Type": OCSP_RESPONSE, "Cache-Control": "no-store"}


def request_in_path(encoded: str) -> bytes:
    """The DER request of a GET (RFC 6960 appendix A.1: base64, maybe URL-encoded once
    more); empty, so answered as malformedRequest, when it is not base64."""
    try:
        return base64.b64decode(unquote(encoded), validate=True)
    except (binascii.Error, ValueError):
        return b""


OCSP_POST_RULE = "/ocsp/<uuid:ca_id>"
OCSP_GET_RULE = "/ocsp/<uuid:ca_id>/<path:encoded>"


@routes.route(
    "POST",
    OCSP_POST_RULE,
    summary="OCSP (RFC 6960), request in the body",
    role=None,
    response=(OCSP_RESPONSE,),
)
def ocsp_post(ca_id: UUID) -> ResponseReturnValue:
    answer = services().ocsp.answer(ca_id, request.get_data(cache=False))
    return Response(answer, headers=ocsp_headers())


@routes.route(
    "GET",
    OCSP_GET_RULE,
    role=None,
    summary="OCSP (RFC 6960), base64 request in the path",
    response=(OCSP_RESPONSE,),
)
def ocsp_get(ca_id: UUID, encoded: str) -> ResponseReturnValue:
    answer = services().ocsp.answer(ca_id, request_in_path(encoded))
    return Response(answer, headers=ocsp_headers())
