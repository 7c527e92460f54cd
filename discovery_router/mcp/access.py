"""Who may use the router when it is served over HTTP: a bearer token, an Origin check, a safe bind address.

The rules (README "Governance"):

- The token comes from ``$DISCOVERY_ROUTER_TOKEN``, else the OS keyring entry
  ``discovery-router/http-token`` (``discovery-router secret set http-token``).
- With a token, every request must carry ``Authorization: Bearer <token>``
  (compared in constant time); otherwise 401.
- A request whose ``Origin`` is neither a loopback origin nor listed in
  ``router.http_allowed_origins`` gets 403, token or not: that is how a web
  page reaching a local server through DNS rebinding is stopped (MCP spec,
  transport security). Requests without ``Origin`` (every non-browser client)
  pass this check.
- On a loopback address a token is required only if one is configured (or
  ``router.http_require_token`` is true); on any other address the router
  refuses to start without one.
- ``GET /healthz`` and ``GET /readyz`` need no token: a load balancer's checks
  carry none, and they say only a status word (:mod:`discovery_router.mcp.health`).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from discovery_router.errors import RouterError, SecretError
from discovery_router.paths import TOKEN_ENV_VAR
from discovery_router.config.keyring import DEFAULT_SERVICE, get_secret
from discovery_router.mcp.health import PUBLIC_PATHS

logger = logging.getLogger(__name__)

TOKEN_KEYRING_NAME = "http-token"


def resolve_token(environ: Mapping[str, str] | None = None) -> tuple[str | None, str]:
    """The configured bearer token and where it came from (for messages, never the value)."""
    environ = os.environ if environ is None else environ
    from_env = (environ.get(TOKEN_ENV_VAR) or "").strip()
    if from_env:
        return from_env, f"${TOKEN_ENV_VAR}"
    try:
        stored = get_secret(DEFAULT_SERVICE, TOKEN_KEYRING_NAME)
    except SecretError as exc:  # no backend on a headless box: simply no keyring token
        logger.debug("no HTTP token from the OS keyring: %s", exc)
        return None, ""
    if stored and stored.strip():
        return stored.strip(), f"the OS keyring ({DEFAULT_SERVICE}/{TOKEN_KEYRING_NAME})"
    return None, ""


def is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").casefold()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_serving(host: str, token: str | None, *, require_token: bool) -> None:
    """Refuse, with the reason and the fix, to serve without a token where that would be unsafe."""
    if token:
        return
    how = (
        f"set {TOKEN_ENV_VAR} in the environment, or store one with `discovery-router secret set {TOKEN_KEYRING_NAME}`"
    )
    if not is_loopback(host):
        raise RouterError(
            f"refusing to serve over HTTP on {host} without a bearer token: anyone who can reach that address "
            f"could run every tool of every configured server. To serve there, {how} (clients then send "
            "`Authorization: Bearer <token>`); or bind to 127.0.0.1 (the default)."
        )
    if require_token:
        raise RouterError(f"router.http_require_token is true but no bearer token is configured: {how}.")


class AccessMiddleware:
    """Pure ASGI: Origin check (403), then bearer token check (401), before any MCP handling."""

    def __init__(self, app: Any, *, token: str | None, allowed_origins: Sequence[str] = ()) -> None:
        self.app = app
        self._token = token.encode() if token else None
        self._allowed = tuple(o.rstrip("/") for o in allowed_origins)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").casefold(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        origin = headers.get("origin")
        if origin is not None and not self.origin_allowed(origin):
            await _deny(send, 403, "Forbidden: this Origin may not use the router (see router.http_allowed_origins).")
            return
        if (
            self._token is not None
            and not self._public(scope)
            and not self._authorized(headers.get("authorization", ""))
        ):
            await _deny(
                send,
                401,
                "Unauthorized: send Authorization: Bearer <token>.",
                [(b"www-authenticate", b'Bearer realm="discovery-router"')],
            )
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _public(scope: dict[str, Any]) -> bool:
        """A load balancer's health check: answered without the token, and it reveals nothing (see health.py)."""
        return scope.get("method") in ("GET", "HEAD") and scope.get("path") in PUBLIC_PATHS

    def origin_allowed(self, origin: str) -> bool:
        origin = origin.strip().rstrip("/")
        if any(origin == allowed or fnmatchcase(origin, allowed) for allowed in self._allowed):
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and is_loopback(parts.hostname or "")

    def _authorized(self, header: str) -> bool:
        scheme, _, credential = header.strip().partition(" ")
        presented = credential.strip().encode() if scheme.casefold() == "bearer" else b""
        assert self._token is not None
        return hmac.compare_digest(presented, self._token)


async def _deny(send: Any, status: int, text: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serving_middleware(
    host: str, settings: Any, *, redactor: Any = None, environ: Mapping[str, str] | None = None
) -> list[Any]:
    """The Starlette middleware for ``serve --transport http|sse``; raises when serving would be unsafe."""
    from starlette.middleware import Middleware

    token, source = resolve_token(environ)
    check_serving(host, token, require_token=settings.http_require_token)
    if token and redactor is not None:
        redactor.add(token)  # never in a log line, like any other secret
    if token:
        logger.info("HTTP clients must send the bearer token from %s", source)
    else:
        logger.warning(
            "serving on %s without a bearer token: any local process can use the router (set %s to require one)",
            host,
            TOKEN_ENV_VAR,
        )
    return [Middleware(AccessMiddleware, token=token, allowed_origins=settings.http_allowed_origins)]
