"""What pyproject.toml declares is installed, every module imports, and the command runs.

The suite runs this file in the environment made from uv.lock, where each requirement
must be installed within its range. ``make lowest`` runs it again, with
EXPECT_LOWEST_VERSIONS=1, in an environment that uv installed with the lowest versions
allowed (``--resolution lowest-direct``): there each must sit exactly on its floor, so a
floor that cannot be installed (another package needs more) fails here instead of naming
a version nobody tested.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import sqlalchemy as sa
from declared import DEV, RUNTIME, floor
from packaging.requirements import Requirement
from packaging.version import Version
from support import environ_without_settings

import brokers
import consensus_engine

EXPECT_LOWEST = os.environ.get("EXPECT_LOWEST_VERSIONS") == "1"
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("requirement", RUNTIME + DEV, ids=str)
def test_each_requirement_is_installed_within_its_range(requirement: Requirement) -> None:
    lowest = floor(requirement)
    assert lowest is not None, f"{requirement}: give it a lower bound (>= or ==)"
    installed = Version(version(requirement.name))
    assert requirement.specifier.contains(installed, prereleases=True), (
        f"{requirement.name} {installed} is outside {requirement.specifier}"
    )
    if EXPECT_LOWEST:
        assert installed == lowest, (
            f"{requirement.name}: the lowest install got {installed}, not the floor {lowest}; "
            "raise the floor in pyproject.toml to a version that installs with the others"
        )


def _modules() -> list[str]:
    """Every module of both packages; ``__main__`` modules would run, not just import."""
    found = []
    for package in (consensus_engine, brokers):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if not module.name.endswith(".__main__"):
                found.append(module.name)
    return found


# consensus_engine.actors reads the settings when imported (a worker's): enough to import.
IMPORT_SETTINGS = {
    **environ_without_settings(),
    "PUBSUB_USE_MOCK": "true",
    "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
}
IMPORT_EACH = """
import importlib, json, sys, traceback
failures = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        failures[name] = traceback.format_exc(limit=-3)
print(json.dumps(failures))
"""


def test_every_module_imports() -> None:
    modules = _modules()
    assert {"consensus_engine.cli", "brokers.pubsub.broker", "consensus_engine.api.app"} <= set(
        modules
    )
    # A fresh interpreter: one module's import must not lean on another already loaded.
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_EACH, *modules],
        capture_output=True,
        text=True,
        env=IMPORT_SETTINGS,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    failures = json.loads(result.stdout.splitlines()[-1])
    assert failures == {}, "\n".join(failures.values())


def test_the_installed_command_migrates_a_database(tmp_path: Path) -> None:
    database = tmp_path / "smoke.db"
    env = {**environ_without_settings(), "DATABASE_URL": f"sqlite:///{database}"}
    command = str(BIN / "consensus-engine")

    usage = subprocess.run(
        [command, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert usage.returncode == 0, usage.stderr
    assert "migrate" in usage.stdout

    migrated = subprocess.run(
        [command, "migrate"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert "database schema is at head" in migrated.stdout
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"alembic_version", "runs"} <= tables
