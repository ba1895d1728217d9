"""The web app: the single-page app built from ``web/`` into ``api/static``, served at ``/``.

It uses only the public ``/v1`` API, so serving it is files and one rule: a path that is not
the API's and not a file is one of the app's own pages, answered with ``index.html``. Hashed
assets are cached for good; the page itself never, so a deployment shows its new version.

``/`` itself answers by what the client accepts: a client that prefers JSON (the earlier
system's clients, scripts) gets the service's name, versions and links; a browser gets the
app (or a 404 where it is not served).
"""

from __future__ import annotations

import functools
import gzip
import logging
import mimetypes
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from consensus_engine.domain.prompts import PROMPT_SET_VERSION
from consensus_engine.domain.schemas import SCHEMA_VERSION

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
    app.state.web_app_root = root  # for ``/``: a browser gets the app's page there
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


# -- the root -----------------------------------------------------------------------------------

router = APIRouter()
"""``/``: the service's description as JSON, or the app's page."""


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def service_root(request: Request) -> Response:
    """JSON to a client that prefers it to HTML; otherwise the app, where it is served."""
    vary = {"Vary": "Accept"}  # one URL, two answers: caches must keep them apart
    if prefers_json(request.headers.get("accept")):
        return JSONResponse(description(request.app), headers={"Cache-Control": "no-cache", **vary})
    root: Path | None = getattr(request.app.state, "web_app_root", None)
    if root is None:
        raise HTTPException(404)
    return FileResponse(root / "index.html", headers={**PAGE_HEADERS, **vary})


def description(app: FastAPI) -> dict[str, object]:
    """The service's name, the versions it serves, and where to go next."""
    links = {"runs": "/v1/runs", "health": "/health", "ready": "/ready"}
    if app.docs_url is not None:
        links["docs"] = app.docs_url
    if app.openapi_url is not None:
        links["openapi"] = app.openapi_url
    if getattr(app.state, "web_app_root", None) is not None:
        links["web_app"] = "/"
    return {
        "name": app.title,
        "version": app.version,
        "schema_version": SCHEMA_VERSION,
        "prompt_set_version": PROMPT_SET_VERSION,
        "links": links,
    }


_JSON = ("application/json", "application/*", "*/*")
_HTML = ("text/html", "text/*", "*/*")


def prefers_json(accept: str | None) -> bool:
    """Whether ``accept`` ranks JSON above HTML: by quality, then by how exactly it names
    the type (``application/json`` beats ``*/*``). Ties, and no header, mean HTML."""
    ranges = _media_ranges(accept or "")
    return _rank(ranges, _JSON) > _rank(ranges, _HTML)


def _media_ranges(accept: str) -> dict[str, float]:
    """Each media range of an ``Accept`` header and its quality (1 unless ``q=`` says)."""
    ranges: dict[str, float] = {}
    for part in accept.split(","):
        media, *parameters = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        if media:
            ranges[media.lower()] = quality
    return ranges


def _rank(ranges: dict[str, float], names: tuple[str, ...]) -> tuple[float, int]:
    """The quality the most specific range naming the type gives it, and how specific that
    range is (2: exact, 1: subtype wildcard, 0: ``*/*``); ``(0, -1)`` when none does."""
    for specificity, name in zip((2, 1, 0), names, strict=True):
        if name in ranges:
            return ranges[name], specificity
    return 0.0, -1
