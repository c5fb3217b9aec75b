"""What every answer carries, whichever path made it: security headers and a request id."""

from __future__ import annotations

import re
import uuid

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id(given: str) -> str:
    """The caller's X-Request-Id if it is a plain token of at most 128 characters, else a
    fresh one (so a log line can never be forged through it)."""
    return given if _REQUEST_ID.fullmatch(given) else str(uuid.uuid4())
