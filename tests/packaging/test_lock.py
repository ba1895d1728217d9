"""uv.lock is the one lock, for runtime and development, and it matches pyproject.toml.

``uv lock --check`` compares the requirements pyproject.toml declares with those the lock
recorded for the project; with ``--offline`` it never asks the index, so a stale lock fails
here on any machine. The uv that installs from the lock is pinned in three places that must
agree: the Makefile's bootstrap, the dev extra (so ``uv sync`` keeps it) and the image.
"""

from __future__ import annotations

import re
import subprocess
import tomllib

from declared import DEV, ROOT
from uv import find_uv_bin


def test_the_lock_matches_pyproject() -> None:
    result = subprocess.run(
        [find_uv_bin(), "lock", "--check", "--offline"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"uv.lock is out of date: run `make lock`\n{result.stderr}"


def _pinned(pattern: str, file: str) -> str:
    match = re.search(pattern, (ROOT / file).read_text(), re.MULTILINE)
    assert match, f"{file}: no uv pin ({pattern})"
    return match.group(1)


def test_one_uv_version_everywhere() -> None:
    (dev_pin,) = [str(r.specifier) for r in DEV if r.name == "uv"]
    locked = {
        package["name"]: package["version"]
        for package in tomllib.loads((ROOT / "uv.lock").read_text())["package"]
    }
    versions = {
        "pyproject dev extra": dev_pin.removeprefix("=="),
        "uv.lock": locked["uv"],
        "Makefile": _pinned(r"^UV_VERSION := (\S+)$", "Makefile"),
        "Dockerfile": _pinned(r"pip install --no-cache-dir uv==(\S+)", "Dockerfile"),
    }
    assert len(set(versions.values())) == 1, versions
