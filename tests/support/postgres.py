"""A PostgreSQL server for the test suite (scratch databases on it: ``devtools.database``).

The suite needs a real server (CHECK constraints, JSONB, ON DELETE behave
differently on SQLite). In order of preference: ``TEST_DATABASE_URL``; a server
already listening on 127.0.0.1:5432 with trust auth; a throwaway cluster made
with the local ``initdb`` and removed at the end of the session.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from consensus_engine.devtools.database import can_connect
from consensus_engine.devtools.process import free_port

LOCAL_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
INSTALL_HINT = (
    "The database tests need PostgreSQL. Set TEST_DATABASE_URL to a server's URL, "
    "run one on 127.0.0.1:5432 with trust auth for user 'postgres', or install the "
    "server binaries so the tests can start their own "
    "(Debian/Ubuntu: apt-get install postgresql; macOS: brew install postgresql)."
)


class NoPostgresError(RuntimeError):
    """No server is reachable and none can be started."""


@contextlib.contextmanager
def postgres_server(configured_url: str | None) -> Iterator[str]:
    """Yield the URL of a server the tests may create databases on."""
    if configured_url:
        if not can_connect(configured_url, timeout_s=5):
            shown = sa.make_url(configured_url).render_as_string(hide_password=True)
            raise NoPostgresError(f"TEST_DATABASE_URL ({shown}) does not accept connections")
        yield configured_url
        return
    if can_connect(LOCAL_SERVER_URL):
        yield LOCAL_SERVER_URL
        return
    with throwaway_cluster() as url:
        yield url


def find_server_binaries() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``, on PATH or in Debian's layout."""
    initdb = shutil.which("initdb")
    candidates = [Path(initdb).resolve().parent] if initdb else []
    versioned = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if d.parent.name.isdigit()]
    candidates += sorted(versioned, key=lambda bindir: int(bindir.parent.name), reverse=True)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    raise NoPostgresError(f"no PostgreSQL server is reachable and no initdb found. {INSTALL_HINT}")


def _run_as_prefix() -> list[str]:
    """initdb refuses to run as root; run the server tools as the 'postgres' user then."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise NoPostgresError(
            "running as root, and initdb refuses root without a 'postgres' OS user to "
            f"switch to. {INSTALL_HINT}"
        ) from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise NoPostgresError("running as root and 'runuser' is missing; cannot start initdb")
    return [runuser, "-u", "postgres", "--"]


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        raise NoPostgresError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[str]:
    """initdb a cluster in a temporary directory, start it on a free port, remove it after."""
    bindir = find_server_binaries()
    prefix = _run_as_prefix()
    # Not pytest's tmp_path: its parents are private to root, and the server may run as
    # 'postgres'. A directory of its own under /tmp is reachable once chowned.
    root = Path(tempfile.mkdtemp(prefix="ce-pg-"))
    if prefix:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
    data = root / "data"
    pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data)]
    try:
        _run([
            *prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
            "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync",
        ])  # fmt: skip
        for attempt in range(3):  # on another port if a concurrent process took ours
            port = free_port()
            options = (
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                _run([*pg_ctl, "-l", str(root / "server.log"), "-o", options, "-w", "start"])
                break
            except NoPostgresError:
                if attempt == 2:
                    raise
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            stop = [*pg_ctl, "-m", "immediate", "-w", "stop"]
            subprocess.run(stop, capture_output=True, check=False, timeout=60)
    finally:
        shutil.rmtree(root, ignore_errors=True)
