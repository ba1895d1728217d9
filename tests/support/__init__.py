"""Helpers shared by the test suite's fixtures and tests."""

from __future__ import annotations

from pathlib import Path

from consensus_engine.db.migrations import alembic_config

REPO_ROOT = Path(__file__).resolve().parents[2]

__all__ = ["REPO_ROOT", "alembic_config"]
