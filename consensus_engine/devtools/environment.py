"""The environment a child process of ours starts from."""

from __future__ import annotations

import os

from consensus_engine.settings import Settings


def environ_without_settings() -> dict[str, str]:
    """This process's environment minus every variable Settings reads, so only ours count."""
    names = {name.upper() for name in Settings.model_fields}
    return {key: value for key, value in os.environ.items() if key.upper() not in names}
