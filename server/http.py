"""Streamable HTTP: the SDK's stateless app at /mcp with bearer-token identity, /healthz, uvicorn."""

import contextlib
import dataclasses
import logging
import signal
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import anyio
import uvicorn
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcp_server_sessions.store import SessionStore

from .app import build_server, open_configured_store
from .auth.file_verifier import TokenFile
from .settings import HttpSettings, Settings

logger = logging.getLogger(__name__)

MCP_PATH = "/mcp"


def token_verifier(http: HttpSettings) -> TokenVerifier | None:
    """How bearer tokens are checked, or None for an anonymous loopback server."""
    if http.tokens:
        return TokenFile(http.tokens)
    if http.jwks_url:
        from .auth.jwt_tokens import JwtVerifier  # PyJWT and cryptography load only when used

        assert http.issuer and http.audience, "the command line requires --issuer and --audience with --jwks-url"
        return JwtVerifier(http.jwks_url, issuer=http.issuer, audience=http.audience, user_claim=http.user_claim)
    return None


def auth_settings(http: HttpSettings) -> AuthSettings:
    """The resource is the server's base URL, so its metadata is at /.well-known/oauth-protected-resource."""
    return AuthSettings(
        # A token file has no authorization server; the metadata then names this server itself.
        issuer_url=http.issuer or http.base_url,  # type: ignore[arg-type]  # pydantic parses the str
        resource_server_url=http.base_url,  # type: ignore[arg-type]
        validate_token_resource=False,  # the JWT verifier checks the audience itself
    )


def transport_security(http: HttpSettings) -> TransportSecuritySettings:
    """Host and Origin checks against DNS rebinding: loopback names by default, else what was configured."""
    hosts, origins = list(http.allowed_hosts), list(http.allowed_origins)
    if http.public_url:
        public = urlsplit(http.public_url)
        hosts.append(public.netloc)
        origins.append(f"{public.scheme}://{public.netloc}")
    if http.loopback:
        hosts += ["127.0.0.1:*", "localhost:*", "[::1]:*"]
        origins += ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if not hosts:
        logger.warning(
            "Host and Origin checks are off: give --allowed-hosts (or --public-url) with the names clients use "
            "to reach %s",
            http.host,
        )
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins)


def build_http_app(settings: Settings, store: SessionStore | None = None) -> Starlette:
    """The ASGI app: MCP at /mcp (stateless, token required unless anonymous), /healthz, resource metadata."""
    settings = dataclasses.replace(settings, transport="http")  # tools then take the user from the token
    http = settings.http
    if not (http.loopback or http.public_url):
        logger.warning(
            "Clients are told to fetch this server's metadata from %s, which only works if they reach it at "
            "that address: give --public-url with the URL clients use.",
            http.base_url,
        )
    verifier = token_verifier(http)
    server = build_server(settings, store, auth=auth_settings(http) if verifier else None, token_verifier=verifier)
    return streamable_app(server, http)


def streamable_app(server: MCPServer[Any], http: HttpSettings) -> Starlette:
    """`server` as the SDK's stateless streamable HTTP app at /mcp, with our limits and checks, and /healthz."""
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        max_request_body_size=http.max_body_bytes,
        transport_security=transport_security(http),
        host=http.host,
    )
    app.router.routes.append(Route("/healthz", healthz, methods=["GET"]))
    return app


async def healthz(_: Request) -> JSONResponse:
    # uvicorn listens only once the app's lifespan has opened the store, and stops listening before it closes.
    return JSONResponse({"status": "ok"})


def serve_http(settings: Settings) -> None:
    anyio.run(_serve_http, settings)


async def _serve_http(settings: Settings) -> None:
    # Opened before listening, so a bad --db fails at once with its sentence, not at the first request.
    store = await open_configured_store(settings)
    await GracefulServer(uvicorn_config(build_http_app(settings, store), settings.http, settings.log_level)).serve()


def uvicorn_config(app: Starlette, http: HttpSettings, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=http.host,
        port=http.port,
        log_level=log_level.lower(),
        timeout_graceful_shutdown=max(1, round(http.shutdown_timeout_s)),
        server_header=False,
        lifespan="on",
        log_config=None,  # our stderr logging, not uvicorn's (whose access log writes to stdout)
        access_log=log_level == "DEBUG",
    )


class GracefulServer(uvicorn.Server):
    """uvicorn, whose SIGTERM or SIGINT ends a graceful shutdown with exit status 0.

    uvicorn raises the signal it caught again once it has shut down, so the process would die of it
    (status 143) after finishing every request cleanly; a supervisor would report a crash.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)
