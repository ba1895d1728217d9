"""The MCP server as its clients meet it: launched over stdio, or serving streamable HTTP,
in front of a real API (``tests/api``'s fixtures: a database, the Pub/Sub emulator, the
offline LLM) whose runs a real worker finishes.

The SDK's own client drives it; the server runs as a separate process, started as the
README tells a user to (``consensus-engine mcp``), so what is tested is what a user gets.
"""

from __future__ import annotations

import json
import re
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from api import conftest as api_fixtures
from api.conftest import ApiHarness
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from support import REPO_ROOT, environ_without_settings

from consensus_engine.devtools.loopback import LOOPBACK
from consensus_engine.devtools.process import ChildProcess, free_port, spawn

make_api = api_fixtures.make_api  # the API served over a pipeline stack

TOOLS = {"submit_and_wait", "get_run", "list_runs", "revise", "compare"}


@pytest.fixture
def api(make_api: api_fixtures.ApiFactory) -> ApiHarness:
    """The API, with a worker that finishes its runs."""
    harness = make_api()
    harness.stack.start_worker()
    return harness


def server_env(api: ApiHarness, key: str | None) -> dict[str, str]:
    """What a user's MCP client configuration sets: API_URL, and API_KEY if given."""
    env = environ_without_settings() | {"API_URL": api.base_url}
    return env | ({"API_KEY": key} if key is not None else {})


def readme_config() -> dict[str, Any]:
    """The client configuration the README's "MCP server" section shows."""
    section = (REPO_ROOT / "README.md").read_text().split("\n### MCP server\n", 1)[1]
    section = section.split("\n### ", 1)[0]
    block = re.search(r"```json\n(.*?)\n```", section, re.DOTALL)
    assert block, "the README's MCP section has no JSON client configuration"
    config: dict[str, Any] = json.loads(block.group(1))["mcpServers"]["consensus-engine"]
    return config


def command(name: str) -> str:
    """A console script of this environment (the tests' venv, or make lowest's)."""
    path = Path(sys.executable).parent / name
    assert path.is_file(), f"{path} is not installed"
    return str(path)


def launched_client(api: ApiHarness, key: str | None, cwd: Path) -> Client:
    """A client that launches the server as the README's configuration says, with this
    test's API_URL and API_KEY in the variables it names."""
    config = readme_config()
    assert set(config["env"]) == {"API_URL", "API_KEY"}
    parameters = StdioServerParameters(
        command=command(config["command"]),
        args=config["args"],
        env=server_env(api, key),
        cwd=cwd,
    )
    return Client(stdio_client(parameters), read_timeout_seconds=120)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((LOOPBACK, port)) == 0


@pytest.fixture
def http_url(api: ApiHarness, tmp_path: Path) -> Iterator[str]:
    """``/mcp`` of the server on streamable HTTP, started without a key of its own."""
    port = free_port()
    argv = [command("consensus-engine"), "mcp", "--transport", "http"]
    argv += ["--host", LOOPBACK, "--port", str(port)]
    log_path = tmp_path / "mcp-http.log"
    popen = spawn(argv, env=server_env(api, None), log_path=log_path, cwd=tmp_path)
    server = ChildProcess(popen, log_path, "the MCP server").started(
        lambda: _listening(port), timeout=60
    )
    yield f"http://{LOOPBACK}:{port}/mcp"
    server.stop(timeout=15)


@asynccontextmanager
async def http_client(url: str, key: str | None) -> AsyncIterator[Client]:
    """The SDK's client on ``url`` sending ``Authorization: Bearer KEY`` (none for None)."""
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    timeout = httpx2.Timeout(30, read=120)
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client
