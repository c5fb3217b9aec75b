"""A test client that authenticates as a role and checks every response against the
published OpenAPI document."""

from __future__ import annotations

from typing import Any

import jsonschema
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from domain.model.tokens import Role
from domain.model.values import RequestContext

SETUP = RequestContext(actor="test-setup (admin)", request_id="test-setup")


class ApiClient:
    """Calls the API with a bearer token per role; validates each response."""

    def __init__(self, app: Flask, tokens: dict[Role, str] | None = None) -> None:
        """A client of ``app`` with a new token per role, or with ``tokens`` made before
        (by the same deployment before a restart)."""
        self.app = app
        self.client: FlaskClient = app.test_client()
        service = app.extensions["pca"].service
        self.tokens = tokens or {
            role: service.create_token(SETUP, f"test-{role.value}", role)[0] for role in Role
        }
        self.document: dict[str, Any] = self.client.get("/openapi.json").get_json()

    def call(
        self, method: str, path: str, role: Role | None = Role.ADMIN, **kwargs: Any
    ) -> TestResponse:
        headers = dict(kwargs.pop("headers", {}))
        if role is not None:
            headers["Authorization"] = f"Bearer {self.tokens[role]}"
        response = self.client.open(path, method=method, headers=headers, **kwargs)
        self.validate(method, path, response)
        return response

    def validate(self, method: str, path: str, response: TestResponse) -> None:
        """Fail unless the status is documented for this operation and the body fits."""
        operation = self._operation(method, path.split("?", maxsplit=1)[0])
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, (
            f"{method} {path} answered {response.status_code}, which the document lacks"
        )
        content = documented.get("content")
        if content is None:
            assert response.data == b""
            return
        media = response.mimetype or ""
        assert media in content, f"{method} {path}: {media} is not documented"
        if media.endswith("json") and "$ref" in content[media]["schema"]:
            schema = {**content[media]["schema"], "components": self.document["components"]}
            jsonschema.validate(response.get_json(), schema)

    def _operation(self, method: str, path: str) -> dict[str, Any]:
        for template, operations in self.document["paths"].items():
            if _matches(template, path) and method.lower() in operations:
                found: dict[str, Any] = operations[method.lower()]
                return found
        raise AssertionError(f"{method} {path} is not in the OpenAPI document")


def _matches(template: str, path: str) -> bool:
    template_parts, path_parts = template.split("/"), path.split("/")
    if len(template_parts) != len(path_parts):
        return False
    for expected, actual in zip(template_parts, path_parts, strict=True):
        if "{" in expected:
            prefix, _, rest = expected.partition("{")
            suffix = rest.partition("}")[2]
            if not (actual.startswith(prefix) and actual.endswith(suffix)):
                return False
        elif expected != actual:
            return False
    return True
