"""Every refusal of the ACME face as an RFC 8555 §6.7 problem document.

AcmeError            its own type and status (badNonce, unauthorized, ...)
└── RateLimitedError rateLimited, 429, with Retry-After
CSRError             badCSR                                   (400)
QuotaError           rateLimited: the CA's quota is spent      (403)
CertificateStateError alreadyRevoked                          (400)
ValidationError      malformed                                (400)
NotFoundError        malformed                                (404)
other PCAError       serverInternal, with the domain's detail (503)
"""

from __future__ import annotations

from flask import Blueprint, Response, json

from domain.application.acme import RateLimitedError
from domain.model.acme import AcmeError
from domain.model.errors import (
    CertificateStateError,
    CSRError,
    NotFoundError,
    PCAError,
    QuotaError,
    ValidationError,
)

PROBLEM = "application/problem+json"
KINDS: tuple[tuple[type[PCAError], str, int], ...] = (
    (CSRError, "badCSR", 400),
    (QuotaError, "rateLimited", 403),
    (CertificateStateError, "alreadyRevoked", 400),
    (ValidationError, "malformed", 400),
    (NotFoundError, "malformed", 404),
)


def register_problems(blueprint: Blueprint) -> None:
    """Answer the blueprint's errors as ACME problems."""
    blueprint.register_error_handler(PCAError, problem_of)


def problem_of(error: PCAError) -> Response:
    if isinstance(error, AcmeError):
        response = problem(error.type_uri, error.detail, error.status)
        if isinstance(error, RateLimitedError):
            response.headers["Retry-After"] = str(error.retry_after)
        return response
    for kind, name, status in KINDS:
        if isinstance(error, kind):
            return problem(AcmeError(name, "").type_uri, error.detail, status)
    return problem(AcmeError("serverInternal", "").type_uri, error.detail, 503)


def problem(type_uri: str, detail: str, status: int) -> Response:
    body = json.dumps({"type": type_uri, "detail": detail, "status": status})
    return Response(body, status=status, mimetype=PROBLEM)
