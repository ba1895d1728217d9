"""The embedded Pub/Sub server as a user meets it: the demo's fallback when Google's
emulator is missing, and ``consensus-engine pubsub serve``."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import environ_without_settings, run_cli
from support.pubsub import publisher_client, subscriber_client

from consensus_engine.devtools.local_pubsub import accepts_grpc
from consensus_engine.devtools.pubsub_server import EmbeddedPubSubServer

pytestmark = pytest.mark.timeout(180)
PROJECT = "projects/serve-test"
EXPORT = re.compile(r"export PUBSUB_EMULATOR_HOST=(\S+)")


def _without_java(tmp_path: Path) -> dict[str, str]:
    """Our environment, no settings, and a PATH where no ``java`` is found."""
    empty = tmp_path / "bin"
    empty.mkdir()
    return {**environ_without_settings(), "PATH": str(empty)}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``consensus-engine pubsub serve --port 0`` and the address it says to export."""
    process = subprocess.Popen(
        [sys.executable, "-m", "consensus_engine.cli", "pubsub", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ_without_settings(),
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        found = next(filter(None, map(EXPORT.search, process.stdout)), None)
        assert found is not None, process.communicate(timeout=10)
        yield process, found[1]
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def test_the_demo_completes_on_the_embedded_server_without_java(tmp_path: Path) -> None:
    result = run_cli("demo", env=_without_java(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(
        r"^Pub/Sub: +the embedded server on 127\.0\.0\.1:\d+ "
        r"\(Google's emulator not found: no java on PATH\)$",
        result.stdout,
        re.MULTILINE,
    ), result.stdout
    assert "Decision: " in result.stdout


def test_serve_answers_publish_and_pull_and_stops_on_sigterm(
    served: tuple[subprocess.Popen[str], str],
) -> None:
    process, host = served
    publisher, subscriber = publisher_client(host), subscriber_client(host)
    try:
        topic = publisher.create_topic(name=f"{PROJECT}/topics/jobs").name
        sub = f"{PROJECT}/subscriptions/jobs-sub"
        subscriber.create_subscription(name=sub, topic=topic)
        publisher.publish(topic, b"hello", kind="greeting").result(timeout=10)
        response = subscriber.pull(subscription=sub, max_messages=10, timeout=10)
        [received] = response.received_messages
        assert (received.message.data, received.message.attributes["kind"]) == (
            b"hello",
            "greeting",
        )
        subscriber.acknowledge(subscription=sub, ack_ids=[received.ack_id])
    finally:
        subscriber.close()
        publisher.stop()

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert not accepts_grpc(host, timeout_s=0.5)


def test_the_demo_uses_an_explicit_emulator_host_even_the_served_one(
    served: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    _, host = served
    env = {**_without_java(tmp_path), "PUBSUB_EMULATOR_HOST": host}
    result = run_cli("demo", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"Pub/Sub:  PUBSUB_EMULATOR_HOST={host}\n" in result.stdout
    assert "Decision: " in result.stdout


def test_serve_on_a_taken_port_says_so_in_one_line(tmp_path: Path) -> None:
    with EmbeddedPubSubServer() as taken:
        port = taken.address.rpartition(":")[2]
        result = run_cli(
            "pubsub", "serve", "--port", port, env=environ_without_settings(), cwd=tmp_path
        )
    assert result.returncode == 1
    assert f"consensus-engine: cannot listen on 127.0.0.1:{port} (" in result.stderr
    assert "Traceback" not in result.stderr
