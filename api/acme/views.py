"""The ACME resources of RFC 8555 §7: each view parses the JWS, makes one call on the
deployment's :class:`~domain.application.acme.Acme`, and shapes the answer.

Every answer carries a fresh ``Replay-Nonce`` and ``Link: <directory>;rel="index"``; every
refusal is an ``application/problem+json`` document with an ``urn:ietf:params:acme:error:*``
type (api.acme.problems).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from flask import Blueprint, Response, g, jsonify, request

from api.acme.problems import register_problems
from api.acme.shapes import (
    Urls,
    account_shape,
    authz_shape,
    challenge_shape,
    order_shape,
    when,
)
from api.deployment import services
from domain.application.acme_gate import AcmeCall
from domain.model.acme import AcmeError
from domain.pki.der import pem
from domain.pki.jws import SignedRequest

JOSE = "application/jose+json"
blueprint = Blueprint("acme", __name__, url_prefix="/acme/<directory>")
register_problems(blueprint)


def _urls(directory: str) -> Urls:
    return Urls(f"{request.host_url.rstrip('/')}/acme/{directory}")


def _call(directory: str) -> AcmeCall:
    """The request as an AcmeCall; JOSE content type required (RFC 8555 §6.2)."""
    if request.mimetype != JOSE:
        raise AcmeError("malformed", f"Send the JWS as {JOSE}.", 415)
    signed = SignedRequest.parse(request.get_data())
    return AcmeCall(directory, _urls(directory).base, request.base_url, g.request_id, signed)


def _json(document: dict[str, Any], status: int = 200, location: str | None = None) -> Response:
    response = jsonify(document)
    response.status_code = status
    if location is not None:
        response.headers["Location"] = location
    return response


@blueprint.after_request
def _decorate(response: Response) -> Response:
    """A fresh nonce and the index link on every answer (RFC 8555 §6.5, §7.1)."""
    directory = str((request.view_args or {}).get("directory", ""))
    response.headers["Replay-Nonce"] = services().acme.new_nonce()
    response.headers.add("Link", f'<{_urls(directory).directory()}>;rel="index"')
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.get("/directory")
def directory(directory: str) -> Response:
    found = services().acme.directory(directory)
    urls = _urls(directory)
    return _json(
        {
            "newNonce": f"{urls.base}/new-nonce",
            "newAccount": f"{urls.base}/new-account",
            "newOrder": f"{urls.base}/new-order",
            "revokeCert": f"{urls.base}/revoke-cert",
            "keyChange": f"{urls.base}/key-change",
            "renewalInfo": f"{urls.base}/renewal-info",
            "meta": {
                "externalAccountRequired": found.eab_required,
                "profiles": {found.profile: f"issues from CA {found.ca_id}"},
            },
        }
    )


@blueprint.route("/new-nonce", methods=["HEAD", "GET"])
def new_nonce(directory: str) -> Response:
    services().acme.directory(directory)
    return Response(status=200 if request.method == "HEAD" else 204)


@blueprint.post("/new-account")
def new_account(directory: str) -> Response:
    account, created = services().acme.new_account(_call(directory))
    urls = _urls(directory)
    shape = account_shape(account, urls)
    return _json(shape, 201 if created else 200, urls.account(account.id))


@blueprint.post("/acct/<uuid:account>")
def account(directory: str, account: UUID) -> Response:
    found = services().acme.account(_call(directory), account)
    urls = _urls(directory)
    return _json(account_shape(found, urls), location=urls.account(found.id))


@blueprint.post("/acct/<uuid:account>/orders")
def account_orders(directory: str, account: UUID) -> Response:
    orders = services().acme.account_orders(_call(directory), account)
    urls = _urls(directory)
    return _json({"orders": [urls.order(order.id) for order in orders]})


@blueprint.post("/key-change")
def key_change(directory: str) -> Response:
    found = services().acme.change_key(_call(directory))
    urls = _urls(directory)
    return _json(account_shape(found, urls), location=urls.account(found.id))


@blueprint.post("/new-order")
def new_order(directory: str) -> Response:
    acme = services().acme
    order = acme.new_order(_call(directory))
    urls = _urls(directory)
    shape = order_shape(order, urls, services().service.clock())
    return _json(shape, 201, urls.order(order.id))


@blueprint.post("/order/<uuid:order>")
def order(directory: str, order: UUID) -> Response:
    found = services().acme.order(_call(directory), order)
    urls = _urls(directory)
    return _json(order_shape(found, urls, services().service.clock()), location=urls.order(order))


@blueprint.post("/order/<uuid:order>/finalize")
def finalize(directory: str, order: UUID) -> Response:
    found = services().acme.finalize(_call(directory), order)
    urls = _urls(directory)
    return _json(order_shape(found, urls, services().service.clock()), location=urls.order(order))


@blueprint.post("/authz/<uuid:order>/<int:index>")
def authorization(directory: str, order: UUID, index: int) -> Response:
    found = services().acme.authorization(_call(directory), order, index)
    return _json(authz_shape(found, index, _urls(directory)))


@blueprint.post("/chall/<uuid:order>/<int:index>/<kind>")
def challenge(directory: str, order: UUID, index: int, kind: str) -> Response:
    found = services().acme.challenge(_call(directory), order, index, kind)
    urls = _urls(directory)
    response = _json(challenge_shape(found, index, kind, urls))
    response.headers.add("Link", f'<{urls.authz(order, index)}>;rel="up"')
    return response


@blueprint.post("/cert/<uuid:certificate>")
def certificate(directory: str, certificate: UUID) -> Response:
    chain = services().acme.certificate(_call(directory), certificate)
    body = "".join(pem(der) for der in chain)
    return Response(body, mimetype="application/pem-certificate-chain")


@blueprint.post("/revoke-cert")
def revoke_certificate(directory: str) -> Response:
    services().acme.revoke(_call(directory))
    return Response(status=200)


@blueprint.get("/renewal-info/<cert_id>")
def renewal_info(directory: str, cert_id: str) -> Response:
    start, end = services().acme.renewal_info(directory, cert_id)
    response = _json({"suggestedWindow": {"start": when(start), "end": when(end)}})
    response.headers["Retry-After"] = "21600"
    return response
