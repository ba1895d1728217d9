"""The ``consensus-engine`` command as a user runs it."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import environ_without_settings, run_cli


@pytest.fixture
def clean_env() -> dict[str, str]:
    return environ_without_settings()


def test_demo_runs_offline_and_says_so(clean_env: dict[str, str], tmp_path: Path) -> None:
    result = run_cli("demo", env=clean_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "SYNTHETIC" in result.stdout
    assert "Decision: " in result.stdout
    for persona in ("architect", "critic", "optimist", "security_guardian", "user_advocate"):
        assert f"review_{persona}" in result.stdout


def test_bad_setting_is_one_clear_line(clean_env: dict[str, str], tmp_path: Path) -> None:
    result = run_cli("demo", env={**clean_env, "WORKER_MAX_CONCURRENCY": "0"}, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "WORKER_MAX_CONCURRENCY" in result.stderr
    assert "Traceback" not in result.stderr


def test_empty_idea_is_refused(clean_env: dict[str, str], tmp_path: Path) -> None:
    result = run_cli("demo", "--idea", "   ", env=clean_env, cwd=tmp_path)
    assert result.returncode == 2
    assert "idea must not be empty" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_without_a_reachable_emulator_says_so(
    clean_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**clean_env, "PUBSUB_EMULATOR_HOST": "127.0.0.1:1"}
    result = run_cli("demo", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "no Pub/Sub emulator" in result.stderr and "127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr
