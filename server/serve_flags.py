"""`serve`: the stdio flags plus the transport, where to listen, and how HTTP requests prove their user."""

import argparse
import dataclasses
import os
from pathlib import Path

from pydantic import AnyHttpUrl, TypeAdapter, ValidationError

from .cli import PROG, add_store_flags, refuse, settings_from
from .settings import HttpSettings, Settings, is_loopback


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _list(text: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


def serve_parser() -> argparse.ArgumentParser:
    defaults = HttpSettings()
    parser = argparse.ArgumentParser(
        prog=f"{PROG} serve",
        description="Serve MCP over stdio (default) or streamable HTTP at /mcp with bearer-token identity.",
    )
    add_store_flags(parser)
    flag = parser.add_argument
    flag(
        "--transport",
        choices=("stdio", "http"),
        default=_env("MCP_SESSIONS_TRANSPORT") or "stdio",
        help="stdio, or http (env MCP_SESSIONS_TRANSPORT; default: %(default)s)",
    )
    flag(
        "--host",
        default=_env("MCP_SESSIONS_HOST") or defaults.host,
        help="HTTP: address to listen on (env MCP_SESSIONS_HOST; default: %(default)s)",
    )
    flag(
        "--port",
        default=_env("MCP_SESSIONS_PORT") or str(defaults.port),
        help="HTTP: port (env MCP_SESSIONS_PORT; default: %(default)s)",
    )
    flag(
        "--tokens",
        default=_env("MCP_SESSIONS_TOKENS"),
        metavar="FILE",
        help="HTTP: token file of `USER_ID SHA256_HEX` lines, re-read on change (env MCP_SESSIONS_TOKENS)",
    )
    flag(
        "--jwks-url",
        default=_env("MCP_SESSIONS_JWKS_URL"),
        help="HTTP: verify JWT access tokens with this JWKS (env MCP_SESSIONS_JWKS_URL)",
    )
    flag("--issuer", default=_env("MCP_SESSIONS_ISSUER"), help="HTTP: the JWTs' required `iss`")
    flag("--audience", default=_env("MCP_SESSIONS_AUDIENCE"), help="HTTP: the JWTs' required `aud`")
    flag(
        "--user-claim",
        default=_env("MCP_SESSIONS_USER_CLAIM") or defaults.user_claim,
        help="HTTP: the JWT claim that is the user_id (default: %(default)s)",
    )
    flag(
        "--allow-anonymous",
        action="store_true",
        help="HTTP on a loopback host only: no tokens, every request acts as --user",
    )
    flag(
        "--public-url",
        default=_env("MCP_SESSIONS_PUBLIC_URL"),
        help="HTTP: the URL clients use (behind a proxy), e.g. https://sessions.example.com",
    )
    flag(
        "--allowed-hosts",
        default=_env("MCP_SESSIONS_ALLOWED_HOSTS"),
        help="HTTP: comma-separated Host values accepted (host:* for any port); loopback names by default",
    )
    flag(
        "--allowed-origins",
        default=_env("MCP_SESSIONS_ALLOWED_ORIGINS"),
        help="HTTP: comma-separated Origin values accepted from browsers",
    )
    flag(
        "--max-body-bytes",
        type=int,
        default=defaults.max_body_bytes,
        help="HTTP: largest request body (default: %(default)s)",
    )
    flag(
        "--shutdown-timeout",
        type=float,
        default=defaults.shutdown_timeout_s,
        help="HTTP: seconds SIGTERM waits for requests in flight (default: %(default)s)",
    )
    return parser


def parse_serve(argv: list[str]) -> Settings:
    parser = serve_parser()
    args = parser.parse_args(argv)
    settings = settings_from(args, parser)
    if args.transport == "stdio":
        return settings
    http = HttpSettings(
        host=args.host,
        port=_port(args.port),
        tokens=args.tokens,
        jwks_url=args.jwks_url,
        issuer=args.issuer,
        audience=args.audience,
        user_claim=args.user_claim,
        allow_anonymous=args.allow_anonymous,
        public_url=args.public_url,
        allowed_hosts=_list(args.allowed_hosts),
        allowed_origins=_list(args.allowed_origins),
        max_body_bytes=args.max_body_bytes,
        shutdown_timeout_s=args.shutdown_timeout,
    )
    check_identity(http)
    return dataclasses.replace(settings, transport="http", http=http)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        refuse(f"--port (or MCP_SESSIONS_PORT) must be a number from 1 to 65535, not {text!r}.")
    return int(text)


def check_identity(http: HttpSettings) -> None:
    """Exactly one way to know a request's user, and anonymity only where no one else can connect."""
    if http.tokens and http.jwks_url:
        refuse("Give either --tokens or --jwks-url, not both: each request's user comes from one of them.")
    if http.allow_anonymous:
        if http.tokens or http.jwks_url:
            refuse("--allow-anonymous serves without tokens; drop it, or drop --tokens and --jwks-url.")
        if not is_loopback(http.host):
            refuse(f"--allow-anonymous is only for a loopback host (127.0.0.1, ::1, localhost), not {http.host}.")
        if http.public_url:
            refuse("--allow-anonymous is for this machine only; a --public-url would serve it to others.")
    elif not (http.tokens or http.jwks_url):
        refuse(
            "Over HTTP every request needs a bearer token: give --tokens FILE (see `tokens add`) or "
            "--jwks-url with --issuer and --audience, or --allow-anonymous on a loopback host."
        )
    if http.jwks_url and not (http.issuer and http.audience):
        refuse("--jwks-url needs --issuer and --audience, which every token's iss and aud must equal.")
    for flag, url in (("--public-url", http.public_url), ("--issuer", http.issuer), ("--jwks-url", http.jwks_url)):
        if url is not None and not _is_http_url(url):
            # Not quoted back: a URL may carry a password.
            refuse(f"{flag} must be an http:// or https:// URL, such as https://sessions.example.com.")
    if http.tokens and Path(http.tokens).expanduser().exists() and not Path(http.tokens).expanduser().is_file():
        refuse(f"The token file {http.tokens} is not a regular file; name the file `tokens add` writes.")
    if http.tokens and not Path(http.tokens).expanduser().is_file():
        refuse(
            f"The token file {http.tokens} does not exist; create it with `{PROG} tokens add USER_ID --tokens FILE`."
        )
    if http.max_body_bytes < 1024:
        refuse("--max-body-bytes must be at least 1024.")
    if http.shutdown_timeout_s < 0:
        refuse("--shutdown-timeout must be 0 or more seconds.")


def _is_http_url(text: str) -> bool:
    """As the SDK's settings will parse it (pydantic's AnyHttpUrl), so a URL passed here starts."""
    try:
        TypeAdapter(AnyHttpUrl).validate_python(text)
    except ValidationError:
        return False
    return True
