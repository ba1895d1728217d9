"""A real Prometheus server (Debian's ``prometheus`` binary) scraping test targets every second.

Used to check that the dashboard's and alerts' PromQL runs against what our processes
export. ``make tools`` installs the binary on a fresh machine; its daemon is not used.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.pubsub import free_port

PROMETHEUS_BINARY = "/usr/bin/prometheus"


@dataclass(frozen=True)
class PrometheusServer:
    """A running server: query it over its HTTP API."""

    base_url: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def get(self, path: str, params: Mapping[str, str] | None = None) -> tuple[int, bytes]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(self.base_url + path + query, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def query(self, expr: str) -> dict[str, Any]:
        """``/api/v1/query`` at now: the JSON answer, errors (HTTP 400/422) included."""
        _, body = self.get("/api/v1/query", {"query": expr})
        answer: dict[str, Any] = json.loads(body)
        return answer

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their health and last error."""
        _, body = self.get("/api/v1/targets", {"state": "active"})
        active: list[dict[str, Any]] = json.loads(body)["data"]["activeTargets"]
        return active

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


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
    log_path = home / "prometheus.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = PrometheusServer(f"http://127.0.0.1:{port}", popen, log_path)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if popen.poll() is not None:
                raise RuntimeError(f"prometheus exited with {popen.returncode}:\n{server.logs()}")
            with contextlib.suppress(OSError):
                if server.get("/-/ready")[0] == 200:
                    break
            if time.monotonic() > deadline:
                logs = server.logs()
                raise RuntimeError(f"prometheus not ready after {ready_timeout} s:\n{logs}")
            time.sleep(0.1)
        yield server
    finally:
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=30)
