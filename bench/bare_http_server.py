"""The HTTP baseline: a bare MCPServer with one no-op tool on exactly our HTTP stack.

The same stateless streamable HTTP app from the SDK (SSE responses, the same body limit and Host /
Origin checks), the same bearer-token auth with the same `TokenFile` verifier (so auth costs both
servers alike), on uvicorn with our server's options. No store, no lifespan, no tools but `noop`.
Run: ``python -m bench.bare_http_server --port 8001 --tokens FILE``.
"""

from __future__ import annotations

import argparse
import contextlib

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette

from mcp_server_sessions.server.cli import configure_logging
from mcp_server_sessions.server.http import auth_settings, streamable_app, token_verifier, uvicorn_config
from mcp_server_sessions.server.settings import HttpSettings


def build_app(http: HttpSettings, log_level: str) -> Starlette:
    verifier = token_verifier(http)
    server: MCPServer[None] = MCPServer(
        "bare",
        log_level=log_level,  # type: ignore[arg-type]
        auth=auth_settings(http) if verifier else None,
        token_verifier=verifier,
    )

    @server.tool()
    def noop() -> str:
        """Do nothing."""
        return "ok"

    return streamable_app(server, http)


async def serve(http: HttpSettings, log_level: str) -> None:
    await uvicorn.Server(uvicorn_config(build_app(http, log_level), http, log_level)).serve()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", help="token file (as `serve --tokens`); without it, no auth")
    parser.add_argument("--log-level", default="INFO", type=str.upper)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    http = HttpSettings(host=args.host, port=args.port, tokens=args.tokens, allow_anonymous=not args.tokens)
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve, http, args.log_level)


if __name__ == "__main__":
    main()
