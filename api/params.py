"""Parsing query-string values into typed values, with errors that name the parameter."""

from __future__ import annotations

import datetime as dt

from domain.errors import ValidationError


def parse_instant(raw: str | None, name: str) -> dt.datetime | None:
    """An ISO 8601 time (UTC when no offset is given), or None when absent."""
    if raw is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{name} must be an ISO 8601 time such as 2027-01-31T00:00:00Z.", field=name
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def parse_count(raw: str | None, name: str, default: int) -> int:
    """A whole number, or ``default`` when absent."""
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ValidationError(f"{name} must be a whole number.", field=name)
    return int(raw)
