"""The OpenAPI 3.1 document, generated from the declared operations and their schemas."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from api.http import consistency
from api.http.bodies import PROBLEM
from api.http.routing import Operation, Routes
from api.http.schema import JSON, Obj

_PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
_ERRORS = {
    400: "Malformed request",
    401: "No or bad token",
    403: "Role too weak",
    404: "Not found",
    409: "State conflict",
    413: "Body too large",
    422: "Invalid field",
    429: "Too many requests; retry after Retry-After seconds",
    503: "Not ready or storage unavailable; retry after Retry-After seconds",
}


def openapi_path(rule: str) -> str:
    """Flask's ``/cas/<uuid:ca_id>`` as OpenAPI's ``/cas/{ca_id}``."""
    return _PARAM.sub(lambda match: "{" + match["name"] + "}", rule)


def document(all_routes: Iterable[Routes]) -> JSON:
    """The whole document: paths from every operation, components from every schema."""
    paths: dict[str, dict[str, Any]] = {}
    objects: dict[str, Obj] = {"Problem": PROBLEM}
    for routes in all_routes:
        for operation in routes.operations:
            paths.setdefault(openapi_path(operation.rule), {})[operation.method.lower()] = (
                _operation(operation)
            )
            for schema in (operation.body, operation.query, operation.response):
                if isinstance(schema, Obj):
                    objects.update({found.name: found for found in schema.nested()})
    return {
        "openapi": "3.1.0",
        "info": {"title": "pca — private Certificate Authority", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": {name: objects[name].component() for name in sorted(objects)},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(operation: Operation) -> JSON:
    spec: JSON = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "tags": [operation.tag],
        "responses": _responses(operation),
    }
    parameters = _path_parameters(operation) + _query_parameters(operation.query)
    if operation.read_models:
        parameters += consistency.OPENAPI_PARAMETERS
    if parameters:
        spec["parameters"] = parameters
    if operation.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": operation.body.json_schema()}},
        }
    if operation.role is None:
        spec["security"] = []
    else:
        spec["security"] = [{"bearer": []}]
        spec["x-required-role"] = operation.role.value
    return spec


def _responses(operation: Operation) -> JSON:
    responses: JSON = {str(operation.status): _success(operation)}
    if operation.read_models:
        responses[str(operation.status)]["headers"] = consistency.OPENAPI_RESPONSE_HEADERS
    problem = {"application/problem+json": {"schema": PROBLEM.json_schema()}}
    # Any operation may meet a storage outage or read models still catching up (503), and
    # a CA whose state forbids the answer (409, such as a CRL of a CA never enabled); a
    # token's operations also the brake on bad tokens and the issuance limit (429).
    codes = [404, 409, 500, 503] if operation.role is None else [401, 403, 404, 409, 429, 500, 503]
    if operation.method == "POST":
        codes += [413]  # a body over the limit is refused, JSON or not (OCSP)
    if operation.body is not None:
        codes += [400, 422]
    if operation.query is not None or operation.path:
        codes += [422]  # a query or a path parameter its rules refuse
    for code in sorted(set(codes)):
        responses[str(code)] = {
            "description": _ERRORS.get(code, "Internal error"),
            "content": problem,
        }
    return responses


def _success(operation: Operation) -> JSON:
    if operation.response is None:
        return {"description": "Done; no body"}
    if isinstance(operation.response, tuple):
        content: JSON = {}
        for media_type in operation.response:
            schema: JSON = {"type": "string", "format": "binary"}
            if media_type == "application/json":
                schema = {"type": ["object", "array"]}  # a report's rows are an array
            content[media_type] = {"schema": schema}
        return {"description": "The file", "content": content}
    return {
        "description": "OK",
        "content": {"application/json": {"schema": operation.response.json_schema()}},
    }


def _path_parameters(operation: Operation) -> list[JSON]:
    parameters = []
    for match in _PARAM.finditer(operation.rule):
        schema: JSON = {"type": "string"}
        if match["converter"] == "uuid":
            schema["format"] = "uuid"
        if match["name"] in operation.path:
            schema = operation.path[match["name"]].json_schema()
        parameters.append({"name": match["name"], "in": "path", "required": True, "schema": schema})
    return parameters


def _query_parameters(query: Obj | None) -> list[JSON]:
    if query is None:
        return []
    return [
        {
            "name": name,
            "in": "query",
            "required": name in query.required,
            "schema": spec.json_schema(),
        }
        for name, spec in query.properties.items()
    ]
