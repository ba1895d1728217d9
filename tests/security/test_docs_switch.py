"""The API's schema and docs pages are a setting: on by default outside production, off by
default in production, where they would show every route to anyone who finds the port."""

from __future__ import annotations

import pytest

from .conftest import ApiFactory

DOCS = ("/docs", "/redoc", "/openapi.json")


def test_production_serves_no_docs_by_default(make_api: ApiFactory) -> None:
    api = make_api()  # ENV=production, as the tests' services run
    for path in DOCS:
        assert api.anonymous.get(path).status == 404, path
    assert api.anonymous.get("/health").status == 200


@pytest.mark.parametrize("env", ["production", "development"])
def test_docs_can_be_switched_on(make_api: ApiFactory, env: str) -> None:
    api = make_api(api={"ENV": env, "API_DOCS_ENABLED": True})
    for path in DOCS:
        assert api.anonymous.get(path).status == 200, path
