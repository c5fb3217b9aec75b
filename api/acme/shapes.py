"""The JSON documents of RFC 8555 §7.1: accounts, orders, authorizations, challenges."""

from __future__ import annotations

import datetime as dt
from typing import Any
from uuid import UUID

from domain.model.acme import ACME_ERROR, AcmeAccount, AcmeOrder, Status


def when(moment: dt.datetime) -> str:
    """RFC 3339, as ACME writes times."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Urls:
    """The URLs of one directory's resources, from its base URL."""

    def __init__(self, base: str) -> None:
        self.base = base

    def directory(self) -> str:
        return f"{self.base}/directory"

    def account(self, account: UUID) -> str:
        return f"{self.base}/acct/{account}"

    def order(self, order: UUID) -> str:
        return f"{self.base}/order/{order}"

    def authz(self, order: UUID, index: int) -> str:
        return f"{self.base}/authz/{order}/{index}"

    def challenge(self, order: UUID, index: int, kind: str) -> str:
        return f"{self.base}/chall/{order}/{index}/{kind}"

    def certificate(self, certificate: UUID) -> str:
        return f"{self.base}/cert/{certificate}"


def account_shape(account: AcmeAccount, urls: Urls) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "status": account.status.value,
        "contact": account.contact,
        "orders": f"{urls.account(account.id)}/orders",
    }
    if account.eab_kid is not None:
        shape["externalAccountBinding"] = {"kid": account.eab_kid}
    return shape


def order_shape(order: AcmeOrder, urls: Urls, now: dt.datetime) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "status": order.status(now).value,
        "expires": when(order.expires),
        "identifiers": [{"type": "dns", "value": name} for name in order.identifiers],
        "authorizations": [urls.authz(order.id, i) for i in range(len(order.identifiers))],
        "finalize": f"{urls.order(order.id)}/finalize",
    }
    if order.certificate_id is not None:
        shape["certificate"] = urls.certificate(order.certificate_id)
    if order.failure is not None:
        shape["error"] = _problem(order.failure[2])
    if order.replaces is not None:
        shape["replaces"] = order.replaces
    return shape


def authz_shape(order: AcmeOrder, index: int, urls: Urls) -> dict[str, Any]:
    name = order.identifiers[index]
    shape: dict[str, Any] = {
        "identifier": {"type": "dns", "value": name.removeprefix("*.")},
        "status": order.authz_status[index].value,
        "expires": when(order.expires),
        "challenges": [
            challenge_shape(order, index, kind, urls) for kind in order.challenges(index)
        ],
    }
    if name.startswith("*."):
        shape["wildcard"] = True
    return shape


def challenge_shape(order: AcmeOrder, index: int, kind: str, urls: Urls) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "type": kind,
        "url": urls.challenge(order.id, index, kind),
        "token": order.tokens[index],
        "status": Status.PENDING.value,
    }
    validated = order.validated[index]
    if validated is not None and validated[0] == kind:
        shape.update(status=Status.VALID.value, validated=when(validated[1]))
    failure = order.failure
    if failure is not None and failure[:2] == (index, kind):
        shape.update(status=Status.INVALID.value, error=_problem(failure[2]))
    return shape


def _problem(detail: str) -> dict[str, Any]:
    return {"type": ACME_ERROR + "incorrectResponse", "detail": detail, "status": 403}
