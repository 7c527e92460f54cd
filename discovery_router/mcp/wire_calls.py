"""``tools/call`` read straight off the stdio pipe: the wire lane (issue 17).

Why: on stdio, the SDK's JSON-RPC dispatcher (a pydantic model of every message, a task and a tracing span per
request, in-flight tables) and its request runner (the per-version surface validation, the server middleware,
the result sieve) were the largest single share of what the router spent of its own on a forwarded call: in
the same quiet benchmark run the router adds 2.13 ms end to end with this lane and 2.60 ms without it. So the stdio reader hands each ``tools/call`` (``call_tool``, and
``search_tools``/``describe_tool``, whose protocol floor every lookup pays) to this lane, which answers it
itself, and everything else to the SDK, unchanged.

One path: the lane binds the request context the SDK's runner and fastmcp's server middleware would bind (a
``ServerSession`` over this connection, a ``ServerRequestContext``, fastmcp's binding of it, the app's shared
context) and calls the ``tools/call`` handler registered on the low-level server, the very function the SDK's
runner calls: for ``call_tool`` that is :meth:`CallTool.answer` (fastmcp's middleware chain, the argument
check, ``Router.call``: policy, confirmation, audit, the upstream leg; progress, upstream logs and asks through
the request's fastmcp ``Context``), for the other tools fastmcp's own handler. The answer is shaped by the SDK's
own code: ``requestState`` sealed by the server's ``RequestStateBoundary``, the result by the runner's
serializer (cache hints, per-version sieve, ``serverInfo`` stamp), errors by the dispatcher's error mapping; a
request the client cancelled gets no answer, as with the SDK.

The lane takes a request only where it answers exactly as the SDK would, and leaves it to the SDK otherwise:
before the connection's era is settled (the SDK decides it by the first request; the lane reads that request
with the SDK's own test) or, on a handshake-era connection, before the SDK accepted its ``initialize``; a
request of the other era than the connection's; a retry leg carrying ``requestState`` or ``inputResponses``
(the SDK's boundary unseals those); params the handler's model refuses; a duplicate request id; a server with
SDK server middleware the lane does not know (:data:`LANE_SERVER_MIDDLEWARE`); and a process exporting
OpenTelemetry traces (the lane opens no server span: with a tracer configured every request keeps the SDK's
path, so traces stay whole).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from typing import Any

import anyio
import mcp_types
from fastmcp import FastMCP
from fastmcp.server.dependencies import bind_request_context
from mcp.server.connection import Connection, NotifyOnlyOutbound
from mcp.server.context import ServerRequestContext
from mcp.server.runner import aclose_shielded
from mcp.server.session import ServerSession
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.inbound import InboundLadderRejection, classify_inbound_request
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp.shared.message import SessionMessage
from mcp.shared.transport_context import TransportContext
from pydantic import ValidationError

from discovery_router._compat import (
    WireResults,
    connection_of,
    has_modern_envelope,
    has_teardown,
    low_level_server,
    request_state_boundary,
    seal_request_state,
    shared_context,
)
from discovery_router.eras import is_2026_era
from discovery_router.paths import WIRE_LANE_ENV_VAR

logger = logging.getLogger(__name__)

LANE_SERVER_MIDDLEWARE = frozenset({"FastMCPServerMiddleware", "RequestStateBoundary"})
"""The SDK server middleware whose work the lane does itself (fastmcp's request binding and shared context, the
``requestState`` seal); a server with any other SDK middleware keeps the SDK's path for every request.
fastmcp's own middleware (``FastMCP.middleware``) runs on the lane as on the SDK path, inside the handler."""

CANCELLED = "notifications/cancelled"
_WANTED = (b'"tools/call"', CANCELLED.encode())

RequestId = int | str


class WireCalls:
    """The lane of one stdio connection: :meth:`take` is offered each message the reader parsed."""

    def __init__(self, mcp: FastMCP, writer: Any) -> None:
        self._mcp, self._writer = mcp, writer
        self._low = low_level_server(mcp)
        self._results = WireResults(self._low)
        self._boundary = request_state_boundary(self._low)
        self._era: str | None = None
        """``"modern"`` or ``"handshake"``, decided by the first request as the SDK decides it."""
        self._notify_only = NotifyOnlyOutbound(_PipeNotifications(writer))
        self._running: dict[RequestId, tuple[asyncio.Task[None], _WireDispatchContext]] = {}
        self._handshake: Connection | None = None
        """A handshake-era client's connection, learned from its ``initialize`` (see :meth:`_learn_handshake`)."""
        self._low.middleware.append(self._learn_handshake)

    @classmethod
    def for_app(cls, mcp: FastMCP, writer: Any) -> WireCalls | None:
        """The lane for ``mcp`` over the stdio ``writer``, or None where it could not answer as the SDK does
        (or ``DISCOVERY_ROUTER_WIRE_LANE=off`` says not to)."""
        if os.environ.get(WIRE_LANE_ENV_VAR, "").strip().casefold() == "off":
            logger.debug("tools/call keeps the SDK's path: %s=off", WIRE_LANE_ENV_VAR)
            return None
        unknown = [_type_name(m) for m in low_level_server(mcp).middleware if not _known(m)]
        if unknown:
            logger.debug("tools/call keeps the SDK's path: SDK server middleware %s", ", ".join(unknown))
            return None
        if _tracing():
            logger.debug("tools/call keeps the SDK's path: OpenTelemetry tracing is configured")
            return None
        return cls(mcp, writer)

    async def _learn_handshake(self, ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        """SDK server middleware: keep the connection an ``initialize`` request arrived on.

        The SDK answers ``initialize`` with its read loop parked and commits the handshake before reading
        on, so by the next line the connection says whether it accepts requests (``initialize_accepted``),
        the gate the SDK's runner applies and the lane applies too.
        """
        if ctx.method == "initialize" and ctx.request_id is not None:
            self._handshake = connection_of(ctx.session)
        return await call_next(ctx)

    def wants(self, line: bytes) -> bool:
        """A cheap look at a raw line: might :meth:`take` want it parsed?"""
        return self._era is None or any(marker in line for marker in _WANTED)

    def take(self, message: Any) -> bool:
        """True when the lane answers ``message`` itself; False leaves it to the SDK."""
        if not isinstance(message, dict):
            return False
        method, params = message.get("method"), message.get("params")
        if self._era is None and isinstance(method, str) and "id" in message:
            modern = method != "initialize" and has_modern_envelope(params if isinstance(params, Mapping) else None)
            self._era = "modern" if modern else "handshake"
            return False  # the opening request is the SDK's: it settles the connection
        if method == CANCELLED:
            self._cancel(params)
            return False  # the SDK tees it to the server's notification handlers too
        if method != "tools/call" or message.get("jsonrpc") != "2.0" or not isinstance(params, dict):
            return False
        request_id = message.get("id")
        if isinstance(request_id, bool) or not isinstance(request_id, (int, str)) or request_id in self._running:
            return False
        if "requestState" in params or "inputResponses" in params:
            return False
        connection = self._connection_for(params)
        if connection is None:
            return False
        handler = self._low.get_request_handler("tools/call")
        try:
            typed = handler.params_type.model_validate(params, by_name=False)
        except ValidationError:
            return False  # the SDK answers it with its own error
        progress_token = typed.meta.get("progress_token") if typed.meta else None
        dctx = _WireDispatchContext(self, request_id, connection, progress_token)
        task = asyncio.create_task(self._answer(dctx, params, typed, handler.handler))
        self._running[request_id] = (task, dctx)
        task.add_done_callback(lambda _task: self._running.pop(request_id, None))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("tools/call request %r is answered on the stdio wire lane", request_id)
        return True

    async def close(self) -> None:
        """Serving ends: the calls still running are cancelled (each answered "Connection closed")."""
        if self._learn_handshake in self._low.middleware:
            self._low.middleware.remove(self._learn_handshake)
        tasks = [task for task, _ in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _connection_for(self, params: dict[str, Any]) -> Connection | None:
        """The connection a request is served on, built as the SDK builds it; None: the SDK's to answer."""
        modern = has_modern_envelope(params)
        if self._era == "modern" and modern:
            route = classify_inbound_request({"method": "tools/call", "params": params})
            if isinstance(route, InboundLadderRejection):
                return None
            return Connection.from_envelope(
                route.protocol_version, route.client_info, route.client_capabilities, outbound=self._notify_only
            )
        if self._era == "handshake" and not modern and self._handshake is not None:
            return self._handshake if self._handshake.initialize_accepted else None
        return None

    def _cancel(self, params: Any) -> None:
        request_id = params.get("requestId") if isinstance(params, Mapping) else None
        running = self._running.get(request_id) if isinstance(request_id, (int, str)) else None
        if running is not None:
            task, dctx = running
            dctx.cancel_requested.set()
            task.cancel()

    async def _answer(
        self, dctx: _WireDispatchContext, params: dict[str, Any], typed: mcp_types.CallToolRequestParams, handler: Any
    ) -> None:
        """Run the call under the request context the SDK would bind, then write its answer (or nothing, if
        the client cancelled it)."""
        connection = dctx.connection
        meta = typed.meta  # what the SDK's runner lifts from the same params
        ctx: ServerRequestContext[Any, Any] = ServerRequestContext(
            session=ServerSession(dctx, connection, request_meta=meta),  # type: ignore[arg-type]
            lifespan_context=None,
            protocol_version=connection.protocol_version,
            method="tools/call",
            params=params,
            request_id=dctx.request_id,
            meta=meta,
        )
        reply: mcp_types.JSONRPCResponse | mcp_types.JSONRPCError
        try:
            with shared_context(self._mcp), bind_request_context(ctx):
                result = await handler(ctx, typed)
            if isinstance(result, mcp_types.InputRequiredResult):
                result = seal_request_state(self._boundary, ctx, result)
            reply = mcp_types.JSONRPCResponse(
                jsonrpc="2.0", id=dctx.request_id, result=self._results(connection.protocol_version, result)
            )
        except asyncio.CancelledError:
            if not dctx.cancelled:  # serving ends: tell the client, as the SDK does
                closed = mcp_types.ErrorData(code=mcp_types.CONNECTION_CLOSED, message="Connection closed")
                with contextlib.suppress(Exception):
                    await self._writer.send(
                        SessionMessage(mcp_types.JSONRPCError(jsonrpc="2.0", id=dctx.request_id, error=closed))
                    )
            raise
        except Exception as exc:  # the SDK dispatcher's own exception-to-wire mapping
            error = handler_exception_to_error_data(exc)
            if error is None:
                logger.exception("handler for 'tools/call' raised")
                error = mcp_types.ErrorData(code=0, message=str(exc))
            reply = mcp_types.JSONRPCError(jsonrpc="2.0", id=dctx.request_id, error=error)
        finally:
            if dctx.modern and has_teardown(connection):
                await aclose_shielded(connection)  # as the SDK's serve_one ends each 2026-era request
        if dctx.cancelled:
            return
        try:
            await self._writer.send(SessionMessage(reply))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            logger.debug("the client left before the answer to request %r", dctx.request_id)


def _tracing() -> bool:
    """True when this process has an OpenTelemetry tracer provider configured (not the API's default proxy)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return False
    return not isinstance(trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider))


def _type_name(value: object) -> str:
    return type(value).__name__


def _known(middleware: object) -> bool:
    """SDK server middleware whose work the lane does: fastmcp's, the SDK's boundary, and a lane's own watch."""
    return _type_name(middleware) in LANE_SERVER_MIDDLEWARE or isinstance(
        getattr(middleware, "__self__", None), WireCalls
    )


_MODERN_TRANSPORT = TransportContext(kind="stdio", can_send_request=False)
_HANDSHAKE_TRANSPORT = TransportContext(kind="stdio", can_send_request=True)


class _PipeNotifications:
    """An ``Outbound`` that writes notifications onto the stdio pipe (server requests go through the SDK)."""

    def __init__(self, writer: Any) -> None:
        self._writer = writer

    async def send_raw_request(self, method: str, params: Mapping[str, Any] | None, opts: Any = None) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: Any = None) -> None:
        notification = mcp_types.JSONRPCNotification(jsonrpc="2.0", method=method, params=dict(params or {}) or None)
        await self._writer.send(SessionMessage(notification))


class _WireDispatchContext:
    """The SDK ``DispatchContext`` of one request the lane answers (what the SDK dispatcher hands its runner).

    Notifications and progress go onto the pipe; a request to the client (an ask, handshake era only) goes
    through the SDK connection's own channel, whose dispatcher matches the client's answer to it.
    """

    def __init__(
        self, lane: WireCalls, request_id: RequestId, connection: Connection, progress_token: RequestId | None
    ) -> None:
        self.request_id = request_id
        self.connection = connection
        self.progress_token = progress_token
        self._pipe = _PipeNotifications(lane._writer)
        self.modern = is_2026_era(connection.protocol_version)
        self.transport = _MODERN_TRANSPORT if self.modern else _HANDSHAKE_TRANSPORT
        self.message_metadata = None
        self._cancel_requested: anyio.Event | None = None

    @property
    def cancel_requested(self) -> anyio.Event:
        """Set when the client cancels this request (made on first use: most requests never need it)."""
        if self._cancel_requested is None:
            self._cancel_requested = anyio.Event()
        return self._cancel_requested

    @property
    def cancelled(self) -> bool:
        return self._cancel_requested is not None and self._cancel_requested.is_set()

    @property
    def can_send_request(self) -> bool:
        return not self.modern

    async def send_raw_request(self, method: str, params: Mapping[str, Any] | None, opts: Any = None) -> dict[str, Any]:
        if self.modern:
            raise NoBackChannelError(method)
        return await self.connection.outbound.send_raw_request(method, params, opts)

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: Any = None) -> None:
        await self._pipe.notify(method, params)

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """Progress on this request's token (the dispatcher's ``dctx.progress``); nothing without a token."""
        if self.progress_token is None:
            return
        notification = mcp_types.ProgressNotification(
            params=mcp_types.ProgressNotificationParams(
                progress_token=self.progress_token, progress=progress, total=total, message=message
            )
        )
        data = notification.model_dump(by_alias=True, mode="json", exclude_none=True)
        await self.notify(data["method"], data.get("params"))
