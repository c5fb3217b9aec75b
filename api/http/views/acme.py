"""ACME administration for operators: /api/v1/acme (directories, EAB credentials, and
the accounts and orders of a directory). The ACME protocol itself is the api.acme face."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask.typing import ResponseReturnValue

from api.deployment import request_context, services
from api.http import bodies
from api.http.routing import Routes
from api.presenters import acme_account_summary, acme_directory_shape, acme_order_summary
from domain.model.policy import DEFAULT_PROFILE
from domain.model.tokens import Role

blueprint = Blueprint("acme_admin", __name__, url_prefix="/api/v1/acme")
routes = Routes(blueprint, "ACME")
NAME = {"name": bodies.ACME_DIRECTORY_NAME}


@routes.route(
    "POST",
    "/directories",
    summary="Open an ACME directory that issues from an intermediate CA",
    role=Role.ADMIN,
    body=bodies.CREATE_ACME_DIRECTORY,
    status=201,
    response=bodies.ACME_DIRECTORY,
)
def create_directory(body: dict[str, Any]) -> ResponseReturnValue:
    directory = services().acme.create_directory(
        request_context(),
        body["name"],
        body["ca_id"],
        body.get("profile", DEFAULT_PROFILE),
        eab_required=body.get("eab_required", True),
    )
    return acme_directory_shape(directory, services().settings.public_url), 201


@routes.route(
    "POST",
    "/directories/<name>/eab",
    summary="Mint a one-time external account binding (the HMAC key is shown once)",
    role=Role.ADMIN,
    status=201,
    response=bodies.EAB_CREDENTIAL,
    path=NAME,
)
def create_eab(name: str) -> ResponseReturnValue:
    kid, mac_key = services().acme.create_eab(request_context(), name)
    return {"directory": name, "kid": kid, "hmac_key": mac_key}, 201


@routes.route(
    "GET",
    "/directories/<name>/accounts",
    summary="The directory's ACME accounts, oldest first",
    role=Role.AUDITOR,
    response=bodies.ACME_ACCOUNTS,
    path=NAME,
)
def list_accounts(name: str) -> ResponseReturnValue:
    return {"items": [acme_account_summary(a) for a in services().acme.accounts(name)]}


@routes.route(
    "GET",
    "/directories/<name>/orders",
    summary="The directory's ACME orders, oldest first: account, names, certificate",
    role=Role.AUDITOR,
    response=bodies.ACME_ORDERS,
    path=NAME,
)
def list_orders(name: str) -> ResponseReturnValue:
    now = services().service.clock()
    return {"items": [acme_order_summary(o, now) for o in services().acme.orders(name)]}
