"""A real Prometheus server (Debian's ``prometheus`` binary) scraping test targets every second.

Used to check that the dashboard's and alerts' PromQL runs against what our processes
export. ``make tools`` installs the binary on a fresh machine; its daemon is not used.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from consensus_engine.devtools.loopback import answers_200, http_request
from consensus_engine.devtools.process import ChildProcess, free_port, spawn

PROMETHEUS_BINARY = "/usr/bin/prometheus"


@dataclass
class PrometheusServer(ChildProcess):
    """A running server: query it over its HTTP API."""

    base_url: str

    def get(self, path: str, **params: str) -> dict[str, Any]:
        """The JSON answer of ``path`` with ``params``, errors (HTTP 400/422) included."""
        url = f"{self.base_url}{path}?{urllib.parse.urlencode(params)}"
        answer: dict[str, Any] = http_request(url).json()
        return answer

    def query(self, expr: str) -> dict[str, Any]:
        """``/api/v1/query`` at now."""
        return self.get("/api/v1/query", query=expr)

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their health and last error."""
        data = self.get("/api/v1/targets", state="active")["data"]
        active: list[dict[str, Any]] = data["activeTargets"]
        return active


def scrape_config(targets: Mapping[str, Sequence[str]], interval: str) -> dict[str, Any]:
    """The config: one job per name, each with its ``host:port`` targets (JSON is YAML)."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": job,
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": list(addresses)}],
            }
            for job, addresses in targets.items()
        ],
    }


@contextlib.contextmanager
def running_prometheus(
    tmp_path: Path,
    targets: Mapping[str, Sequence[str]],
    *,
    interval: str = "1s",
    binary: str = PROMETHEUS_BINARY,
    ready_timeout: float = 60,
) -> Iterator[PrometheusServer]:
    """Run Prometheus until the block ends; ``targets`` maps job names to ``host:port``s."""
    if shutil.which(binary) is None:
        raise FileNotFoundError(f"{binary} is missing: run `make tools` (Debian's prometheus)")
    home = tmp_path / "prometheus"
    (home / "data").mkdir(parents=True, exist_ok=True)
    config = home / "prometheus.yml"
    config.write_text(json.dumps(scrape_config(targets, interval), indent=2))
    port = free_port()
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={home / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
    ]
    log_path = home / "prometheus.log"
    popen = spawn(command, env=os.environ, log_path=log_path)
    server = PrometheusServer(popen, log_path, "prometheus", f"http://127.0.0.1:{port}")
    try:
        yield server.started(partial(answers_200, f"{server.base_url}/-/ready"), ready_timeout)
    finally:
        server.stop(timeout=30)
