"""The synchronous convenience endpoints: expand an idea, or review it, within one request."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["synchronous"])
