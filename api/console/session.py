"""Console sign-in: an API token exchanged for a server-side session, and the checks every
console request passes (session, role, CSRF).

The cookie holds a random session id; the store (:mod:`domain.adapters.sessions`, shared
by every worker process) keeps only its hash, with the token's record id, name and role.
Each request reloads the token's record, so a revoked or expired token ends its sessions
at once (within the token cache's two seconds). A session also ends after
``IDLE_TIMEOUT`` without use and ``ABSOLUTE_TIMEOUT`` after sign-in, and on sign-out.

Every form carries the session's CSRF token; a POST without it, or whose ``Origin``
names another site, is refused before the view runs.
"""

from __future__ import annotations

import datetime as dt
import hmac
import math
import secrets

from flask import g, request
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response

from api.brake import refuse_token
from api.deployment import services
from domain.adapters.sessions import ConsoleSession
from domain.model.errors import ValidationError
from domain.model.tokens import ApiToken, Role

COOKIE = "pca_console"
COOKIE_PATH = "/console"
IDLE_TIMEOUT = dt.timedelta(minutes=30)
ABSOLUTE_TIMEOUT = dt.timedelta(hours=12)
TOUCH_EVERY = dt.timedelta(minutes=1)  # last_seen is written at most this often
CSRF_FIELD = "csrf_token"


class SignInRequiredError(Exception):
    """Raised when a console page is asked for without a live session."""


class ConsoleForbiddenError(Exception):
    """Raised when the signed-in role may not do what was asked, or a form is forged."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def sign_in(token: str) -> str:
    """The id (for the cookie) of a new session for ``token``; ValidationError (field
    ``token``) if the token is not accepted."""
    deployment = services()
    principal = deployment.service.authenticate(token.strip())
    if principal is None:
        wait = refuse_token(token, request.remote_addr, "console sign-in")
        if wait is not None:
            raise TooManyRequests(
                "Too many sign-ins with unknown or revoked tokens came from your address;"
                f" wait {math.ceil(wait)} s, then sign in with a current token.",
                retry_after=math.ceil(wait),
            )
        raise ValidationError(
            "This token is unknown, revoked or expired; paste a current API token "
            "(an admin makes one with 'pca tokens create').",
            field="token",
        )
    now = deployment.service.clock()
    session_id = secrets.token_urlsafe(32)
    record = ConsoleSession(
        principal.id, principal.name, principal.role.value, secrets.token_urlsafe(32), now, now
    )
    deployment.sessions.put(session_id, record)
    return session_id


def sign_out() -> None:
    """End the current request's session, if it has one."""
    session_id = request.cookies.get(COOKIE)
    if session_id:
        services().sessions.delete(session_id)


def set_cookie(response: Response, session_id: str) -> Response:
    """``response`` carrying the session cookie (Secure when the request came over HTTPS)."""
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(ABSOLUTE_TIMEOUT.total_seconds()),
        path=COOKIE_PATH,
        secure=request.is_secure,
        httponly=True,
        samesite="Strict",
    )
    return response


def clear_cookie(response: Response) -> Response:
    """``response`` telling the browser to forget the session cookie."""
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="Strict")
    return response


def current_session() -> tuple[ConsoleSession, ApiToken] | None:
    """The live session of this request and the token it stands for, or None; an expired
    session, or one whose token is no longer accepted, is deleted."""
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        return None
    deployment = services()
    session = deployment.sessions.get(session_id)
    if session is None:
        return None
    now = deployment.service.clock()
    principal = deployment.service.current_token(session.token_id)
    if principal is None or _timed_out(session, now):
        deployment.sessions.delete(session_id)
        return None
    if now - session.last_seen >= TOUCH_EVERY:
        deployment.sessions.touch(session_id, now)
    return session, principal


def _timed_out(session: ConsoleSession, now: dt.datetime) -> bool:
    return now - session.last_seen > IDLE_TIMEOUT or now - session.created_at > ABSOLUTE_TIMEOUT


def require(role: Role) -> None:
    """Put the session's token in ``g.principal`` (so commands name its actor) and its
    CSRF token in ``g.csrf``; SignInRequiredError without a session, ConsoleForbiddenError
    if its role is below ``role`` or a POST fails the CSRF check."""
    found = current_session()
    if found is None:
        raise SignInRequiredError()
    session, principal = found
    g.principal, g.csrf = principal, session.csrf
    if not principal.role.allows(role):
        raise ConsoleForbiddenError(
            f"This needs the {role.value} role; you are signed in as {principal.name!r}, "
            f"{principal.role.value}."
        )
    if request.method == "POST":
        check_origin()
        given = request.form.get(CSRF_FIELD, "")
        if not hmac.compare_digest(given.encode(), session.csrf.encode()):
            raise ConsoleForbiddenError(
                "This form was not sent from a page of this console (its CSRF token is "
                "missing or stale); reload the page and send it again."
            )


def check_origin() -> None:
    """ConsoleForbiddenError if the browser says the POST comes from another site."""
    origin = request.headers.get("Origin")
    site = request.headers.get("Sec-Fetch-Site")
    if (origin is not None and origin != request.host_url.rstrip("/")) or site == "cross-site":
        raise ConsoleForbiddenError(
            "This form was sent from another site; open the console itself and send it there."
        )
