"""``GET /healthz`` and ``GET /readyz``: what a load balancer asks a replica served over HTTP.

- liveness (``/healthz``): the process answers HTTP; 200 until it exits.
  A failing liveness check means "restart me", so it depends on nothing else.
- readiness (``/readyz``): 200 once every enabled server has had its first
  connection attempt (connected or failed: a server that is down is down for
  every replica, and the cached catalog still serves search), and 503 from the
  moment a SIGTERM starts the drain, so the balancer stops sending new work
  before anything is refused. It stays 200 after start-up while a server
  reconnects: a config edit must not pull every replica out at once.

Both answer without the bearer token (a load balancer's check carries none)
and say nothing a stranger could use: a status word, never a server name, a
tool or an error text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from discovery_router.router import Router

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
PUBLIC_PATHS = frozenset({LIVENESS_PATH, READINESS_PATH})
"""Answered without the bearer token (GET and HEAD only)."""


class Health:
    """The two checks for one router, plus whether its server has begun to stop."""

    def __init__(self, router: Router, stopping: Callable[[], bool] = lambda: False) -> None:
        self._router = router
        self._stopping = stopping
        self._started = False

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of ``/readyz``."""
        if self._stopping():
            return 503, {"status": "draining"}
        if not self._started:  # latched: a server reconnecting later does not make the replica unready
            self._started = all(u.first_attempt_done.is_set() for u in self._router.upstreams.values())
        if not self._started:
            return 503, {"status": "starting"}
        return 200, {"status": "ready", "search": "hybrid" if self._router.index.hybrid else "lexical"}

    async def live(self, _request: Request) -> JSONResponse:
        return JSONResponse({"status": "alive"})

    async def ready(self, _request: Request) -> JSONResponse:
        status, body = self.readiness()
        return JSONResponse(body, status_code=status)

    def install(self, mcp: Any) -> None:
        """Add both routes to a FastMCP server (before its HTTP app is made)."""
        mcp.custom_route(LIVENESS_PATH, methods=["GET", "HEAD"], include_in_schema=False)(self.live)
        mcp.custom_route(READINESS_PATH, methods=["GET", "HEAD"], include_in_schema=False)(self.ready)
