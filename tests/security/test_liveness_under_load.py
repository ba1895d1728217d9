"""One key cannot stop an API process answering its probes: slow synchronous LLM requests
never hold the threads that health and readiness need, and each tenant has a cap on them.
Real API over HTTP, the offline LLM answering slowly."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from .conftest import ApiFactory

IDEA = "Let people book a bike repair slot online and get a text when it is ready."
SLOW_REQUESTS = 200


def test_health_answers_at_once_with_200_slow_requests_in_flight(make_api: ApiFactory) -> None:
    limits = {"API_RATE_LIMIT_PER_MINUTE": 100_000, "API_RATE_LIMIT_BURST": 10_000}
    api = make_api(api={**limits, "API_SYNC_TIMEOUT_SECONDS": 30}, latency_ms=4000)
    started = threading.Barrier(SLOW_REQUESTS + 1)

    def slow() -> int:
        started.wait()
        return api.acme.post("/v1/expand-idea", {"idea": IDEA}, timeout=60).status

    with ThreadPoolExecutor(SLOW_REQUESTS) as pool:
        answers = [pool.submit(slow) for _ in range(SLOW_REQUESTS)]
        started.wait()
        time.sleep(1.0)  # every request sent and, where accepted, waiting on the LLM
        probes = []
        for _ in range(5):
            began = time.perf_counter()
            health = api.anonymous.get("/health", timeout=30)
            probes.append(time.perf_counter() - began)
            assert health.status == 200
        ready = api.anonymous.get("/ready", timeout=30)
        statuses = Counter(answer.result() for answer in answers)

    assert ready.status == 200, ready.body
    assert min(probes) < 0.05, probes
    assert sorted(probes)[len(probes) // 2] < 0.25, probes
    # One tenant holds at most its share; the rest is refused at once, not queued.
    assert statuses[429] > 0 and statuses[200] > 0, statuses
    assert set(statuses) <= {200, 429}, statuses
