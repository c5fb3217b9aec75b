"""Parsing query-string values into typed values, with errors that name the parameter."""

from __future__ import annotations

from flask import request

from domain.model.errors import ValidationError

MAX_IDEMPOTENCY_KEY = 255


def idempotency_key() -> str | None:
    """The request's ``Idempotency-Key`` header, checked, or None."""
    return checked_key(request.headers.get("Idempotency-Key"), "Idempotency-Key")


def checked_key(key: str | None, field: str = "idempotency_key") -> str | None:
    """``key`` if it is 1 to 255 printable ASCII characters; ValidationError otherwise."""
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isascii() or not key.isprintable():
        raise ValidationError(
            f"{field} must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters.",
            field=field,
        )
    return key
