"""``consensus-engine webhooks …`` as a user runs it, against a real API and worker: register
an endpoint (the secret printed once), see a run's delivery and its attempts, deliver it
again, change, rotate and delete the endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from api import conftest as api_fixtures
from api.conftest import ApiFactory, ApiHarness
from support import environ_without_settings, run_cli
from support.receiver import serving

make_api = api_fixtures.make_api  # the API served over a pipeline stack, shared with tests/api


def cli(api: ApiHarness, tmp_path: Path, *args: str) -> Any:
    env = environ_without_settings() | {"API_URL": api.base_url, "API_KEY": api.keys["acme"]}
    result = run_cli(*args, "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def test_webhooks_from_the_command_line(make_api: ApiFactory, tmp_path: Path) -> None:
    api = make_api(env={"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"})
    with serving() as (hook, url):
        made = cli(api, tmp_path, "webhooks", "create", url, "--events", "run.completed")
        hook.secret = made["secret"]
        endpoint = made["id"]
        assert [e["id"] for e in cli(api, tmp_path, "webhooks", "list")] == [endpoint]
        assert "secret" not in cli(api, tmp_path, "webhooks", "list")[0]
        api.stack.start_worker()

        run_id = cli(api, tmp_path, "submit", "A tool library for one street.", "--wait")["run_id"]
        (first,) = hook.wait_for(1)
        assert first["valid"] and first["body"]["data"]["run_id"] == run_id
        (delivery,) = cli(api, tmp_path, "webhooks", "deliveries", endpoint)["deliveries"]
        assert delivery["webhook_id"] == first["id"]
        cli(api, tmp_path, "webhooks", "redeliver", endpoint, delivery["id"])
        assert hook.wait_for(2)[1]["id"] == first["id"]

    changed = cli(api, tmp_path, "webhooks", "update", endpoint, "--disable")
    assert changed["enabled"] is False
    rotated = cli(api, tmp_path, "webhooks", "rotate-secret", endpoint)["secret"]
    assert rotated != made["secret"]
    cli(api, tmp_path, "webhooks", "delete", endpoint)
    assert cli(api, tmp_path, "webhooks", "list") == []
