"""Helpers shared by the test suite's fixtures and tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from consensus_engine.db.migrations import alembic_config
from consensus_engine.devtools.process import environ_without_settings

REPO_ROOT = Path(__file__).resolve().parents[2]

__all__ = ["REPO_ROOT", "alembic_config", "environ_without_settings", "run_cli"]


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``consensus-engine ARGS`` as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "consensus_engine.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )
