"""The versions a client may pin: ``X-Schema-Version`` and ``X-Prompt-Set-Version``.

Clients of the earlier system send the version of the documents they can read and of the
prompts whose reviews they expect. This server serves one of each
(``domain.schemas.SCHEMA_VERSION``, ``domain.prompts.PROMPT_SET_VERSION``): a request under
``/v1`` that names another is refused with 400 ``UNSUPPORTED_VERSION`` before any route
runs, instead of being answered in a shape, or by prompts, the client did not ask for. A
request without the headers (or with blank ones) pins nothing. ``ApiMiddleware`` applies
the check, so every ``/v1`` route has it, those added later too.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Scope

from consensus_engine.domain.prompts import PROMPT_SET_VERSION
from consensus_engine.domain.schemas import SCHEMA_VERSION

SERVED: dict[str, str] = {
    "X-Schema-Version": SCHEMA_VERSION,
    "X-Prompt-Set-Version": PROMPT_SET_VERSION,
}
"""Each header a client may send, and the one version this server serves for it."""

_PINNED = {name.lower().encode("latin-1"): name for name in SERVED}


@dataclass(frozen=True)
class UnsupportedVersion:
    header: str
    served: str

    @property
    def message(self) -> str:
        """Names the header and what is served; never repeats the client's value."""
        return f"{self.header} names a version this server does not serve; it serves {self.served}"

    @property
    def details(self) -> dict[str, str]:
        return {"header": self.header, "served": self.served}


def checked(path: str) -> bool:
    """Whether requests to ``path`` are checked: the versioned API, not probes or pages."""
    return path == "/v1" or path.startswith("/v1/")


def unsupported(scope: Scope) -> UnsupportedVersion | None:
    """The first pinned version the request names that is not served, if any."""
    for key, value in scope["headers"]:
        header = _PINNED.get(key.lower())
        pinned = value.decode("latin-1").strip()
        if header is not None and pinned and pinned != SERVED[header]:
            return UnsupportedVersion(header, SERVED[header])
    return None
