"""What clients of the earlier system send, answered over real HTTP: ``offset`` paging is
refused with a pointer to the cursor, ``start_date``/``end_date`` filter like
``created_after``/``created_before``, pinned versions we do not serve are refused, and
``GET /`` describes the service in JSON to a client that asks for JSON."""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consensus_engine.devtools.loopback import http_request
from consensus_engine.domain.prompts import PROMPT_SET_VERSION
from consensus_engine.domain.schemas import SCHEMA_VERSION

from .conftest import ApiFactory, ApiHarness
from .test_runs import assert_no_server_errors, envelope, submit

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def ids(api: ApiHarness, **query: Any) -> list[str]:
    response = api.acme.get("/v1/runs?" + urllib.parse.urlencode(query))
    assert response.status == 200, response.body
    return [run["run_id"] for run in response.json()["runs"]]


def test_offset_paging_is_refused_with_a_pointer_to_the_cursor(api: ApiHarness) -> None:
    submit(api.acme)
    for offset in ("0", "30", "abc"):
        refused = envelope(api.acme.get(f"/v1/runs?offset={offset}"), 400, "OFFSET_NOT_SUPPORTED")
        assert "cursor" in refused["message"]
        assert refused["details"] == {"parameter": "offset", "use": "cursor"}
    assert_no_server_errors(api)


def test_start_and_end_date_are_the_creation_bounds(api: ApiHarness) -> None:
    runs = [submit(api.acme) for _ in range(3)]
    newest_first = list(reversed(runs))
    today = datetime.now(UTC).date()
    middle = api.acme.get(f"/v1/runs/{runs[1]}").json()["created_at"]

    assert ids(api, start_date=today.isoformat()) == newest_first  # the whole UTC day
    assert ids(api, end_date=today.isoformat()) == newest_first
    assert ids(api, end_date=(today - timedelta(days=1)).isoformat()) == []
    assert ids(api, start_date=(today + timedelta(days=1)).isoformat()) == []
    assert ids(api, start_date=middle) == ids(api, created_after=middle) == newest_first[:2]
    assert ids(api, end_date=middle) == ids(api, created_before=middle) == newest_first[1:]

    both = f"created_after={urllib.parse.quote(middle)}&start_date={today}"
    refused = envelope(api.acme.get(f"/v1/runs?{both}"), 422, "VALIDATION_ERROR")
    assert refused["details"][0]["loc"] == ["query", "start_date"]
    for bad in ("yesterday", "2026-02-30", "2026-01-01T10:00:00"):  # no time zone: ambiguous
        query = urllib.parse.urlencode({"end_date": bad})
        refused = envelope(api.acme.get(f"/v1/runs?{query}"), 422, "VALIDATION_ERROR")
        assert refused["details"][0]["loc"] == ["query", "end_date"]
    assert_no_server_errors(api)


@pytest.mark.parametrize(
    ("header", "served"),
    [("X-Schema-Version", SCHEMA_VERSION), ("X-Prompt-Set-Version", PROMPT_SET_VERSION)],
)
def test_a_pinned_version_we_do_not_serve_is_refused(
    api: ApiHarness, header: str, served: str
) -> None:
    assert api.acme.get("/v1/runs", headers={header: served}).status == 200
    assert api.acme.get("/v1/runs", headers={header: " "}).status == 200  # pins nothing
    refused = envelope(
        api.acme.post("/v1/runs", {"idea": "Anything."}, headers={header: "0.9"}),
        400,
        "UNSUPPORTED_VERSION",
    )
    assert refused["details"] == {"header": header, "served": served}
    assert "0.9" not in refused["message"]  # the client's text is not echoed
    assert ids(api) == []  # refused before the route: nothing was stored
    envelope(api.acme.get("/v1/me", headers={header: "0.9"}), 400, "UNSUPPORTED_VERSION")
    assert http_request(api.base_url + "/health", headers={header: "0.9"}).status == 200
    assert_no_server_errors(api)


def test_the_root_describes_the_service_to_a_json_client(api: ApiHarness) -> None:
    for accept in ("application/json", "application/json, */*", "text/html;q=0.5, application/*"):
        answer = http_request(api.base_url + "/", headers={"Accept": accept})
        assert answer.status == 200, accept
        assert answer.headers["content-type"] == "application/json", accept
        assert "Accept" in answer.headers["vary"]
        assert answer.json() == {
            "name": "Consensus Engine",
            "version": "1.0.0",
            "schema_version": SCHEMA_VERSION,
            "prompt_set_version": PROMPT_SET_VERSION,
            "links": {
                "runs": "/v1/runs",
                "health": "/health",
                "ready": "/ready",
                "web_app": "/",
            },
        }
    for negotiated in (BROWSER, "*/*", "application/json;q=0, */*", None):
        sent = {"Accept": negotiated} if negotiated else {}
        page = http_request(api.base_url + "/", headers=sent)
        assert page.status == 200 and b'<div id="root">' in page.body, negotiated
        assert page.headers["content-type"].startswith("text/html")
        assert "Accept" in page.headers["vary"]
    head = http_request(api.base_url + "/", method="HEAD", headers={"Accept": BROWSER})
    assert head.status == 200 and head.body == b""


def test_without_the_web_app_the_root_still_answers_json(make_api: ApiFactory) -> None:
    api = make_api(api={"WEB_APP_ENABLED": False, "API_DOCS_ENABLED": True})
    described = http_request(api.base_url + "/", headers={"Accept": "application/json"}).json()
    assert described["links"] == {
        "runs": "/v1/runs",
        "health": "/health",
        "ready": "/ready",
        "docs": "/docs",
        "openapi": "/openapi.json",
    }
    envelope(http_request(api.base_url + "/", headers={"Accept": BROWSER}), 404, "NOT_FOUND")


def test_other_sites_may_send_the_pinned_versions_and_delete(make_api: ApiFactory) -> None:
    site = "http://app.example.com"
    api = make_api(api={"CORS_ORIGINS": site})
    preflight = http_request(
        api.base_url + "/v1/runs/0b7f5c1e-aaaa-4bbb-8ccc-000000000000",
        method="OPTIONS",
        headers={
            "Origin": site,
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "authorization, x-schema-version",
        },
    )
    assert preflight.status == 200, preflight.body
    assert "DELETE" in preflight.headers["access-control-allow-methods"]
    assert "x-schema-version" in preflight.headers["access-control-allow-headers"].lower()
