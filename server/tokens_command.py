"""`tokens add|list|revoke`: the token file's lines, managed without ever storing a token itself."""

import argparse
import json
import os
import sys
from pathlib import Path

from mcp_server_sessions.store import InvalidInput
from mcp_server_sessions.store.limits import check_id

from .auth.token_file import add_token, read_token_file, revoke_tokens
from .cli import PROG, fail, refuse


def tokens_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"{PROG} tokens", description="Manage the bearer tokens of the HTTP server.")
    actions = parser.add_subparsers(dest="action", required=True)
    for name, text in (
        ("add", "create a random token for USER_ID, print it once on stdout and store its hash"),
        ("list", "show each token's user and hash prefix"),
        ("revoke", "remove every token of USER_ID"),
    ):
        action = actions.add_parser(name, help=text, description=text)
        if name != "list":
            action.add_argument("user_id", metavar="USER_ID")
        else:
            action.add_argument("--json", action="store_true", help="one JSON document")
        action.add_argument(
            "--tokens",
            default=os.environ.get("MCP_SESSIONS_TOKENS") or None,
            metavar="FILE",
            help="the token file (env MCP_SESSIONS_TOKENS)",
        )
    return parser


def tokens(argv: list[str]) -> None:
    args = tokens_parser().parse_args(argv)
    if not args.tokens:
        refuse("Name the token file with --tokens FILE (or MCP_SESSIONS_TOKENS).")
    path = Path(args.tokens).expanduser()
    try:
        _act(args, path)
    except OSError as exc:  # a directory, a path under a regular file, no permission...
        refuse(f"Cannot use {path} as the token file ({exc.strerror or exc}); name a file path you can write.")


def _act(args: argparse.Namespace, path: Path) -> None:
    if args.action == "list":
        _list(path, as_json=args.json)
        return
    try:
        check_id(args.user_id, "USER_ID")
    except InvalidInput as exc:
        refuse(str(exc))
    if args.action == "add":
        token = add_token(path, args.user_id)
        print(token, flush=True)  # alone on stdout, for a script to capture
        print(f"Added a token for {args.user_id} to {path}. It is shown only this once.", file=sys.stderr)
    else:
        removed = revoke_tokens(path, args.user_id)
        if not removed:
            fail(f"{path} has no token of {args.user_id}.")
        print(
            f"Revoked {removed} token(s) of {args.user_id}; the server refuses them from its next request.",
            file=sys.stderr,
        )


def _list(path: Path, *, as_json: bool) -> None:
    lines = read_token_file(path) if path.exists() else []
    if as_json:
        print(json.dumps({"tokens": [{"user_id": line.user_id, "sha256_prefix": line.sha256[:12]} for line in lines]}))
        return
    if not lines:
        print(f"{path} has no tokens.", file=sys.stderr)
    for line in lines:
        print(f"{line.user_id}\t{line.sha256[:12]}…")
