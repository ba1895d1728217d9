"""``consensus-engine mcp``: the MCP server, over stdio or streamable HTTP.

stdio is for a client that launches the server itself (an IDE, a desktop assistant): the
key comes from the command's environment. Streamable HTTP serves ``/mcp`` on ``host:port``,
loopback unless told otherwise; each client sends its own bearer key there, and the
server's key stands in for a missing one only on loopback.
"""

from __future__ import annotations

from typing import Literal

from mcp.server.mcpserver import MCPServer

from consensus_engine.cli import package_version
from consensus_engine.client import UsageError
from consensus_engine.hosts import is_loopback
from consensus_engine.mcp.gateway import Gateway
from consensus_engine.mcp.tools import register

TRANSPORTS = ("stdio", "streamable-http")
"""What ``run`` serves; ``http`` is accepted as another name for ``streamable-http``."""
HTTP_PATH = "/mcp"

INSTRUCTIONS = (
    "The consensus engine turns a rough idea into a reviewed decision: an LLM expands it "
    "into a proposal, a panel of personas reviews it, and fixed rules aggregate their "
    "reviews into approve, revise or reject. Call submit_and_wait with the idea; keep the "
    "run id it returns for get_run (full reviews), revise (edit and review again) and "
    "compare (what changed). list_runs finds earlier runs. Errors carry the API's code."
)


def build_server(
    api_url: str, api_key: str | None, *, log_level: Literal["INFO", "WARNING"] = "WARNING"
) -> MCPServer:
    """The server with its tools; raises :class:`UsageError` for a malformed ``api_url``.

    Logs go to stderr (stdout is the stdio transport's); over HTTP ``INFO`` also names the
    address served.
    """
    server = MCPServer(
        "consensus-engine",
        title="Consensus Engine",
        instructions=INSTRUCTIONS,
        version=package_version(),
        log_level=log_level,
    )
    register(server, Gateway(api_url, api_key))
    return server


def http_fallback_key(host: str, api_key: str | None) -> str | None:
    """The key for HTTP requests that bring none: the server's own only on loopback.

    Anyone who can reach a server on another address would otherwise act with the rights
    of whoever started it (``API_KEY`` is often simply exported in the shell).
    """
    return api_key if is_loopback(host) else None


def run(transport: str, host: str, port: int, api_url: str, api_key: str | None) -> None:
    """Serve until the client disconnects (stdio) or the process is stopped (HTTP)."""
    name = "streamable-http" if transport == "http" else transport
    if name not in TRANSPORTS:
        raise UsageError(f"unknown MCP transport {transport!r}; use one of {', '.join(TRANSPORTS)}")
    if name == "stdio":
        build_server(api_url, api_key).run("stdio")
        return
    server = build_server(api_url, http_fallback_key(host, api_key), log_level="INFO")
    server.run("streamable-http", host=host, port=port, streamable_http_path=HTTP_PATH)
