"""Helpers shared by the test suite's fixtures and tests."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from alembic.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]


def alembic_config(url: str, *, sql_output: TextIO | None = None) -> Config:
    """The repository's Alembic configuration, aimed at ``url``, leaving logging alone.

    ``sql_output`` receives the SQL of offline (``sql=True``) commands.
    """
    config = Config(str(REPO_ROOT / "alembic.ini"), output_buffer=sql_output)
    # Config values go through ConfigParser interpolation: a literal '%' must be doubled.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logging"] = False
    return config
