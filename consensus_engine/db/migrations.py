"""Run the Alembic migrations from code (``consensus-engine migrate``, the demo, the image).

The scripts ship inside the package, beside this module, so an installed wheel migrates
without a checkout. The configuration is built here rather than read from an ini file; the
repository's ``alembic.ini`` only serves the ``alembic`` command (``alembic revision``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from alembic import command
from alembic.config import Config

SCRIPTS = Path(__file__).resolve().parent / "alembic"


def _set(config: Config, option: str, value: str) -> None:
    # ConfigParser interpolation: a literal '%' must be doubled.
    config.set_main_option(option, value.replace("%", "%%"))


def alembic_config(url: str | None = None, *, sql_output: TextIO | None = None) -> Config:
    """The project's Alembic configuration; without ``url`` the settings choose the database.

    ``sql_output`` receives the SQL of offline (``--sql``) commands.
    """
    config = Config(output_buffer=sql_output)
    _set(config, "script_location", str(SCRIPTS))
    _set(config, "path_separator", "os")
    if url is not None:
        _set(config, "sqlalchemy.url", url)
    return config


def upgrade_head(url: str | None = None) -> None:
    """Bring the database to the newest schema; a no-op when it is there already."""
    command.upgrade(alembic_config(url), "head")
