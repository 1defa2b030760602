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
from starlette.routing import Route

from mcp_server_sessions.server.cli import configure_logging
from mcp_server_sessions.server.http import MCP_PATH, auth_settings, healthz, token_verifier, transport_security
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

    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        max_request_body_size=http.max_body_bytes,
        transport_security=transport_security(http),
        host=http.host,
    )
    app.router.routes.append(Route("/healthz", healthz, methods=["GET"]))
    return app


async def serve(http: HttpSettings, log_level: str) -> None:
    # The options of mcp_server_sessions.server.http._serve_http.
    config = uvicorn.Config(
        build_app(http, log_level),
        host=http.host,
        port=http.port,
        log_level=log_level.lower(),
        timeout_graceful_shutdown=max(1, round(http.shutdown_timeout_s)),
        server_header=False,
        lifespan="on",
        log_config=None,
        access_log=log_level == "DEBUG",
    )
    await uvicorn.Server(config).serve()


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
