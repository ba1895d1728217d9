"""An MCP server (``consensus-engine mcp``): the engine's public API as tools for agents.

Coding agents and chat clients that speak the Model Context Protocol call the engine here
instead of holding an HTTP client of their own. Every tool goes through the public HTTP API
(``consensus_engine.client``) with the caller's key, so the server sees and may do exactly
what that key may, nothing more. ``server.run`` serves it over stdio or streamable HTTP.
"""
