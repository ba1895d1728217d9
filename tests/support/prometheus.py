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
    # Every job scrapes /metrics at the global interval, which is also its timeout.
    jobs = [
        {"job_name": job, "static_configs": [{"targets": list(hosts)}]}
        for job, hosts in targets.items()
    ]
    timing = dict.fromkeys(("scrape_interval", "scrape_timeout", "evaluation_interval"), interval)
    config = home / "prometheus.yml"  # JSON is YAML
    config.write_text(json.dumps({"global": timing, "scrape_configs": jobs}, indent=2))
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
