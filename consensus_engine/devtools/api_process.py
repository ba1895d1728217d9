"""The API as production serves it (``uvicorn --factory``), in a child process with one key."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from consensus_engine.api.auth import digest, new_key
from consensus_engine.devtools.http_client import answers_200
from consensus_engine.devtools.ports import free_port
from consensus_engine.devtools.process import ChildProcess, spawn

HOST = "127.0.0.1"


@dataclass
class ApiProcess(ChildProcess):
    """``uvicorn`` serving ``create_app()``, with its port, worker count and key."""

    port: int
    workers: int
    key: str  # the one tenant's API key

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"


def start_api(
    env: Mapping[str, str],
    log_path: Path,
    *,
    tenant: str,
    workers: int = 1,
    timeout: float = 60,
    cwd: Path | None = None,
) -> ApiProcess:
    """Start the API on a free port with one key for ``tenant``; returns once it is ready."""
    key, port = new_key(), free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "consensus_engine.api.app:create_app",
        "--host", HOST, "--port", str(port), "--workers", str(workers),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    api_env = {**env, "API_KEYS": f"{tenant}:{digest(key)}"}
    popen = spawn(command, env=api_env, log_path=log_path, cwd=cwd)
    server = ApiProcess(popen, log_path, "the API", port, workers, key)
    try:
        server.wait_until(partial(answers_200, f"{server.base_url}/ready"), timeout)
    except BaseException:
        server.stop(timeout=15)
        raise
    return server
