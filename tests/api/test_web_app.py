"""The API serves the web app at ``/`` (built by ``make web``) and answers other sites'
pages only when ``CORS_ORIGINS`` names them."""

from __future__ import annotations

import gzip
import re

import pytest
from pydantic import ValidationError

from consensus_engine.api.web_app import STATIC, built
from consensus_engine.devtools.loopback import http_request
from consensus_engine.settings import Settings

from .conftest import ApiFactory, ApiHarness
from .test_safety import send_raw

APP = "http://app.example.com"


@pytest.fixture(autouse=True)
def _the_app_is_built() -> None:
    assert built(), f"the web app is not built into {STATIC}: run `make web`"


def test_the_app_s_pages_assets_and_the_api_share_one_origin(api: ApiHarness) -> None:
    home = http_request(api.base_url + "/")
    assert home.status == 200 and b'<div id="root">' in home.body
    assert home.headers["content-type"].startswith("text/html")
    assert home.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in home.headers["content-security-policy"]
    # A page of the app's own (a client route) is the same document.
    assert http_request(api.base_url + "/runs/0b7f5c1e-aaaa-4bbb-8ccc-000000000000").body == (
        home.body
    )
    script = re.search(rb'src="(/assets/[^"]+\.js)"', home.body)
    assert script is not None, home.body
    asset = http_request(api.base_url + script.group(1).decode())
    assert asset.status == 200 and "immutable" in asset.headers["cache-control"]
    assert "javascript" in asset.headers["content-type"]
    packed = http_request(
        api.base_url + script.group(1).decode(), headers={"Accept-Encoding": "gzip, br"}
    )
    assert packed.headers["content-encoding"] == "gzip"
    assert gzip.decompress(packed.body) == asset.body
    assert len(packed.body) < len(asset.body) / 2

    # The API's own paths are never the app: unknown ones get the JSON 404.
    for path in ("/v1", "/v1/nothing-here", "/v1/runs/not-a-uuid/x", "/assets/gone-1234.js"):
        missing = http_request(api.base_url + path)
        assert missing.status == 404, path
        assert missing.headers["content-type"] == "application/json", path
    assert api.acme.get("/v1/me").json() == {"tenant": "acme"}
    assert http_request(api.base_url + "/health").status == 200
    # Nothing outside the build is reachable.
    # Sent as written: no client normalises ``..`` away.
    climbed = send_raw(api.base_url, "GET", "/assets/../../web_app.py", None, {})
    assert b"serve_web_app" not in climbed.body and climbed.status in (200, 404)
    encoded = send_raw(api.base_url, "GET", "/%2e%2e/web_app.py", None, {})
    assert b"serve_web_app" not in encoded.body


def test_the_app_can_be_turned_off(make_api: ApiFactory) -> None:
    api = make_api(api={"WEB_APP_ENABLED": False})
    assert http_request(api.base_url + "/").status == 404
    assert api.acme.get("/v1/me").status == 200


def test_only_the_listed_origins_may_call_the_api(make_api: ApiFactory) -> None:
    api = make_api(api={"CORS_ORIGINS": f"{APP}, http://localhost:5173"})
    preflight = http_request(
        api.base_url + "/v1/runs",
        method="OPTIONS",
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status == 200
    assert preflight.headers["access-control-allow-origin"] == APP
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in preflight.headers
    listed = api.acme.get("/v1/runs", headers={"Origin": APP})
    assert listed.headers["access-control-allow-origin"] == APP
    refused = api.anonymous.get("/v1/runs", headers={"Origin": APP})
    assert refused.status == 401  # errors carry the header too, so the page can read them
    assert refused.headers["access-control-allow-origin"] == APP
    other = api.acme.get("/v1/runs", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    # Without CORS_ORIGINS no other site is answered.
    plain = make_api().acme.get("/v1/runs", headers={"Origin": APP})
    assert "access-control-allow-origin" not in plain.headers


@pytest.mark.parametrize(
    "origins",
    ["*", "https://app.example.com/", "app.example.com", "ftp://x.example", "https://a.b/path"],
)
def test_cors_origins_must_be_exact_origins(origins: str) -> None:
    with pytest.raises(ValidationError, match="cors_origins"):
        Settings.model_validate({"cors_origins": origins})


def test_cors_origins_are_listed_one_by_one() -> None:
    settings = Settings.model_validate({"cors_origins": " https://a.example , http://b:8080 "})
    assert settings.allowed_origins == ("https://a.example", "http://b:8080")
    assert Settings.model_validate({"cors_origins": " "}).allowed_origins == ()
