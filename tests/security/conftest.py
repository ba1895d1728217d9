"""The security suite drives the real API (over HTTP) as the API tests do."""

from api.conftest import ApiFactory, ApiHarness, make_api

__all__ = ["ApiFactory", "ApiHarness", "make_api"]
