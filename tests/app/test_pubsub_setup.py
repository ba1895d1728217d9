"""``consensus-engine pubsub setup`` against the emulator: creates, then changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from support import environ_without_settings, run_cli
from support.pubsub import subscriber_client


class Emulator(Protocol):
    host: str


def _setup(env: dict[str, str], cwd: Path) -> list[str]:
    result = run_cli("pubsub", "setup", env=env, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_setup_is_idempotent_and_applies_the_ack_deadline(
    pubsub_emulator: Emulator, pubsub_namespace: str, tmp_path: Path
) -> None:
    env = environ_without_settings()
    project = f"proj-{pubsub_namespace}"
    env |= {
        "PUBSUB_EMULATOR_HOST": pubsub_emulator.host,
        "PUBSUB_PROJECT_ID": project,
        "WORKER_ACK_DEADLINE_SECONDS": "120",
    }

    first = _setup(env, tmp_path)
    assert f"created topic projects/{project}/topics/consensus-engine-jobs" in first
    assert f"created topic projects/{project}/topics/consensus-engine-jobs-dlq" in first
    for subscription in (
        "consensus-engine-jobs-sub",
        "consensus-engine-jobs-high-sub",
        "consensus-engine-jobs.DQ-sub",
    ):
        assert f"created subscription projects/{project}/subscriptions/{subscription}" in first

    second = _setup(env, tmp_path)
    assert len(second) == len(first)
    assert all(line.startswith("unchanged ") for line in second), second

    env["WORKER_ACK_DEADLINE_SECONDS"] = "300"
    third = _setup(env, tmp_path)
    path = f"projects/{project}/subscriptions/consensus-engine-jobs-sub"
    assert f"updated subscription {path} (ack_deadline_seconds)" in third

    subscriber = subscriber_client(pubsub_emulator.host)
    try:
        subscription = subscriber.get_subscription(request={"subscription": path})
    finally:
        subscriber.close()
    assert subscription.ack_deadline_seconds == 300
    assert subscription.topic == f"projects/{project}/topics/consensus-engine-jobs"
    assert subscription.dead_letter_policy.max_delivery_attempts == 5
    assert subscription.dead_letter_policy.dead_letter_topic.endswith("consensus-engine-jobs-dlq")


def test_setup_reports_an_unreachable_server_in_one_line(tmp_path: Path) -> None:
    env = environ_without_settings()
    env |= {
        "PUBSUB_EMULATOR_HOST": "127.0.0.1:1",
        "PUBSUB_PUBLISH_TIMEOUT_SECONDS": "2",
    }
    result = run_cli("pubsub", "setup", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "Pub/Sub refused or did not answer" in result.stderr
    assert "Traceback" not in result.stderr
