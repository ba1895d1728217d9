"""An API served for real (uvicorn, HTTP) over a test's pipeline stack.

Two tenants have keys: ``acme`` and ``globex``; ``harness.anonymous`` sends none. The
API's metrics are on a free port of their own, ``harness.metrics_url``.
A worker is started only by the tests that need runs to finish.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr
from support.stack import PipelineStack, StackFactory

from consensus_engine.api.app import create_app
from consensus_engine.api.auth import digest, new_key
from consensus_engine.devtools.loopback import LOOPBACK, ApiClient, BackgroundServer
from consensus_engine.devtools.process import free_port
from consensus_engine.settings import Settings


@dataclass
class ApiHarness:
    stack: PipelineStack
    settings: Settings
    base_url: str
    metrics_url: str
    keys: dict[str, str]
    acme: ApiClient
    globex: ApiClient
    anonymous: ApiClient


ApiFactory = Callable[..., ApiHarness]


@pytest.fixture
def make_api(make_stack: StackFactory) -> Iterator[ApiFactory]:
    """``make_api(api={SETTING: value}, env={...}, **offline_llm_options)``."""
    with contextlib.ExitStack() as servers:

        def make(api: dict[str, Any] | None = None, **stack_options: Any) -> ApiHarness:
            stack = make_stack(**stack_options)
            keys = {"acme": new_key(), "globex": new_key()}
            entries = ",".join(f"{tenant}:{digest(key)}" for tenant, key in keys.items())
            update: dict[str, Any] = {"api_keys": SecretStr(entries)}
            update |= {"api_host": LOOPBACK, "api_metrics_port": free_port()}
            update |= {name.lower(): value for name, value in (api or {}).items()}
            settings = Settings.model_validate({**stack.settings.model_dump(), **update})
            base_url = servers.enter_context(BackgroundServer(create_app(settings))).url
            return ApiHarness(
                stack=stack,
                settings=settings,
                base_url=base_url,
                metrics_url=f"http://{LOOPBACK}:{settings.api_metrics_port}/metrics",
                keys=keys,
                acme=ApiClient(base_url, keys["acme"]),
                globex=ApiClient(base_url, keys["globex"]),
                anonymous=ApiClient(base_url),
            )

        yield make


@pytest.fixture
def api(make_api: ApiFactory) -> ApiHarness:
    return make_api()
