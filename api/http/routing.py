"""Declared operations: one decorator registers a view with Flask, checks the caller's
role, validates the body and query, and records what the OpenAPI document publishes.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, g, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from api.http.auth import require_role
from api.http.consistency import answer_fresh
from api.http.errors import MalformedRequestError
from api.http.schema import AnyObject, Obj, Spec
from domain.model.tokens import Role

View = Callable[..., ResponseReturnValue]
MAX_INT_DIGITS = 40  # every integer field is far below 10**40
HUGE_INT: int = 10**MAX_INT_DIGITS


@dataclass(frozen=True)
class Operation:
    """One method on one path, as served and as documented."""

    operation_id: str
    method: str
    rule: str
    summary: str
    role: Role | None  # None: public, no token
    body: Obj | None
    query: Obj | None
    status: int
    response: Obj | AnyObject | tuple[str, ...] | None  # JSON schema, file types, no body
    tag: str
    read_models: bool = False  # answered from the read models: fresh by default
    path: Mapping[str, Spec] = field(default_factory=dict)  # beyond what the rule says


class Routes:
    """The operations of one blueprint."""

    def __init__(self, blueprint: Blueprint, tag: str) -> None:
        self.blueprint = blueprint
        self.tag = tag
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        rule: str,
        *,
        summary: str,
        role: Role | None,
        body: Obj | None = None,
        query: Obj | None = None,
        status: int = 200,
        response: Obj | AnyObject | tuple[str, ...] | None = None,
        read_models: bool = False,
        path: Mapping[str, Spec] | None = None,
        name: str | None = None,
    ) -> Callable[[View], View]:
        """Register the decorated view for ``method`` on ``rule`` (relative to the prefix).

        ``read_models``: the view answers from the read models, so it first waits until
        they include every write acknowledged before the request (:mod:`api.http.consistency`).
        ``path`` declares rules for path parameters that the rule's converter does not,
        ``name`` the operation id when one view serves several rules (its own name else).
        """

        def decorate(view: View) -> View:
            prefix = self.blueprint.url_prefix or ""
            operation_id = name or view.__name__
            self.operations.append(
                Operation(
                    operation_id,
                    method,
                    prefix + rule,
                    summary,
                    role,
                    body,
                    query,
                    status,
                    response,
                    self.tag,
                    read_models,
                    dict(path or {}),
                )
            )
            wrapped = _guarded(view, role, body, query, dict(path or {}), read_models=read_models)
            self.blueprint.add_url_rule(rule, operation_id, wrapped, methods=[method])
            return wrapped

        return decorate


def _guarded(
    view: View,
    role: Role | None,
    body: Obj | None,
    query: Obj | None,
    path_specs: Mapping[str, Spec],
    *,
    read_models: bool,
) -> View:
    @functools.wraps(view)
    def run(**path: Any) -> ResponseReturnValue:
        if role is not None:
            g.principal = require_role(role)
        for name, spec in path_specs.items():
            path[name] = spec.parse(path[name], name)
        if request.method == "POST":
            _refuse_oversized_body()
        if body is not None:
            path["body"] = body.parse(_json_body(empty_is_object=not body.required))
        if query is not None:
            path["query"] = query.parse(request.args.to_dict())
        if read_models:
            answer_fresh()
        return view(**path)

    return run


def _refuse_oversized_body() -> None:
    """413 for a body over ``max_content_length``, whether or not the view reads it.

    A declared length is judged before anything is read. A chunked body has none, and
    Werkzeug's stream quietly stops at the limit, so a view would parse its first MiB:
    read up to the limit here (cached for the view), and a body that fills it is too large.
    """
    limit = request.max_content_length
    if limit is None:
        return
    declared = request.content_length
    if declared is None:
        if len(request.get_data()) >= limit:
            raise RequestEntityTooLarge()
    elif declared > limit:
        raise RequestEntityTooLarge()


def _json_body(*, empty_is_object: bool = False) -> object:
    """The body as JSON (its size is already checked); with ``empty_is_object`` (a body
    whose fields are all optional) no body at all stands for ``{}``."""
    if empty_is_object and not request.get_data():
        return {}
    if not request.is_json:
        raise MalformedRequestError("Send the body as JSON with Content-Type: application/json.")
    raw = request.get_data()
    try:
        return json.loads(raw, parse_int=_json_int, parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise MalformedRequestError("The body is not valid UTF-8.") from None
    except (ValueError, RecursionError):
        raise MalformedRequestError("The body is not valid JSON (or nests too deeply).") from None


def _json_int(digits: str) -> int:
    """A JSON integer. One longer than any field allows stands in as ``HUGE_INT``, so the
    field's range check names it (422) instead of Python's 4300-digit limit calling the
    whole body unreadable, and no time goes into converting a megabyte of digits."""
    if len(digits) > MAX_INT_DIGITS:
        return -HUGE_INT if digits.startswith("-") else HUGE_INT
    return int(digits)


def _no_constant(name: str) -> object:
    """NaN and Infinity are JavaScript, not JSON (RFC 8259); Python would accept them."""
    raise ValueError(f"{name} is not JSON")
