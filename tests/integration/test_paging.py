"""Every list of the HTTP API pages alike: ``limit`` and ``cursor`` in, ``{items,
next_cursor}`` out, the same limits and the same errors."""

from __future__ import annotations

from typing import Any

import pytest

from domain.model.tokens import Role
from tests.api_client import ApiClient
from tests.integration.test_api_flow import _intermediate, _issue, _root

LISTS = ("cas", "certificates", "events", "checkpoints")


@pytest.fixture
def populated(api: ApiClient) -> dict[str, str]:
    """Three CAs, three certificates, three checkpoints: the path of each list."""
    root_id = _root(api)
    ca_id = _intermediate(api, root_id)
    api.call("POST", "/api/v1/cas", json={"kind": "root", "subject": {"common_name": "Third"}})
    for _ in range(3):
        _issue(api, ca_id)
        made = api.call("POST", "/api/v1/audit/checkpoints", role=Role.ADMIN)
        assert made.status_code == 201, made.get_json()
    return {
        "cas": "/api/v1/cas",
        "certificates": f"/api/v1/cas/{ca_id}/certificates",
        "events": "/api/v1/events",
        "checkpoints": "/api/v1/audit/checkpoints",
    }


def _page(api: ApiClient, path: str, query: str) -> dict[str, Any]:
    head = api.app.extensions["pca"].service.recorder.max_notification_id()
    headers = {"X-Wait-For-Position": str(head)}  # the read models have caught up
    response = api.call("GET", f"{path}?{query}", role=Role.AUDITOR, headers=headers)
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


@pytest.mark.parametrize("name", LISTS)
def test_every_list_takes_limit_and_cursor_and_answers_next_cursor(
    api: ApiClient, populated: dict[str, str], name: str
) -> None:
    path = populated[name]
    whole = _page(api, path, "limit=100")
    assert whole["next_cursor"] is None
    assert len(whole["items"]) >= 3
    seen: list[Any] = []
    cursor: str | None = ""
    while cursor is not None:
        page = _page(api, path, "limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert len(page["items"]) <= 2
        seen.extend(page["items"])
        cursor = page["next_cursor"]
    # the CRL publisher may append events meanwhile; they come after the whole list
    assert seen[: len(whole["items"])] == whole["items"]


@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize(
    ("query", "field"), [("limit=0", "limit"), ("limit=1001", "limit"), ("cursor=nope", "cursor")]
)
def test_every_list_refuses_a_bad_limit_or_cursor_alike(
    api: ApiClient, populated: dict[str, str], name: str, query: str, field: str
) -> None:
    refused = api.call("GET", f"{populated[name]}?{query}", role=Role.AUDITOR)
    assert (refused.status_code, refused.get_json()["field"]) == (422, field)


def test_an_unknown_query_parameter_names_the_ones_allowed(api: ApiClient) -> None:
    refused = api.call("GET", "/api/v1/cas?page=2", role=Role.AUDITOR).get_json()
    assert refused["detail"] == "page is not a known field; allowed: limit, cursor."
