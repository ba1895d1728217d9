"""The web app: the single-page app built from ``web/`` into ``api/static``, served at ``/``.

It uses only the public ``/v1`` API, so serving it is files and one rule: a path that is not
the API's and not a file is one of the app's own pages, answered with ``index.html``. Hashed
assets are cached for good; the page itself never, so a deployment shows its new version.
"""

from __future__ import annotations

import functools
import gzip
import logging
import mimetypes
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

STATIC = Path(__file__).parent / "static"
# Paths that belong to the API: an unknown one there is a JSON 404, never the app's page.
API_PREFIXES = ("/v1", "/docs", "/redoc", "/openapi.json", "/health", "/ready", "/metrics")
# The app loads its own script and style and calls its own origin, nothing else.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
VARY = {"Vary": "Accept-Encoding"}  # caches keep the compressed and plain copies apart
ASSET_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
}

logger = logging.getLogger(__name__)


def built(static: Path = STATIC) -> bool:
    """Whether the app was built into the package (``make web``; the image always has it)."""
    return (static / "index.html").is_file()


def serve_web_app(app: FastAPI, static: Path = STATIC) -> bool:
    """Answer the app's files and pages on ``app``; False, and a log line, when it was not
    built. It is the router's fallback, so every route (added before or after) wins."""
    if not built(static):
        logger.warning("the web app is not built (make web); / serves nothing")
        return False
    root = static.resolve()
    not_found = app.router.default

    async def web_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            response = _answer(root, Request(scope, receive))
            if response is not None:
                await response(scope, receive, send)
                return
        await not_found(scope, receive, send)  # the API's JSON 404

    app.router.default = web_app
    return True


def _answer(root: Path, request: Request) -> Response | None:
    """A file of the build, the app's page for one of its own paths, or None."""
    path = request.url.path
    if path.startswith(API_PREFIXES):
        return None
    wanted = (root / path.lstrip("/")).resolve()
    if path != "/" and wanted.is_relative_to(root) and wanted.is_file():
        if wanted.parent.name != "assets":
            return FileResponse(wanted, headers=PAGE_HEADERS)
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(
                _gzipped(wanted),
                media_type=mimetypes.guess_type(wanted.name)[0],
                headers={**ASSET_HEADERS, **VARY, "Content-Encoding": "gzip"},
            )
        return FileResponse(wanted, headers={**ASSET_HEADERS, **VARY})
    if path.startswith("/assets/"):
        return None  # a stale hashed name: a page would not be a script
    return FileResponse(root / "index.html", headers=PAGE_HEADERS)


@functools.cache
def _gzipped(asset: Path) -> bytes:
    """An asset compressed once per process: its name is its content's hash, so it never
    changes while the process serves it (a third of the bytes for the app's script)."""
    return gzip.compress(asset.read_bytes(), compresslevel=9, mtime=0)
