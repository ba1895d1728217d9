"""Webhooks over real HTTP: a tenant registers an endpoint, a worker delivers its runs'
events, signed, to a receiver on this machine that answers 500 twice before it accepts;
the attempts are listed and one delivery is sent again. Registration refuses internal
addresses unless the operator allows them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.receiver import Receiver, serving

from .conftest import ApiFactory, ApiHarness
from .test_runs import envelope

IDEA = "Let neighbours share a cargo bike, booked by the hour from their phones."


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    with serving() as found:
        yield found


def test_a_run_s_end_is_delivered_signed_retried_listed_and_redelivered(
    make_api: ApiFactory, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    api = make_api(
        env={"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true", "WEBHOOK_RETRY_DELAYS_SECONDS": "1,1,1"}
    )
    created = api.acme.post("/v1/webhooks", {"url": url, "events": ["run.completed"]})
    assert created.status == 201, created.body
    endpoint = created.json()
    hook.secret, hook.answers = endpoint["secret"], [500, 500]
    api.stack.start_worker()

    run_id = api.acme.post("/v1/runs", {"idea": IDEA}).json()["run_id"]

    seen = hook.wait_for(3)
    assert [s["valid"] for s in seen] == [True, True, True]
    assert len({s["id"] for s in seen}) == 1  # one delivery, three attempts
    event = seen[-1]["body"]
    assert event["type"] == "run.completed"
    assert event["data"]["run_id"] == run_id and event["data"]["decision"] is not None
    deliveries = wait_delivered(api, endpoint["id"])
    (delivery,) = deliveries
    assert delivery["webhook_id"] == seen[0]["id"] and delivery["run_id"] == run_id
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
    assert all(a["latency_ms"] >= 0 for a in delivery["attempts"])

    again = api.acme.post(f"/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/redeliver")
    assert again.status == 202, again.body
    assert hook.wait_for(4)[-1]["id"] == delivery["webhook_id"]
    envelope(
        api.globex.post(f"/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/redeliver"),
        404,
        "NOT_FOUND",
    )


def wait_delivered(api: ApiHarness, endpoint_id: str, timeout: float = 30) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        found: list[Any] = api.acme.get(f"/v1/webhooks/{endpoint_id}/deliveries").json()[
            "deliveries"
        ]
        if found and all(d["status"] == "delivered" for d in found):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def test_an_endpoint_is_the_tenant_s_and_its_secret_is_shown_once(make_api: ApiFactory) -> None:
    api = make_api(env={"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"})
    body = {"url": "http://127.0.0.1:9/ce", "events": ["run.failed", "run.completed"]}
    created = api.acme.post("/v1/webhooks", body)
    assert created.status == 201, created.body
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["events"] == ["run.completed", "run.failed"]
    path = f"/v1/webhooks/{endpoint['id']}"
    shown = api.acme.get(path).json()
    assert "secret" not in shown and shown["url"] == body["url"]
    assert [e["id"] for e in api.acme.get("/v1/webhooks").json()] == [endpoint["id"]]
    assert api.globex.get("/v1/webhooks").json() == []
    envelope(api.globex.get(path), 404, "NOT_FOUND")
    envelope(api.globex.request("DELETE", path), 404, "NOT_FOUND")

    change = {"enabled": False, "events": ["run.cancelled"]}
    changed = api.acme.request("PATCH", path, change).json()
    assert (changed["enabled"], changed["events"]) == (False, ["run.cancelled"])
    rotated = api.acme.post(f"{path}/rotate-secret").json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]
    assert api.acme.request("DELETE", path).status == 204
    envelope(api.acme.get(path), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:9/hook", "internal address"),
        ("http://localhost/hook", "internal address"),
        ("http://169.254.169.254/latest/meta-data", "internal address"),
        ("http://10.1.2.3/hook", "internal address"),
        ("http://[::1]/hook", "internal address"),
        ("ftp://hooks.example.com/x", "http or https"),
        ("https://user:pass@hooks.example.com/x", "credentials"),
        ("https://no-such-host.invalid/x", "does not resolve"),
    ],
)
def test_endpoints_inside_the_network_and_malformed_urls_are_refused(
    api: ApiHarness, url: str, why: str
) -> None:
    refused = envelope(
        api.acme.post("/v1/webhooks", {"url": url, "events": ["run.completed"]}),
        422,
        "VALIDATION_ERROR",
    )
    assert why in refused["message"]
    assert refused["details"][0]["loc"] == ["body", "url"]
    assert api.acme.get("/v1/webhooks").json() == []


def test_a_cancelled_run_is_delivered_to_the_endpoints_that_asked(
    make_api: ApiFactory, receiver: tuple[Receiver, str]
) -> None:
    hook, url = receiver
    api = make_api(env={"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"})
    wanted = api.acme.post("/v1/webhooks", {"url": url, "events": ["run.cancelled"]}).json()
    api.acme.post("/v1/webhooks", {"url": url, "events": ["run.completed"]})  # not this one
    hook.secret = wanted["secret"]
    run_id = api.acme.post("/v1/runs", {"idea": IDEA}).json()["run_id"]
    assert api.acme.post(f"/v1/runs/{run_id}/cancel").status == 200

    api.stack.start_worker()  # it finds the webhook message the cancellation sent

    (seen,) = hook.wait_for(1)
    assert seen["valid"] and seen["body"]["type"] == "run.cancelled"
    data = seen["body"]["data"]
    assert (data["run_id"], data["status"], data["decision"]) == (run_id, "cancelled", None)
