"""``consensus-engine demo --serve``: the demo's stack kept running with the API and the web
app, the run's page and a key printed, everything stopped on Ctrl-C or SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support import environ_without_settings

from consensus_engine.devtools.loopback import ApiClient, answers_200, http_request

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_served_demo_shows_its_run_until_stopped(tmp_path: Path, stop: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "consensus_engine.cli", "demo", "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**environ_without_settings(), "PYTHONUNBUFFERED": "1"},
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        printed = []
        for line in process.stdout:
            printed.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(printed)
        page = re.search(r"^Web app: +(http://127\.0\.0\.1:\d+)/runs/([0-9a-f-]{36})$", text, re.M)
        key = re.search(r"^API key: +(\S+) +\(tenant 'demo'", text, re.M)
        worker = re.search(r"^Worker: .*\(pid (\d+),", text, re.M)
        assert page and key and worker, text + process.communicate(timeout=30)[1]
        base_url, run_id = page.groups()

        app = http_request(f"{base_url}/runs/{run_id}")
        assert app.status == 200 and b'<div id="root">' in app.body
        client = ApiClient(base_url, key[1])
        assert client.get("/v1/me").json() == {"tenant": "demo"}
        run = client.get(f"/v1/runs/{run_id}").json()
        assert run["status"] == "completed" and run["decision"] is not None

        process.send_signal(stop)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        assert not answers_200(f"{base_url}/health", timeout=1)
        assert not Path(f"/proc/{worker[1]}").exists()  # stopped, not left behind
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
