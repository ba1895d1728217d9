"""Every package the code imports is declared in pyproject.toml, not merely pulled in.

A package that arrives only as another one's dependency can vanish or change range when
that one is upgraded. The import statements of consensus_engine/ and brokers/ (the wheel)
must resolve to runtime requirements; those of tests/ and bench/ to runtime or dev ones.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterator
from functools import cache
from importlib.metadata import distributions
from pathlib import Path

import pytest
from declared import DEV, ROOT, RUNTIME, names
from packaging.utils import NormalizedName, canonicalize_name

# Developer tools inside the package, never run by the service or the demo, may use dev
# requirements: (module, distribution) pairs.
DEV_TOOLS_IN_PACKAGE = {
    # process trees of the benchmarks' and tests' child processes, imported lazily
    ("consensus_engine/devtools/process.py", canonicalize_name("psutil")),
    # the chart README generator, run by maintainers and the chart tests
    ("consensus_engine/devtools/chart_docs.py", canonicalize_name("pyyaml")),
}
SCANNED = ("consensus_engine", "brokers", "tests", "bench")


def _imported_names(directory: Path) -> Iterator[tuple[str, str]]:
    """(file, dotted name) for each name an absolute import may refer to: ``from a import b``
    gives a.b, then a."""
    for path in directory.rglob("*.py"):
        module = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                yield from ((module, alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield from ((module, f"{node.module}.{alias.name}") for alias in node.names)
                yield module, node.module


@cache
def _owners() -> dict[Path, NormalizedName]:
    """Installed file → the distribution that installed it."""
    owners = {}
    for dist in distributions():
        for file in dist.files or ():
            owners[Path(str(dist.locate_file(file))).resolve()] = canonicalize_name(
                dist.metadata["Name"]
            )
    return owners


def _provider(name: str) -> NormalizedName | None:
    """The distribution a module comes from; None for the standard library, our own code,
    a namespace package or a name that is no module (``from a import function``)."""
    if name.partition(".")[0] in sys.stdlib_module_names:
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ModuleNotFoundError, ValueError):  # ValueError: a loaded module without __spec__
        return None
    if spec is None or spec.origin is None or not Path(spec.origin).is_file():
        return None
    origin = Path(spec.origin).resolve()
    if any(origin.is_relative_to(ROOT / ours) for ours in SCANNED):
        return None
    owner = _owners().get(origin)
    assert owner is not None, f"{name} ({origin}) belongs to no installed distribution"
    return owner


def _providers(*directories: str) -> set[tuple[str, NormalizedName]]:
    """(file, distribution) for every import of a third-party distribution."""
    found = set()
    for directory in directories:
        for module, name in _imported_names(ROOT / directory):
            owner = _provider(name)
            if owner is not None:
                found.add((module, owner))
    return found


def test_the_wheel_imports_only_runtime_requirements() -> None:
    providers = _providers("consensus_engine", "brokers")
    assert {"fastapi", "starlette", "grpcio", "protobuf", "google-auth"} <= {
        owner for _, owner in providers
    }
    undeclared = providers - DEV_TOOLS_IN_PACKAGE
    undeclared = {(module, owner) for module, owner in undeclared if owner not in names(RUNTIME)}
    assert not undeclared, f"imported but not runtime requirements: {sorted(undeclared)}"


@pytest.mark.parametrize("directory", ["tests", "bench"])
def test_tests_and_benchmarks_import_only_declared_requirements(directory: str) -> None:
    declared = names(RUNTIME) | names(DEV)
    undeclared = {(file, owner) for file, owner in _providers(directory) if owner not in declared}
    assert not undeclared, f"imported but not declared: {sorted(undeclared)}"


def test_the_dev_tools_use_dev_requirements() -> None:
    assert names(DEV) >= {owner for _, owner in DEV_TOOLS_IN_PACKAGE}
