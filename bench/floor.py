"""The floor under the API's ratio targets: FastAPI alone, and with one psycopg2 round trip
(through SQLAlchemy's pool, as the API's).

Why: issue 16 states the API's targets as shares of ``GET /health`` in the same run (reads
0.5x, lists 0.4x, submissions 0.25x). This measures what share a route keeps when all it
does is one round trip to PostgreSQL on the same two cores: ``SELECT 1`` through Starlette's
default thread pool (40 threads) and through one thread, and an 18.7 KiB text. A read that
also authenticates and shapes the run's document cannot keep more.

    .venv/bin/python -m bench.floor [--clients 50] [--seconds 5]

The app is a few lines below, served by uvicorn in a subprocess; the clients are those of
``bench.api`` (asyncio keep-alive connections in this process). It needs PostgreSQL on
127.0.0.1:5432 and exits 0 whatever it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI, Response
from pydantic import BaseModel

from bench import _harness
from bench.api import Load, drive
from consensus_engine.db.engine import create_engine_from_url
from consensus_engine.devtools.loopback import answers_200
from consensus_engine.devtools.process import ChildProcess, free_port, spawn
from consensus_engine.devtools.service import HOST

ROUTES = {
    "/health": "GET /health (FastAPI, nothing else)",
    "/select-1": "SELECT 1, default thread pool (40)",
    "/select-1/one-thread": "SELECT 1, one database thread",
    "/document/one-thread": "an 18.7 KiB text, one database thread",
}
DOCUMENT_BYTES = 19_150  # a completed five-persona run's answer
DSN_VARIABLE = "BENCH_FLOOR_DATABASE_URL"
JSON = "application/json"


class Health(BaseModel):
    status: str


def create_app() -> FastAPI:
    """``/health`` as ours answers it, and ``SELECT 1`` behind it two ways."""
    # A connection for each thread: no request waits for one, so the floor is generous.
    engine = create_engine_from_url(os.environ[DSN_VARIABLE], pool_size=41)
    one_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="database")

    def fetch(statement: str) -> bytes:
        with engine.connect() as connection:
            return str(connection.exec_driver_sql(statement).scalar_one()).encode()

    def select_1() -> Response:
        fetch("SELECT 1")
        return Response(b'{"ok":true}', media_type=JSON)

    def document() -> Response:
        text = fetch(f"SELECT '\"' || repeat('x', {DOCUMENT_BYTES - 2}) || '\"'")
        return Response(text, media_type=JSON)

    app = FastAPI()

    @app.get("/health")
    async def health() -> Health:
        return Health(status="ok")

    app.add_api_route("/select-1", select_1)

    @app.get("/select-1/one-thread")
    async def select_1_one_thread() -> Response:
        return await asyncio.get_running_loop().run_in_executor(one_thread, select_1)

    @app.get("/document/one-thread")
    async def document_one_thread() -> Response:
        return await asyncio.get_running_loop().run_in_executor(one_thread, document)

    return app


@contextmanager
def serving(database_url: str) -> Iterator[int]:
    """The app above on a free port until the block ends; its port."""
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "bench.floor:create_app",
        "--host", HOST, "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as work_dir:
        env = {**os.environ, DSN_VARIABLE: database_url}
        log_path = Path(work_dir) / "uvicorn.log"
        popen = spawn(command, env=env, log_path=log_path, cwd=Path(__file__).parent.parent)
        server = ChildProcess(popen, log_path, "the floor app")
        server.started(partial(answers_200, f"http://{HOST}:{port}/health"), timeout=60)
        try:
            yield port
        finally:
            server.stop(timeout=15)


def measure(args: argparse.Namespace) -> list[tuple[str, Load]]:
    rows = []
    with serving(args.database_url) as port:
        for path, title in ROUTES.items():
            raw = f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
            load = asyncio.run(drive(port, [raw], 200, args.clients, args.warmup, args.seconds))
            print(f"  ... {title}: {load.rate:.0f}/s", flush=True)
            rows.append((title, load))
    return rows


def report(rows: list[tuple[str, Load]]) -> None:
    health = rows[0][1].rate
    _harness.print_table(
        "\nThe floor, one run",
        f"{'req/s':>8}{'x health':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}",
        rows,
        lambda load: (
            f"{load.rate:8,.0f}{load.rate / health:10.2f}{load.percentile(0.5):9.1f}"
            f"{load.percentile(0.99):9.1f}{sum(load.errors.values()):8}"
        ),
    )


def main(argv: list[str] | None = None) -> int:
    parser = _harness.parser("floor", __doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per row")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--database-url", default=_harness.DATABASE_SERVER)
    args = parser.parse_args(argv)
    return _harness.main(
        "floor",
        f", {args.clients} clients",
        lambda: measure(args),
        report,
        stopping="the floor app",
        footer="a benchmark: it exits 0 whatever it measures",
    )


if __name__ == "__main__":
    sys.exit(main())
