"""Which key a call carries: the caller's own bearer key first; the server's key only where
no one else can reach it."""

from __future__ import annotations

import pytest

from consensus_engine.mcp.gateway import caller_key
from consensus_engine.mcp.server import http_fallback_key


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"authorization": "Bearer ce_abc"}, "ce_abc"),
        ({"authorization": "bearer   ce_abc "}, "ce_abc"),
        ({"authorization": "Basic dXNlcjpwdw=="}, None),
        ({"authorization": "Bearer "}, None),
        ({}, None),
        (None, None),
    ],
)
def test_the_callers_bearer_key_is_read_from_its_headers(
    headers: dict[str, str] | None, key: str | None
) -> None:
    assert caller_key(headers) == key


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_on_loopback_the_servers_key_stands_in(host: str) -> None:
    assert http_fallback_key(host, "ce_server") == "ce_server"


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "mcp.example.com"])
def test_elsewhere_each_caller_must_bring_a_key(host: str) -> None:
    assert http_fallback_key(host, "ce_server") is None
