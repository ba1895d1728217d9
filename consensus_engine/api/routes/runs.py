"""Runs: submit, list, show, follow, revise, compare, cancel, retry."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["runs"])
