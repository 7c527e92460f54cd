"""``discovery-router login NAME [--no-browser]`` and ``logout NAME``: shells over :mod:`discovery_router.upstreams.oauth`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from discovery_router.cli.output import EXIT_FAILURE, EXIT_OK
from discovery_router.config.loader import load_config
from discovery_router.config.model import ServerConfig
from discovery_router.errors import RouterError, UnknownServerError
from discovery_router.governance.redact import redact_logs
from discovery_router.upstreams import oauth


def register(sub: Any) -> None:
    login = sub.add_parser(
        "login",
        help='log in to an "auth": "oauth" server (authorization code + PKCE); '
        "the tokens are kept in the OS keyring, or a private file",
    )
    login.add_argument("name", help="the server's name in the config")
    login.add_argument(
        "--no-browser",
        action="store_true",
        help="print the authorization URL instead of opening a browser (SSH, scripts)",
    )
    login.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long to wait for the browser to come back (default 300)",
    )
    login.set_defaults(handler=cmd_login)
    logout = sub.add_parser("logout", help="forget an OAuth server's stored tokens")
    logout.add_argument("name")
    logout.set_defaults(handler=cmd_logout)


def _server(args: argparse.Namespace) -> tuple[ServerConfig, Any]:
    config = load_config(args.config, missing_ok=args.config is None)
    server = config.servers.get(args.name)
    if server is None:
        known = ", ".join(config.servers) or "none"
        raise UnknownServerError(f"no server {args.name!r} in {config.path} (configured: {known})")
    if server.error is not None:
        raise RouterError(server.error)
    return server, config.redactor


def cmd_login(args: argparse.Namespace) -> int:
    server, redactor = _server(args)
    redact_logs(redactor)  # the tokens join it as they arrive

    def show_url(url: str, opened: bool) -> None:
        if opened:
            print(f"Opened a browser to log in to {server.name}. If it did not appear, open this URL:", file=sys.stderr)
        else:
            print(f"Open this URL in a browser to log in to {server.name}:", file=sys.stderr)
        print(url, flush=True)  # a line of its own on stdout: scripts read it
        print("Waiting for the browser to come back...", file=sys.stderr, flush=True)

    where = asyncio.run(
        oauth.login(
            server, show_url=show_url, open_browser=not args.no_browser, redactor=redactor, timeout=args.timeout
        )
    )
    print(f"logged in to {server.name}; tokens stored in {where}", file=sys.stderr)
    return EXIT_OK


def cmd_logout(args: argparse.Namespace) -> int:
    server, _ = _server(args)
    if oauth.logout(server):
        print(f"logged out of {server.name}: its tokens are deleted")
        return EXIT_OK
    print(f"no stored tokens for {server.name}", file=sys.stderr)
    return EXIT_FAILURE
