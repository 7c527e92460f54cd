"""Telling clients that upstream resources or prompts changed, in both protocol eras.

Handshake-era clients hold a connection: list-changed notifications are sent
on it, and ``resources/subscribe`` registers it for one URI's updates (the SDK
makes a new session object per request, so the connection is what is kept). 2026-07-28
clients have no standing channel: they open ``subscriptions/listen`` streams,
served here by the MCP SDK's ``ListenHandler`` over an in-memory bus. fastmcp
itself serves neither ``resources/subscribe`` nor ``subscriptions/listen``, so
this module registers both on its low-level server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import mcp_types
from fastmcp.server.middleware import Middleware, MiddlewareContext
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ToolsListChanged,
)
from discovery_router._compat import connection_of
from discovery_router.eras import is_2026_era

logger = logging.getLogger(__name__)

Subscribe = Callable[[str], Awaitable[None]]
"""Subscribe (or unsubscribe) the upstream that serves a client-facing URI."""


class ClientNotifier(Middleware):
    """Remembers client sessions and subscriptions; fans router events out to them.

    As fastmcp middleware it sees every request, which is how handshake-era
    connections are learned (weakly: a closed connection simply disappears).
    """

    def __init__(self, subscribe: Subscribe, unsubscribe: Subscribe) -> None:
        self.bus = InMemorySubscriptionBus()
        self._listen = ListenHandler(self.bus)
        self._subscribe_upstream, self._unsubscribe_upstream = subscribe, unsubscribe
        self._connections: weakref.WeakSet[Any] = weakref.WeakSet()
        self._subscribers: dict[str, weakref.WeakSet[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def on_request(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        ctx = context.fastmcp_context
        request_context = ctx.request_context if ctx is not None else None
        if request_context is not None and not is_2026_era(request_context.protocol_version):
            with contextlib.suppress(RuntimeError, TypeError):
                self._connections.add(connection_of(ctx.session))  # type: ignore[union-attr]
        return await call_next(context)

    def install(self, low_level_server: Any) -> None:
        """Serve resources/subscribe, resources/unsubscribe and subscriptions/listen."""
        low_level_server.add_request_handler(
            "resources/subscribe", mcp_types.SubscribeRequestParams, self._on_subscribe
        )
        low_level_server.add_request_handler(
            "resources/unsubscribe", mcp_types.UnsubscribeRequestParams, self._on_unsubscribe
        )
        low_level_server.add_request_handler(
            "subscriptions/listen", mcp_types.SubscriptionsListenRequestParams, self._on_listen
        )

    # -- requests from clients ---------------------------------------------

    async def _on_subscribe(self, ctx: Any, params: mcp_types.SubscribeRequestParams) -> mcp_types.EmptyResult:
        uri = str(params.uri)
        self._subscribers.setdefault(uri, weakref.WeakSet()).add(connection_of(ctx.session))
        await self._subscribe_upstream(uri)
        return mcp_types.EmptyResult()

    async def _on_unsubscribe(self, ctx: Any, params: mcp_types.UnsubscribeRequestParams) -> mcp_types.EmptyResult:
        uri = str(params.uri)
        subscribers = self._subscribers.get(uri)
        if subscribers is not None:
            subscribers.discard(connection_of(ctx.session))
            if not subscribers:
                del self._subscribers[uri]
                await self._unsubscribe_upstream(uri)
        return mcp_types.EmptyResult()

    async def _on_listen(self, ctx: Any, params: mcp_types.SubscriptionsListenRequestParams) -> Any:
        uris = list(params.notifications.resource_subscriptions or [])
        for uri in uris:
            await self._subscribe_upstream(uri)
        try:
            return await self._listen(ctx, params)
        finally:
            for uri in uris:
                if uri not in self._subscribers:
                    with contextlib.suppress(Exception):
                        await self._unsubscribe_upstream(uri)

    # -- events from the router ----------------------------------------------

    def components_changed(self) -> None:
        """Some upstream's resources, templates or prompts changed."""
        self._spawn(self._send_components_changed())

    def tools_changed(self) -> None:
        """The router's own tools/list changed (pinned tools came or went)."""
        self._spawn(self._send_tools_changed())

    def resource_updated(self, uri: str) -> None:
        """The resource a client knows as ``uri`` changed upstream."""
        self._spawn(self._send_resource_updated(uri))

    async def _send_components_changed(self) -> None:
        await self.bus.publish(ResourcesListChanged())
        await self.bus.publish(PromptsListChanged())
        for connection in list(self._connections):
            with contextlib.suppress(Exception):
                await connection.notify("notifications/resources/list_changed", None)
                await connection.notify("notifications/prompts/list_changed", None)

    async def _send_tools_changed(self) -> None:
        await self.bus.publish(ToolsListChanged())
        for connection in list(self._connections):
            with contextlib.suppress(Exception):
                await connection.notify("notifications/tools/list_changed", None)

    async def _send_resource_updated(self, uri: str) -> None:
        await self.bus.publish(ResourceUpdated(uri=uri))
        for connection in list(self._subscribers.get(uri, ())):
            with contextlib.suppress(Exception):
                await connection.notify("notifications/resources/updated", {"uri": uri})

    def _spawn(self, work: Awaitable[None]) -> None:
        try:
            task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)  # type: ignore[arg-type]
        except RuntimeError:  # no loop: nobody is connected to tell
            work.close()  # type: ignore[attr-defined]
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
