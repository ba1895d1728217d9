"""The wheel works on its own: installed outside the checkout, it migrates and runs the demo.

The wheel is built from this tree and installed into a fresh virtualenv in a temporary
directory, with the runtime dependencies of uv.lock (hashes checked; uv takes them from its
cache when it has them). The commands run from another temporary directory, so nothing of
the checkout (alembic.ini, the scripts, the sources) can stand in for what the wheel lacks.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from declared import PROJECT, ROOT
from support import environ_without_settings
from uv import find_uv_bin

UV = find_uv_bin()
DIST_INFO = f"consensus_engine-{PROJECT['version']}.dist-info"


def _run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin directory of a virtualenv holding the wheel and the locked runtime packages."""
    work = tmp_path_factory.mktemp("wheel")
    # The wheel is built from the sdist, as an index user's would be, and away from the
    # checkout: no stale build/ directory can slip files into it.
    _run(UV, "build", "--quiet", "--out-dir", work / "dist", ROOT, cwd=ROOT)
    (wheel,) = (work / "dist").glob("consensus_engine-*.whl")
    requirements = work / "requirements.txt"
    export = ("export", "--frozen", "--no-emit-project", "--quiet", "--output-file")
    _run(UV, *export, requirements, cwd=ROOT)
    venv = work / "venv"
    _run(UV, "venv", "--quiet", "--python", sys.executable, venv, cwd=work)
    install = (UV, "pip", "install", "--quiet", "--python", venv / "bin" / "python")
    _run(*install, "--require-hashes", "-r", requirements, cwd=work)
    _run(*install, "--no-deps", wheel, cwd=work)
    return venv / "bin"


def test_the_wheel_holds_the_migrations(installed: Path, tmp_path: Path) -> None:
    location = _run(
        installed / "python",
        "-c",
        "import consensus_engine.db.migrations as m; print(m.SCRIPTS)",
        cwd=tmp_path,
    )
    scripts = Path(location.strip())
    assert not scripts.is_relative_to(ROOT)  # the installed copy, not the checkout
    assert (scripts / "env.py").is_file()
    assert (scripts / "script.py.mako").is_file()
    assert sorted(p.name for p in (scripts / "versions").glob("*.py")) == sorted(
        p.name for p in (ROOT / "consensus_engine/db/alembic/versions").glob("*.py")
    )


def test_the_wheel_carries_the_licence(installed: Path) -> None:
    (wheel,) = (installed.parents[1] / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        licence = archive.read(f"{DIST_INFO}/licenses/LICENSE").decode()
        metadata = archive.read(f"{DIST_INFO}/METADATA").decode()
    assert licence == (ROOT / "LICENSE").read_text()
    assert "License-Expression: Apache-2.0" in metadata


def test_the_installed_command_migrates_a_fresh_database(
    installed: Path, make_database: Callable[[], str], tmp_path: Path
) -> None:
    url = make_database()
    env = {**environ_without_settings(), "DATABASE_URL": url}
    output = _run(installed / "consensus-engine", "migrate", cwd=tmp_path, env=env)
    assert "database schema is at head" in output
    engine = sa.create_engine(url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"alembic_version", "runs"} <= tables


def test_the_installed_demo_reaches_a_decision(installed: Path, tmp_path: Path) -> None:
    output = _run(
        installed / "consensus-engine", "demo", cwd=tmp_path, env=environ_without_settings()
    )
    assert "Decision: " in output
