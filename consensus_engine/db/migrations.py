"""Run the Alembic migrations from code (``consensus-engine migrate``, the demo, the image)."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from alembic import command
from alembic.config import Config

_ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def alembic_config(url: str | None = None, *, sql_output: TextIO | None = None) -> Config:
    """The project's Alembic configuration; without ``url`` the settings choose the database.

    ``sql_output`` receives the SQL of offline (``--sql``) commands.
    """
    if not _ALEMBIC_INI.is_file():
        raise RuntimeError(
            f"alembic.ini not found at {_ALEMBIC_INI}; run from a checkout or the Docker image"
        )
    config = Config(str(_ALEMBIC_INI), output_buffer=sql_output)
    if url is not None:
        # ConfigParser interpolation: a literal '%' must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config


def upgrade_head(url: str | None = None) -> None:
    """Bring the database to the newest schema; a no-op when it is there already."""
    command.upgrade(alembic_config(url), "head")
