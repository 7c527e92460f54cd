"""Serving the MCP face over HTTP without losing calls or descriptors: drain on stop, bounded sessions and connections.

uvicorn alone (as fastmcp runs it) answers SIGTERM by cancelling every request
still running after 2 s, then re-raises the signal, so the process dies before
the router stops its upstream children. It never times out a connection whose
request head is incomplete, and it caps nothing but requests. Here:

- :class:`Drain` lets in-flight MCP requests finish for ``router.shutdown_drain``
  seconds, then answers the rest with an error (nothing is dropped unanswered);
  tool calls and new sessions arriving meanwhile are refused at once. Behind a
  load balancer, ``/readyz`` (:mod:`discovery_router.mcp.health`) answers 503
  from the signal on, and ``router.shutdown_delay`` keeps serving new calls
  that long first, so the balancer stops sending before anything is refused.
- :mod:`discovery_router.mcp.http_connections` closes a connection whose request head
  is not complete within ``router.http_header_timeout`` seconds, and turns away
  connections beyond ``router.http_max_connections`` before they cost more than
  a descriptor; it parses with httptools and runs on uvloop where installed.
- :func:`serve_http` runs uvicorn with both, caps live streamable-HTTP sessions
  (``router.http_max_sessions``, refused with 503 beyond it) and expires idle
  ones (``router.http_session_idle_timeout``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
import signal
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from fastmcp.exceptions import ToolError
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR

from discovery_router.mcp.health import Health
from discovery_router.mcp.http_connections import (
    connection_limit,
    describe_protocol,
    guarded_protocol,
)

if TYPE_CHECKING:
    from discovery_router.router import Router

logger = logging.getLogger(__name__)

ABANDON_GRACE = 2.0
"""Seconds the error answers of abandoned requests get to reach their clients before connections close."""


class Drain(Middleware):
    """Counts in-flight MCP requests so a stop can wait for them, then answers the stragglers with an error.

    Why a middleware and not uvicorn's graceful shutdown: uvicorn waits for
    HTTP connections, and a client's open notification stream (GET) is a
    connection that never finishes; and when its wait runs out it cancels
    requests, which leaves their clients without any answer.
    """

    def __init__(self) -> None:
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._running: set[asyncio.Task[Any]] = set()
        self._abandoned: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self.stopping = False
        """A stop has begun: readiness is false (new calls may still be served during ``shutdown_delay``)."""
        self.draining = False
        """New tool calls and sessions are refused; the ones in flight are being waited for."""

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def on_request(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        if self.draining and context.method in _REFUSED_WHILE_DRAINING:
            # Other requests still run (they are quick, and clients make some to finish a call: the MCP
            # SDK lists tools to check a result's schema); the drain's deadline bounds them too.
            raise _shutting_down(context.method, "the router is shutting down and starts no new calls")
        # The request runs in its own task, which abandon() cancels: no extra task and wait per request
        # (racing each one against the abandon event cost ~40 us a request).
        task = asyncio.current_task()
        self._in_flight += 1
        self._idle.clear()
        if task is not None:
            self._running.add(task)
        try:
            return await call_next(context)
        except asyncio.CancelledError:
            if task is None or task not in self._abandoned:
                raise
            task.uncancel()
            raise _shutting_down(
                context.method,
                "the router shut down before this request finished; whether it took effect upstream is unknown",
            ) from None
        finally:
            self._running.discard(task)  # type: ignore[arg-type]
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def drain(self, seconds: float) -> int:
        """Refuse new tool calls, wait up to ``seconds`` for the requests running, then abandon the rest.

        Returns how many were abandoned (each answered with an error).
        """
        self.stopping = self.draining = True
        if self._in_flight:
            logger.info("stopping: waiting up to %gs for %d request(s) in flight", seconds, self._in_flight)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=seconds)
        abandoned = self._in_flight
        if abandoned:
            logger.warning(
                "stopping: answering %d request(s) still in flight after %gs with an error (router.shutdown_drain)",
                abandoned,
                seconds,
            )
            self.abandon()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), timeout=ABANDON_GRACE)
        return abandoned

    def abandon(self) -> None:
        """Answer every request in flight with an error now (a second signal skips the wait)."""
        self.stopping = self.draining = True
        for task in list(self._running):
            if task not in self._abandoned:
                self._abandoned.add(task)
                task.cancel()


_REFUSED_WHILE_DRAINING = frozenset({"tools/call", "initialize"})
"""Requests that start new work: a call, or a session that would die with this process."""


def _shutting_down(method: str | None, why: str) -> Exception:
    """An error answer: a tool error result for ``tools/call`` (the agent reads it), else a JSON-RPC error."""
    if method == "tools/call":
        return ToolError(f"{why}. Call it again once the router is back.")
    return MCPError(INTERNAL_ERROR, f"{why}.")


# -- the server -------------------------------------------------------------


def serve_http(
    mcp: Any,
    settings: Any,
    *,
    transport: str,
    host: str,
    port: int,
    middleware: list[Any],
    allowed_origins: list[str],
    router: Router | None = None,
) -> None:
    """Serve ``mcp`` over streamable HTTP or SSE until SIGTERM/SIGINT; drain, stop the upstreams, return.

    With ``router``, ``/healthz`` and ``/readyz`` answer a load balancer's checks.
    """
    import fastmcp
    import uvicorn

    drain = Drain()
    mcp.add_middleware(drain)
    if router is not None:
        Health(router, stopping=lambda: drain.stopping).install(mcp)
    allowed_hosts = fastmcp.settings.http_allowed_hosts
    from discovery_router.mcp.access import is_loopback

    if is_loopback(host):  # as fastmcp's own run: the Host check (DNS rebinding) also accepts the bound name
        allowed_hosts = [*(allowed_hosts or []), host]
    app = mcp.http_app(
        transport=transport,
        middleware=middleware,
        host_origin_protection="auto",
        allowed_hosts=allowed_hosts,
        allowed_origins=allowed_origins or None,
        **({} if transport == "sse" else {"session_idle_timeout": settings.http_session_idle_timeout or None}),
    )
    if transport != "sse":
        _cap_sessions(app, settings.http_max_sessions or None)
    max_connections = connection_limit(settings.http_max_connections)
    protocol = guarded_protocol(settings.http_header_timeout, max_connections)
    from discovery_router.mcp.loop import loop_factory as serving_loop

    loop_factory = serving_loop()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        http=protocol,
        # uvicorn answers 503 to a request once this many connections or requests are open; one above
        # the connection cap, so it only counts requests (the protocol turns away extra connections).
        limit_concurrency=max_connections + 1 if max_connections else None,
        timeout_graceful_shutdown=int(ABANDON_GRACE),
        # A line per HTTP request is for debugging (-v): at INFO it cost a stderr write on every call.
        access_log=logger.isEnabledFor(logging.DEBUG),
        # Uvicorn logs access lines to stdout by default; keep stdout free of logs in every mode.
        log_config={"version": 1, "disable_existing_loggers": False, "loggers": {"uvicorn": {"level": "INFO"}}},
    )
    server = _DrainingServer(config, drain, settings.shutdown_drain, settings.shutdown_delay)
    logger.info(
        "serving MCP over %s on http://%s:%d%s (%s, %s)",
        transport,
        host,
        port,
        getattr(app.state, "path", ""),
        describe_protocol(protocol),
        "uvloop" if loop_factory else "asyncio's event loop",
    )
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(server.serve())


class _DrainingServer:
    """A uvicorn server whose SIGTERM/SIGINT first drains in-flight MCP requests, and that exits with status 0.

    uvicorn's own handling re-raises the signal once it has stopped, which
    kills the process (status -15) before the router has stopped its children.
    """

    def __init__(self, config: Any, drain: Drain, drain_seconds: float, delay_seconds: float = 0.0) -> None:
        import uvicorn

        outer = self

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(signum, outer.stop)
                try:
                    yield
                finally:
                    for signum in (signal.SIGINT, signal.SIGTERM):
                        loop.remove_signal_handler(signum)

        self._server = Server(config)
        self._drain, self._seconds, self._delay = drain, drain_seconds, delay_seconds
        self._stopping: asyncio.Task[None] | None = None
        self._hurry = asyncio.Event()
        """A second signal: skip what is left of the delay, and of the drain."""

    async def serve(self) -> None:
        await self._server.serve()

    def stop(self) -> None:
        if self._stopping is not None:  # a second signal: answer what is left now
            self._hurry.set()
            self._drain.abandon()
            return
        self._drain.stopping = True  # /readyz answers 503 from now on
        self._stopping = asyncio.get_running_loop().create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        if self._delay:
            logger.info(
                "stopping: /readyz answers 503; new calls are still served for %gs (router.shutdown_delay)",
                self._delay,
            )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), timeout=self._delay)
        # The listener stays open while draining: a call in flight may need its client to send more (the
        # answer to a confirmation, on a new connection); new tool calls are refused by the drain instead.
        await self._drain.drain(self._seconds)
        self._server.should_exit = True


def _cap_sessions(app: Any, max_sessions: int | None) -> None:
    """Give the MCP SDK's session manager our session cap once the app's lifespan has created it.

    fastmcp creates the manager in its lifespan without passing ``max_sessions``
    (the SDK's default is 10,000 sessions, about 400 MB), so set it just after.
    """
    from fastmcp.server.http import StreamableHTTPASGIApp

    endpoints = [getattr(route, "endpoint", None) for route in app.routes]
    endpoint = next((e for e in endpoints if isinstance(e, StreamableHTTPASGIApp)), None)
    if endpoint is None:
        raise RuntimeError("fastmcp's streamable-HTTP endpoint was not found; the session cap cannot be set")
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(starlette_app: Any) -> AsyncIterator[Any]:
        async with inner(starlette_app) as state:
            manager = endpoint.session_manager
            if manager is None or not hasattr(manager, "max_sessions"):
                raise RuntimeError("the MCP SDK's session manager has no max_sessions; the session cap cannot be set")
            manager.max_sessions = max_sessions
            yield state

    app.router.lifespan_context = lifespan
