"""The worker's Prometheus endpoint: one process that serves every worker process's metrics.

Dramatiq runs it as a fork (see :class:`PipelinePrometheus`), next to the worker
processes; they write their samples to files in Dramatiq's multiprocess directory,
and this server sums them on each scrape, so ``dramatiq -p N`` reports correctly.
"""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dramatiq.middleware.prometheus import DB_PATH, Prometheus

from consensus_engine.observability.metrics import render_metrics
from consensus_engine.settings import get_settings


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404)
            return
        body, content_type = render_metrics(DB_PATH)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes every few seconds are not news."""


def serve_metrics() -> int:
    """Serve ``/metrics`` on ``WORKER_METRICS_PORT`` until the worker stops (0: not at all)."""
    settings = get_settings()
    if settings.worker_metrics_port == 0:
        return 0
    address = (settings.worker_http_host, settings.worker_metrics_port)
    server = ThreadingHTTPServer(address, _Handler)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()
    return 0


class PipelinePrometheus(Prometheus):
    """Dramatiq's Prometheus middleware, served on our port with our metrics included."""

    @property
    def forks(self) -> list[Callable[[], int]]:
        return [serve_metrics]
